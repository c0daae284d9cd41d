"""AutoDrop's per-step cost and memory on a GPU: BERT-base, batch 32×128, bf16 autocast, fused AdamW.

    python benchmarks/gpu_overhead.py            # a few minutes on one GPU; writes results/gpu_overhead_<gpu>.json

Three variants of the same training step, interleaved in rounds so that clock and thermal drift hit all
alike: without AutoDrop, AutoDrop exact (12 bytes per trainable parameter), and the memory-light mode
(``sample_fraction=0.01``). Times come from CUDA events around the whole step (forward, backward, optimizer,
AutoDrop). Peak memory is measured per variant in a phase of its own. The model is BERT-base built from its
configuration (110M parameters, random weights: the cost does not depend on them), so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification

from autodrop_hf import AutoDrop, AutoDropConfig

VARIANTS = {"none": None, "exact": 1.0, "memory_light_0.01": 0.01}


def build(fraction: float | None, device: torch.device) -> tuple:
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(num_labels=2)).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=True)
    autodrop = None
    if fraction is not None:
        config = AutoDropConfig(window_size=64, sample_fraction=fraction)
        autodrop = AutoDrop(model, config, momentum=0.9, num_training_steps=100_000)
    return model, optimizer, autodrop


def step(model, optimizer, autodrop, batch) -> None:
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if autodrop is not None:
        autodrop.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=12, help="rounds of interleaved measurements")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per variant and round")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_overhead.py needs a CUDA GPU; on a CPU use benchmarks/step_overhead.py.")
    device = torch.device("cuda")
    batch = {
        "input_ids": torch.randint(0, 30522, (32, 128), device=device),
        "labels": torch.randint(0, 2, (32,), device=device),
    }
    peaks = {}
    for name, fraction in VARIANTS.items():  # peak memory, each variant alone
        built = build(fraction, device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(80):
            step(*built, batch)
        torch.cuda.synchronize()
        peaks[name] = torch.cuda.max_memory_allocated() / 2**30
        del built
        torch.cuda.empty_cache()
    built = {name: build(fraction, device) for name, fraction in VARIANTS.items()}
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for name in VARIANTS:  # warm-up
        for _ in range(20):
            step(*built[name], batch)
    for _ in range(args.rounds):
        for name in VARIANTS:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(args.steps):
                step(*built[name], batch)
            end.record()
            torch.cuda.synchronize()
            times[name].append(start.elapsed_time(end) / args.steps)
    base = statistics.median(times["none"])
    result = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "model": "bert-base (110M)",
        "batch": "32x128",
        "precision": "bf16 autocast, fused AdamW",
        "window_size": 64,
        "median_step_ms": {name: statistics.median(v) for name, v in times.items()},
        "overhead_vs_none": {name: statistics.median(v) / base - 1 for name, v in times.items() if name != "none"},
        "peak_memory_gib": peaks,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    out = args.output / f"gpu_overhead_{result['gpu'].replace(' ', '_').lower()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
