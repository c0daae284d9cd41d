"""AutoDrop in a plain PyTorch loop: a small MLP on a synthetic classification task.

Runs in seconds on a CPU and prints the angular velocity per window and every drop.
    python examples/quickstart.py --steps 3000 --window_size 10
"""

import argparse
import time

import torch
from torch import nn

from autodrop_hf import AutoDrop, AutoDropConfig, AutoDropLR


def make_task(num_examples: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Points in 16-D whose class is the sign pattern of two random projections (4 classes)."""
    inputs = torch.randn(num_examples, 16, generator=generator)
    projections = torch.randn(16, 2, generator=generator)
    signs = (inputs @ projections > 0).long()
    return inputs, signs[:, 0] * 2 + signs[:, 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps")
    parser.add_argument("--window_size", type=int, default=10, help="AutoDrop window, in optimizer steps")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (AdamW)")
    parser.add_argument("--warmup_steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    inputs, labels = make_task(8192, generator)
    model = nn.Sequential(nn.Linear(16, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    scheduler = AutoDropLR(optimizer, num_warmup_steps=args.warmup_steps)
    autodrop = AutoDrop(model, AutoDropConfig(window_size=args.window_size), scheduler)
    print(autodrop)

    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = torch.randint(0, len(inputs), (64,), generator=generator)
        loss = nn.functional.cross_entropy(model(inputs[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if autodrop.step():
            print(f"step {step:5d}  DROP  lr -> {optimizer.param_groups[0]['lr']:.3e}")
        elif autodrop.angles and autodrop.angles[-1][0] == step and len(autodrop.angles) % 10 == 1:
            smoothed = f"{autodrop.smoothed[-1][1]:6.2f}°" if autodrop.smoothed else "   -   "
            print(f"step {step:5d}  angle {autodrop.angles[-1][1]:6.2f}°  smoothed {smoothed}  loss {loss.item():.4f}")
    with torch.no_grad():
        accuracy = (model(inputs).argmax(-1) == labels).float().mean().item()
    print(
        f"\n{args.steps} steps in {time.perf_counter() - start:.1f}s: {len(autodrop.angles)} angles, "
        f"{len(autodrop.drops)} drops at steps {autodrop.drops}, final lr "
        f"{optimizer.param_groups[0]['lr']:.3e} (scale {autodrop.scale:.4f}), train accuracy {accuracy:.3f}"
    )


if __name__ == "__main__":
    main()
