"""AutoDrop in a plain PyTorch loop: a small MLP on a synthetic classification task.

Runs in seconds on a CPU and prints the angular velocity against its noise floor, every decision and
every drop (the one-object form: ``AutoDropScheduler`` is the schedule and the detector).
    python examples/quickstart.py --steps 3000
"""

import argparse
import time

import torch
from torch import nn

from autodrop_hf import AutoDropConfig, AutoDropScheduler


def make_task(num_examples: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Points in 16-D whose class is the sign pattern of two random projections (4 classes)."""
    inputs = torch.randn(num_examples, 16, generator=generator)
    projections = torch.randn(16, 2, generator=generator)
    signs = (inputs @ projections > 0).long()
    return inputs, signs[:, 0] * 2 + signs[:, 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps")
    parser.add_argument("--window_size", default="auto", help="AutoDrop window, in optimizer steps, or 'auto'")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (AdamW)")
    parser.add_argument("--warmup_steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    inputs, labels = make_task(8192, generator)
    model = nn.Sequential(nn.Linear(16, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    window = args.window_size if args.window_size == "auto" else int(args.window_size)
    scheduler = AutoDropScheduler(
        optimizer,
        model,
        AutoDropConfig(window_size=window),
        num_training_steps=args.steps,
        num_warmup_steps=args.warmup_steps,
    )
    autodrop = scheduler.autodrop
    print(autodrop)

    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = torch.randint(0, len(inputs), (64,), generator=generator)
        loss = nn.functional.cross_entropy(model(inputs[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if autodrop.decisions and autodrop.decisions[-1].step == step:
            _, statistic, saturated = autodrop.decisions[-1]
            mean = sum(a.degrees for a in autodrop.angles[-autodrop.config.buffer_size :]) / autodrop.config.buffer_size
            verdict = f"drop: lr -> {optimizer.param_groups[0]['lr']:.3e}" if saturated else "hold (progress)"
            print(
                f"step {step:5d}  mean angle {mean:6.2f}° (floor {autodrop.noise_floor:.2f}°)  "
                f"z {statistic:+6.2f}  {verdict}  loss {loss.item():.4f}"
            )
    with torch.no_grad():
        accuracy = (model(inputs).argmax(-1) == labels).float().mean().item()
    print(
        f"\n{args.steps} steps in {time.perf_counter() - start:.1f}s: {len(autodrop.angles)} angles, "
        f"{len(autodrop.decisions)} decisions, {len(autodrop.drops)} drops, final lr "
        f"{optimizer.param_groups[0]['lr']:.3e}, train accuracy {accuracy:.3f}"
    )


if __name__ == "__main__":
    main()
