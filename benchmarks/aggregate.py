"""Aggregate the per-run result files of benchmarks/results/ into Markdown tables and figures.

python benchmarks/aggregate.py     # writes benchmarks/results/tables.md and the figures, prints the tables

Run files are named ``<data>_<variant>_seed<N>.json`` (written by ``collect_run.py``); the variant is
the schedule, or the schedule and the changed setting for ablations.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SCHEDULE_ORDER = ["autodrop", "linear", "constant_with_warmup", "cosine", "reduce_lr_on_plateau", "greedy"]
METRIC_DRIVEN = ("reduce_lr_on_plateau", "greedy")
SKIP = {"optimizer_steps", "parameters_millions"}
HEADLINE_METRICS = ("eval_matthews_correlation", "eval_accuracy", "test_bleu")
# (title, name of the figures, folders whose runs the section compares)
QUALITY_SECTIONS = (
    ("GLUE dev (MiniLM-L6, 3 epochs, lr 5e-5, warm-up 6%, batch 32)", "glue", ("glue", "ablations")),
    ("Multi30k de→en test2016 BLEU (from scratch)", "translation", ("translation",)),
)
RUN_NAME = re.compile(r"(?P<data>[^_]+)_(?P<variant>.+)_seed(?P<seed>\d+)")


def load_runs(folder: Path) -> list[dict]:
    """Every run file of ``folder`` with ``data``, ``variant`` and ``seed`` taken from its name."""
    runs = []
    for path in sorted(folder.glob("*.json")):
        name = RUN_NAME.fullmatch(path.stem)
        if name is None:
            raise ValueError(f"{path}: run files are named <data>_<variant>_seed<N>.json")
        run = {**json.loads(path.read_text()), **name.groupdict(), "seed": int(name["seed"])}
        count_drops(run)
        runs.append(run)
    return runs


def count_drops(run: dict) -> None:
    """``drops``: AutoDrop's drops; for the metric-driven schedules, the decreases of the logged LR;
    none for fixed schedules (whose LR decays continuously)."""
    if run["variant"].startswith(METRIC_DRIVEN) and "train" in run.get("trace", {}):
        lrs = run["trace"]["train"]["learning_rate"] + [run.get("final_lr", 0.0)]  # a reduction after the last log
        run["drops"] = sum(later < earlier for earlier, later in pairwise(lrs))
    elif not run["variant"].startswith("autodrop"):
        run.pop("drops", None)


def _order(variant: str) -> tuple[int, str]:
    schedule = next((s for s in SCHEDULE_ORDER if variant.startswith(s)), None)
    return (SCHEDULE_ORDER.index(schedule) if schedule else len(SCHEDULE_ORDER), variant)


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.fmean(values):.4g} ± {statistics.stdev(values):.2g}"


def grouped(runs: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Runs by (data, variant), in data then schedule order."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run in runs:
        groups[(run["data"], run["variant"])].append(run)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0], _order(kv[0][1]))))


def _numeric_columns(runs: list[dict]) -> list[str]:
    return list(
        dict.fromkeys(
            k
            for run in runs
            for k, v in run.items()
            if k not in SKIP and k != "seed" and isinstance(v, int | float) and not isinstance(v, bool)
        )
    )


def quality_table(runs: list[dict]) -> str:
    """One row per (data, variant): mean ± sample std over seeds of every numeric column."""
    columns = _numeric_columns(runs)
    lines = ["| data | variant | seeds | " + " | ".join(columns) + " |", "|---" * (len(columns) + 3) + "|"]
    for (data, variant), members in grouped(runs).items():
        cells = [_cell([m[c] for m in members if isinstance(m.get(c), int | float)]) for c in columns]
        lines.append(f"| {data} | {variant} | {len(members)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline_table(runs: list[dict]) -> str:
    """Variants down, data sets across: the headline metric, mean ± std (number of seeds)."""
    datasets = sorted({run["data"] for run in runs})
    metrics = {data: headline_metric([r for r in runs if r["data"] == data]) for data in datasets}
    variants = sorted({run["variant"] for run in runs}, key=_order)
    groups = grouped(runs)
    header = " | ".join(f"{data} {metrics[data]}" for data in datasets)
    lines = [f"| variant | {header} |", "|---" * (len(datasets) + 1) + "|"]
    for variant in variants:
        cells = []
        for data in datasets:
            values = [r[metrics[data]] for r in groups.get((data, variant), []) if metrics[data] in r]
            cells.append(f"{_cell(values)} ({len(values)})" if values else "–")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def runs_table(runs: list[dict]) -> str:
    """One row per run."""
    columns = _numeric_columns(runs)
    lines = ["| data | variant | seed | " + " | ".join(columns) + " |", "|---" * (len(columns) + 3) + "|"]
    for (data, variant), members in grouped(runs).items():
        for m in sorted(members, key=lambda run: run["seed"]):
            cells = [_cell([m[c]] if isinstance(m.get(c), int | float) else []) for c in columns]
            lines.append(f"| {data} | {variant} | {m['seed']} | " + " | ".join(cells) + " |")
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


def compute_line(runs: list[dict]) -> str:
    seconds = sum(run.get("seconds", run.get("train_seconds", 0.0)) for run in runs)
    return f"{len(runs)} runs, {seconds / 3600:.2f} hours of wall time in all."


def headline_metric(runs: list[dict]) -> str | None:
    return next((m for m in HEADLINE_METRICS if any(m in run for run in runs)), None)


def plot_quality(runs: list[dict], output: Path) -> None:
    """One panel per data set: the headline metric of every seed (dots) and their mean (bar) per variant."""
    import matplotlib.pyplot as plt

    by_data: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        by_data[run["data"]].append(run)
    figure, axes = plt.subplots(1, len(by_data), figsize=(4.2 * len(by_data), 3.8), squeeze=False)
    for axis, (data, members) in zip(axes[0], sorted(by_data.items()), strict=True):
        metric = headline_metric(members)
        groups = grouped(members)
        for x, group in enumerate(groups.values()):
            values = [m[metric] for m in group if metric in m]
            axis.plot([x] * len(values), values, "o", alpha=0.6, color="tab:blue")
            if values:
                axis.hlines(statistics.fmean(values), x - 0.3, x + 0.3, color="black")
        axis.set_xticks(range(len(groups)), [variant for _, variant in groups], rotation=35, ha="right")
        axis.set_title(f"{data}: {metric} (dots: seeds, bar: mean)", fontsize="medium")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    plt.close(figure)


def plot_schedules(runs: list[dict], data: str, seed: int, output: Path) -> None:
    """Learning rate and training loss of every variant, and AutoDrop's angular velocity, for one seed."""
    import matplotlib.pyplot as plt

    chosen = [r for (d, _), group in grouped(runs).items() if d == data for r in group if r["seed"] == seed]
    figure, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    for index, run in enumerate(chosen):
        style = {"color": f"C{index}", "linestyle": "-" if run["variant"] in SCHEDULE_ORDER else "--"}
        train = run.get("trace", {}).get("train")
        if train:
            axes[0].plot(train["step"], train["learning_rate"], label=run["variant"], **style)
            axes[1].plot(train["step"], train["loss"], alpha=0.8, **style)
        autodrop = run.get("trace", {}).get("autodrop")
        if autodrop:
            axes[2].plot(autodrop["step"], autodrop["angle"], ".", markersize=2, alpha=0.4, color=style["color"])
            smoothed = [(s, v) for s, v in zip(autodrop["step"], autodrop["smoothed"], strict=True) if v is not None]
            if smoothed:
                axes[2].plot(*zip(*smoothed, strict=True), label=f"{run['variant']}: smoothed (dots: raw)", **style)
            if autodrop["drop_steps"]:
                marks = [min(autodrop["angle"])] * len(autodrop["drop_steps"])
                axes[2].plot(autodrop["drop_steps"], marks, "v", color=style["color"], label=f"{run['variant']}: drops")
    axes[0].set_ylabel("learning rate")
    axes[0].legend(fontsize="small")
    axes[1].set_ylabel("training loss")
    axes[2].set_ylabel("angular velocity (degrees)")
    axes[2].legend(fontsize="small")
    axes[2].set_xlabel("optimizer step")
    axes[0].set_title(f"{data}, seed {seed}")
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    plt.close(figure)


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    sections = ["# Benchmark results\n", "## Cost (CPU)\n", cost_table()]
    for title, name, folders in QUALITY_SECTIONS:
        runs = [run for folder in folders if (RESULTS / folder).exists() for run in load_runs(RESULTS / folder)]
        if not runs:
            continue
        sections += [f"\n## {title}\n", headline_table(runs), "", quality_table(runs), "", compute_line(runs)]
        sections += ["\n<details><summary>Every run</summary>\n", runs_table(runs), "\n</details>"]
        plot_quality(runs, RESULTS / f"{name}_quality.png")
        for data in sorted({run["data"] for run in runs}):
            seeds = Counter(run["seed"] for run in runs if run["data"] == data)
            seed = max(seeds, key=lambda s: (seeds[s], -s))  # the seed most variants ran
            plot_schedules(runs, data, seed, RESULTS / name / f"{data}_schedules_seed{seed}.png")
    text = "\n".join(sections) + "\n"
    (RESULTS / "tables.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
