"""The README's quick-start loop, with and without a horizon: the final full-data MSE of each schedule.

python benchmarks/quickstart_anytime.py --seeds 0 1 2 3 > benchmarks/results/quickstart_anytime.md   # ~15 min, 1 core
python benchmarks/quickstart_anytime.py --steps 200 --seeds 0                                       # a quick check

The loop is the README's (an 8→32→1 tanh MLP on 1,024 fixed points, batches of 32, AdamW at 1e-2, 50 warm-up
steps), run by the library itself (``AutoDropScheduler``) in float32. Each schedule trains once per (length, seed)
and is read at its last step on the whole data set: ``linear`` and ``autodrop`` (the library's default) are told
the length; ``anytime`` and ``anytime_average`` are not (``anytime_average`` is read through
``autodrop.averaged()``, as its users read it); ``constant`` keeps the peak; ``schedule_free`` is Schedule-Free
AdamW (package ``schedulefree``) at 3× the peak, read in its evaluation mode.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics

import torch

from autodrop_hf import AutoDropConfig, AutoDropScheduler

SCHEDULES = ("constant", "linear", "autodrop", "anytime", "anytime_average", "schedule_free")
LEARNING_RATE = 1e-2
WARMUP_STEPS = 50


def final_loss(schedule: str, steps: int, seed: int) -> float:
    """Train the quick-start model for ``steps`` optimizer steps under ``schedule``; its full-data MSE."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    inputs = torch.randn(1024, 8)
    targets = inputs.sin().sum(dim=1, keepdim=True)
    reading: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if schedule == "schedule_free":
        from schedulefree import AdamWScheduleFree

        optimizer = AdamWScheduleFree(model.parameters(), lr=3 * LEARNING_RATE, warmup_steps=WARMUP_STEPS)
        optimizer.train()
        scheduler = None
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
        scheduler = _scheduler(schedule, optimizer, model, steps)
    for _ in range(steps):
        batch = torch.randint(0, 1024, (32,))
        loss = torch.nn.functional.mse_loss(model(inputs[batch]), targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    if schedule == "schedule_free":
        optimizer.eval()
    elif schedule == "anytime_average":
        reading = scheduler.autodrop.averaged()
    with torch.no_grad(), reading:
        return torch.nn.functional.mse_loss(model(inputs), targets).item()


def _scheduler(schedule: str, optimizer: torch.optim.Optimizer, model: torch.nn.Module, steps: int):
    if schedule in ("constant", "linear"):  # Hugging Face's constant_with_warmup and linear, as AutoDrop warms up

        def factor(step: int) -> float:
            if step < WARMUP_STEPS:
                return step / WARMUP_STEPS
            return 1.0 if schedule == "constant" else max(0.0, (steps - step) / (steps - WARMUP_STEPS))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    config = AutoDropConfig() if schedule == "autodrop" else AutoDropConfig.preset(schedule)
    horizon = steps if schedule == "autodrop" else None
    return AutoDropScheduler(optimizer, model, config, num_training_steps=horizon, num_warmup_steps=WARMUP_STEPS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[2000, 8000], help="run lengths (optimizer steps)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--schedules", nargs="+", default=list(SCHEDULES), choices=SCHEDULES)
    args = parser.parse_args()
    print("| schedule | " + " | ".join(f"{n:,} steps" for n in args.steps) + " |")
    print("|---|" + "---|" * len(args.steps))
    for schedule in args.schedules:
        cells = []
        for steps in args.steps:
            losses = [final_loss(schedule, steps, seed) for seed in args.seeds]
            cells.append(" / ".join(f"{v:.4f}" for v in losses) + f" (mean {statistics.fmean(losses):.4f})")
        print(f"| {schedule} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
