"""Per-step overhead of AutoDropCallback on a stock ``Trainer``, against the same run without it.

Runs are interleaved (without, with, without, with, ...) on the same model and data; the step time
of a run is the mean interval between consecutive ``on_step_begin`` events (whole optimizer steps,
callbacks included; window ends count), with the slowest 5% of intervals (one-off pauses) left out.

    python benchmarks/trainer_overhead.py --model minilm --steps 40 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from step_overhead import load_model
from transformers import Trainer, TrainerCallback, TrainingArguments

from autodrop_hf import AutoDropCallback, AutoDropConfig


class RandomText(torch.utils.data.Dataset):
    def __init__(self, vocab: int, size: int, length: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.input_ids = torch.randint(0, vocab, (size, length), generator=generator)
        self.labels = torch.randint(0, 2, (size,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[i], "labels": self.labels[i]}


class StepClock(TrainerCallback):
    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        self.starts.append(time.perf_counter())

    def mean_interval(self) -> float:
        intervals = sorted(b - a for a, b in zip(self.starts, self.starts[1:], strict=False))
        return statistics.fmean(intervals[: max(1, int(0.95 * len(intervals)))])


def step_time(model_name: str, steps: int, with_autodrop: bool, window_size: int) -> float:
    model = load_model(model_name)
    data = RandomText(model.config.vocab_size, 8 * steps, 64)
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir,
            max_steps=steps,
            per_device_train_batch_size=8,
            lr_scheduler_type="constant_with_warmup",
            report_to=[],
            save_strategy="no",
            logging_steps=10,
            use_cpu=True,
            disable_tqdm=True,
        )
        clock = StepClock()
        callbacks = [clock]
        if with_autodrop:
            callbacks.append(AutoDropCallback(AutoDropConfig(window_size=window_size)))
        Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks).train()
        return clock.mean_interval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window_size", type=int, default=8)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    step_time(args.model, 5, True, args.window_size)  # warm-up
    times: dict[str, list[float]] = {"stock": [], "autodrop": []}
    for _ in range(args.repeats):
        times["stock"].append(step_time(args.model, args.steps, False, args.window_size))
        times["autodrop"].append(step_time(args.model, args.steps, True, args.window_size))
    result = {
        "model": args.model,
        "steps_per_run": args.steps,
        "repeats": args.repeats,
        "window_size": args.window_size,
        "threads": torch.get_num_threads(),
        "step_seconds": times,
        "median_ratio": statistics.median(times["autodrop"]) / statistics.median(times["stock"]),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / f"trainer_overhead_{args.model}_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
