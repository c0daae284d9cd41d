"""The memory-light mode's floor on this CPU: what reading its sample costs right after the optimizer has
written every parameter, without the per-tensor overhead of a real model.

    python benchmarks/gather_floor.py   # MiniLM-L6 size (22.7M), 1%: results/gather_floor_threads1_cpu.json

One flat float32 tensor of the model's size stands for the parameters. Before each timed accumulation every
element is written and a 128 MB buffer is swept, as an optimizer step leaves the caches, so every watched
block is a cache miss. The accumulation is the library's (``window_sum += sample``, the sample a strided
``(blocks, block)`` view). Patterns, all at one element in ``stride`` blocks:

- ``blocks_of_8``: the library's choice for MiniLM at 1% (28,392 blocks; median angle error ≈ 27°/√n = 0.16°);
- ``blocks_of_16``: a whole 64-byte cache line per block, half as many blocks (≈ 0.23°);
- ``one_element_per_block_of_8``: the same 28,392 cache lines, one element each (an eighth of the bytes): what
  touching the lines costs, whatever is read from them;
- ``contiguous``: as many elements as ``blocks_of_8``, in one run (what the bytes alone cost).

Per-tensor ops run on one core in a real model (each sampled view is far below PyTorch's intra-op grain), so
the floor is measured with one thread by default.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from step_overhead import cpu_name

from autodrop_hf.core.angular_velocity import sample_block_size

MINILM_PARAMETERS = 22_713_986


def patterns(params: torch.Tensor, stride: int, block: int) -> dict[str, torch.Tensor]:
    """The sampled views of ``params`` (one flat tensor) timed by this benchmark."""
    blocks = params.numel() // (block * stride)
    return {
        f"blocks_of_{block}": params.as_strided((blocks, block), (block * stride, 1)),
        f"blocks_of_{2 * block}": params.as_strided((blocks // 2, 2 * block), (2 * block * stride, 1)),
        f"one_element_per_block_of_{block}": params.as_strided((blocks,), (block * stride,)),
        "contiguous": params[: blocks * block],
    }


def time_after_optimizer_pass(view: torch.Tensor, params: torch.Tensor, sweep: torch.Tensor, repeats: int) -> float:
    """Median milliseconds of ``window_sum += view`` right after every parameter was written and the caches
    were swept."""
    window_sum = torch.zeros(view.shape)
    times = []
    for _ in range(repeats):
        params.mul_(1.0)
        sweep.add_(1.0)
        start = time.perf_counter()
        window_sum.add_(view)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parameters", type=int, default=MINILM_PARAMETERS)
    parser.add_argument("--sample_fraction", type=float, default=0.01)
    parser.add_argument("--sample_block", type=int, help="elements per block (default: the library's choice)")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    stride = round(1 / args.sample_fraction)
    block = args.sample_block or sample_block_size(args.parameters, stride)
    params = torch.randn(args.parameters)
    sweep = torch.zeros(32 * 1024 * 1024)
    result: dict = {
        "parameters": args.parameters,
        "sample_fraction": args.sample_fraction,
        "threads": args.threads,
        "device": cpu_name(),
        "torch": torch.__version__,
        "patterns": {},
    }
    for name, view in patterns(params, stride, block).items():
        ms = time_after_optimizer_pass(view, params, sweep, args.repeats)
        blocks = 1 if name == "contiguous" else view.shape[0]
        result["patterns"][name] = {
            "ms": ms,
            "blocks": blocks,
            "elements": view.numel(),
            "ns_per_block": ms * 1e6 / blocks,
        }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / f"gather_floor_threads{args.threads}_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
