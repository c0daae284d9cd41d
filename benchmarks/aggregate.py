"""Aggregate the per-run result files of benchmarks/results/ into Markdown tables.

python benchmarks/aggregate.py            # prints and writes benchmarks/results/tables.md
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SCHEDULE_ORDER = ["autodrop", "linear", "constant_with_warmup", "cosine", "reduce_lr_on_plateau", "greedy"]
SKIP = {"task", "schedule", "optimizer_steps", "parameters_millions"}


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.fmean(values):.4g} ± {statistics.stdev(values):.2g}"


def quality_table(folder: Path, group_key: str | None) -> str:
    """One row per (group, schedule): mean ± std over seeds of every numeric column, and the seed count."""
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    if not runs:
        return ""
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run in runs:
        grouped[(run.get(group_key, folder.name) if group_key else folder.name, run["schedule"])].append(run)
    columns = list(
        dict.fromkeys(k for run in runs for k, v in run.items() if k not in SKIP and isinstance(v, int | float))
    )
    lines = [f"| {group_key or 'data'} | schedule | seeds | " + " | ".join(columns) + " |"]
    lines.append("|---" * (len(columns) + 3) + "|")
    order = {name: i for i, name in enumerate(SCHEDULE_ORDER)}
    for (group, schedule), members in sorted(grouped.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99))):
        cells = [_cell([m[c] for m in members if isinstance(m.get(c), int | float)]) for c in columns]
        lines.append(f"| {group} | {schedule} | {len(members)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_table() -> str:
    lines = ["| benchmark | model | setting | result |", "|---|---|---|---|"]
    for path in sorted(RESULTS.glob("step_overhead_*.json")):
        r = json.loads(path.read_text())
        lines.append(
            f"| AutoDrop.step() alone | {r['model']} ({r['trainable_parameters'] / 1e6:.1f}M) | "
            f"window {r['window_size']}, batch {r['batch']}, {r['threads']} threads | "
            f"{r['mean_ms']['autodrop_step']:.1f} ms/step = {100 * r['autodrop_over_training_step']:.1f}% of the "
            f"training step ({100 * r['autodrop_over_optimizer_step']:.0f}% of AdamW's step); "
            f"{r['bytes_per_trainable_parameter']:.0f} bytes per trainable parameter |"
        )
    for path in sorted(RESULTS.glob("trainer_overhead_*.json")):
        r = json.loads(path.read_text())
        lines.append(
            f"| Trainer + AutoDropCallback vs stock | {r['model']} | window {r['window_size']}, "
            f"{r['repeats']}×{r['steps_per_run']} steps interleaved | step time ratio {r['median_ratio']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    sections = ["# Benchmark results\n", "## Cost (CPU)\n", cost_table()]
    for title, folder, key in (
        ("GLUE dev (MiniLM-L6, 3 epochs, lr 5e-5, warm-up 6%, batch 32)", RESULTS / "glue", "task"),
        ("Multi30k de→en test2016 BLEU (from scratch)", RESULTS / "translation", None),
    ):
        table = quality_table(folder, key) if folder.exists() else ""
        if table:
            sections += [f"\n## {title}\n", table]
    text = "\n".join(sections) + "\n"
    (RESULTS / "tables.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
