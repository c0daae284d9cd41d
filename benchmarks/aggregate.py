"""Aggregate the per-run result files of benchmarks/results/ into Markdown tables and figures.

python benchmarks/aggregate.py [--results DIR]   # writes DIR/tables.md and the figures, prints the tables

Run files are named ``<data>_<variant>_seed<N>.json`` (written by ``collect_run.py``); the variant is the
schedule (``autodrop`` = the library's defaults, ``autodrop_paper`` = the paper's preset). For each quality
benchmark: the headline metric (mean ± std over seeds), paired differences against ``linear`` with a paired
t-test and a sign test, mean ranks over data sets × seeds, drops and final learning rates, AutoDrop's angle
against its noise floor in every run, the compute used, and figures.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SCHEDULE_ORDER = ["autodrop", "autodrop_paper", "linear", "constant_with_warmup", "cosine", "reduce_lr_on_plateau"]
#: The schedules the library's default is ranked among (the issue's comparison set).
RANKED = ("autodrop", "linear", "constant_with_warmup", "cosine", "reduce_lr_on_plateau")
REFERENCE = "linear"
METRIC_DRIVEN = ("reduce_lr_on_plateau", "greedy")
#: P(z < −drift_z) for a standard normal z at the default drift_z = 2: how often noise alone holds.
CHANCE_HOLD = 0.5 * math.erfc(2 / math.sqrt(2))
HEADLINE_METRICS = ("eval_matthews_correlation", "eval_accuracy", "test_bleu")
SKIP = {"optimizer_steps", "parameters_millions"}
# (title, name of the figures and folder)
QUALITY_SECTIONS = (
    ("GLUE dev (MiniLM-L6, 3 epochs, lr 5e-5, warm-up 6%, batch 32, length-grouped batches)", "glue"),
    ("Multi30k de→en test2016 BLEU (from scratch, 2,000 steps)", "translation"),
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
    return (SCHEDULE_ORDER.index(variant) if variant in SCHEDULE_ORDER else len(SCHEDULE_ORDER), variant)


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


def headline_metric(runs: list[dict]) -> str | None:
    return next((m for m in HEADLINE_METRICS if any(m in run for run in runs)), None)


def _numeric_columns(runs: list[dict]) -> list[str]:
    return list(
        dict.fromkeys(
            k
            for run in runs
            for k, v in run.items()
            if k not in SKIP and k != "seed" and isinstance(v, int | float) and not isinstance(v, bool)
        )
    )


def headline_table(runs: list[dict]) -> str:
    """Variants down, data sets across: the headline metric, mean ± std (number of seeds)."""
    datasets = sorted({run["data"] for run in runs})
    metrics = {data: headline_metric([r for r in runs if r["data"] == data]) for data in datasets}
    groups = grouped(runs)
    lines = [
        "| schedule | " + " | ".join(f"{d} {metrics[d]}" for d in datasets) + " |",
        "|---" * (len(datasets) + 1) + "|",
    ]
    for variant in sorted({run["variant"] for run in runs}, key=_order):
        cells = []
        for data in datasets:
            values = [r[metrics[data]] for r in groups.get((data, variant), []) if metrics[data] in r]
            cells.append(f"{_cell(values)} ({len(values)})" if values else "–")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired(runs: list[dict], data: str, variant: str, reference: str = REFERENCE) -> dict | None:
    """Seed-paired differences ``variant - reference`` of the headline metric on one data set."""
    metric = headline_metric([r for r in runs if r["data"] == data])
    by_seed = defaultdict(dict)
    for run in runs:
        if run["data"] == data and metric in run:
            by_seed[run["seed"]][run["variant"]] = run[metric]
    differences = [v[variant] - v[reference] for v in by_seed.values() if variant in v and reference in v]
    if not differences:
        return None
    from scipy import stats

    wins, losses = sum(d > 0 for d in differences), sum(d < 0 for d in differences)
    t_p = (
        float(stats.ttest_1samp(differences, 0.0).pvalue)
        if len(differences) > 1 and len(set(differences)) > 1
        else math.nan
    )
    sign_p = float(stats.binomtest(wins, wins + losses).pvalue) if wins + losses else 1.0
    return {
        "n": len(differences),
        "mean": statistics.fmean(differences),
        "wins": wins,
        "losses": losses,
        "ties": len(differences) - wins - losses,
        "t_p": t_p,
        "sign_p": sign_p,
    }


def paired_table(runs: list[dict]) -> str:
    datasets = sorted({run["data"] for run in runs})
    lines = [
        f"| data | schedule − {REFERENCE} | seeds | mean difference | wins / ties / losses | paired t p | sign p |",
        "|---|---|---|---|---|---|---|",
    ]
    for data in datasets:
        for variant in sorted({r["variant"] for r in runs if r["data"] == data} - {REFERENCE}, key=_order):
            result = paired(runs, data, variant)
            if result is None:
                continue
            lines.append(
                f"| {data} | {variant} | {result['n']} | {result['mean']:+.4f} | {result['wins']} / {result['ties']} / "
                f"{result['losses']} | {result['t_p']:.3g} | {result['sign_p']:.3g} |"
            )
    return "\n".join(lines)


def mean_ranks(runs: list[dict], variants: tuple[str, ...] = RANKED) -> dict[str, tuple[float, int]]:
    """Mean rank (1 = best; ties share the mean rank) over the (data, seed) cells where every variant ran."""
    cells = defaultdict(dict)
    for run in runs:
        metric = headline_metric([r for r in runs if r["data"] == run["data"]])
        if run["variant"] in variants and metric in run:
            cells[(run["data"], run["seed"])][run["variant"]] = run[metric]
    ranks = defaultdict(list)
    for scores in cells.values():
        if set(scores) != set(variants):
            continue
        ordered = sorted(scores.values(), reverse=True)
        for variant, score in scores.items():
            positions = [i + 1 for i, s in enumerate(ordered) if s == score]
            ranks[variant].append(statistics.fmean(positions))
    return {v: (statistics.fmean(r), len(r)) for v, r in ranks.items()}


def ranks_table(runs: list[dict]) -> str:
    lines = ["| schedule | mean rank (1 = best) | cells (data × seed) |", "|---|---|---|"]
    for variant, (rank, cells) in sorted(mean_ranks(runs).items(), key=lambda kv: kv[1][0]):
        lines.append(f"| {variant} | {rank:.2f} | {cells} |")
    return "\n".join(lines)


def drops_table(runs: list[dict]) -> str:
    """Drops (AutoDrop), LR reductions (plateau) and final learning rate, mean over seeds."""
    lines = ["| data | schedule | drops | final lr | seconds per run |", "|---|---|---|---|---|"]
    for (data, variant), members in grouped(runs).items():
        drops = [m["drops"] for m in members if "drops" in m]
        seconds = [
            m.get("seconds", m.get("train_seconds")) for m in members if m.get("seconds", m.get("train_seconds"))
        ]
        lines.append(
            f"| {data} | {variant} | {_cell(drops)} | {_cell([m['final_lr'] for m in members])} | {_cell(seconds)} |"
        )
    return "\n".join(lines)


def signal_table(runs: list[dict]) -> str:
    """AutoDrop's view of every run: its angle against the noise floor, and what each decision did. For the
    default rule, the decisions' mean statistic z and the holds that pure noise would give (Φ(−2) = 2.3% of
    the decisions, ``drift_z`` = 2): holds well above that count are progress the angle measured."""
    lines = [
        "| data | schedule | seed | window | noise floor ψ | mean angle | decisions | mean z | "
        "held (progress) | held by chance | drops |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (data, variant), members in grouped(runs).items():
        for run in sorted(members, key=lambda r: r["seed"]):
            trace = run.get("trace", {}).get("autodrop")
            if not trace or not trace.get("noise_floor"):
                continue
            decisions = trace.get("decisions", {"step": [], "dropped": [], "statistic": []})
            default = variant == "autodrop"
            held = sum(not d for d in decisions["dropped"]) if default else "–"
            mean_z = f"{statistics.fmean(decisions['statistic']):+.2f}" if default and decisions["step"] else "–"
            chance = f"{CHANCE_HOLD * len(decisions['step']):.1f}" if default else "–"
            window = (trace["step"][1] - trace["step"][0]) if len(trace["step"]) > 1 else "–"
            lines.append(
                f"| {data} | {variant} | {run['seed']} | {window} | {trace['noise_floor']:.2f}° | "
                f"{statistics.fmean(trace['angle']):.2f}° | {len(decisions['step'])} | {mean_z} | {held} | "
                f"{chance} | {len(trace['drop_steps'])} |"
            )
    return "\n".join(lines)


def runs_table(runs: list[dict]) -> str:
    """One row per run."""
    columns = _numeric_columns(runs)
    lines = ["| data | schedule | seed | " + " | ".join(columns) + " |", "|---" * (len(columns) + 3) + "|"]
    for (data, variant), members in grouped(runs).items():
        for m in sorted(members, key=lambda run: run["seed"]):
            cells = [_cell([m[c]] if isinstance(m.get(c), int | float) else []) for c in columns]
            lines.append(f"| {data} | {variant} | {m['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_table(results: Path) -> str:
    lines = ["| benchmark | model | setting | result |", "|---|---|---|---|"]
    for path in sorted(results.glob("step_overhead_*.json")):
        r = json.loads(path.read_text())
        lines.append(
            f"| AutoDrop.step() alone | {r['model']} ({r['trainable_parameters'] / 1e6:.1f}M) | "
            f"{_mode(r)}, window {r['window_size']}, batch {r['batch']}, {r['threads']} threads | "
            f"{r['mean_ms']['autodrop_step']:.2f} ms/step = {100 * r['autodrop_over_training_step']:.2f}% of the "
            f"training step ({100 * r['autodrop_over_optimizer_step']:.1f}% of AdamW's step); "
            f"{r['bytes_per_trainable_parameter']:.2g} bytes per trainable parameter |"
        )
    for path in sorted(results.glob("gather_floor_*.json")):
        r = json.loads(path.read_text())
        cells = [f"{name.replace('_', ' ')} ({p['blocks']:,}): {p['ms']:.2f} ms" for name, p in r["patterns"].items()]
        lines.append(
            f"| memory-light floor: one flat tensor, after a write and a cache sweep | {r['parameters'] / 1e6:.1f}M "
            f"elements | {r['sample_fraction']:g}, {r['threads']} thread(s) | {'; '.join(cells)} |"
        )
    for path in sorted(results.glob("trainer_overhead_*.json")):
        r = json.loads(path.read_text())
        lines.append(
            f"| Trainer + AutoDropCallback vs stock | {r['model']} | window {r['window_size']}, "
            f"{r['repeats']}×{r['steps_per_run']} steps interleaved | step time ratio {r['median_ratio']:.3f} |"
        )
    return "\n".join(lines)


def sampling_table(results: Path) -> str:
    """The memory-light mode against exact mode on recorded real runs (``sampling_error.py``)."""
    lines = [
        "| run | fraction | block | watched parameters | bytes per parameter | angle error median / p95 / max | "
        "same decisions (differing: z, exact → sampled) |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in sorted(results.glob("sampling_error_*.json")):
        r = json.loads(path.read_text())
        exact = r["exact"]
        run = f"{r['data']}, {r['steps']} steps, window {r['window_size']}, "
        run += f"{exact['decisions']} decisions, {exact['drops']} drops"
        samples = [r[k] | {"fraction": k.split("_")[1]} for k in r if k.startswith("sample_")]
        for m in sorted(samples, key=lambda m: (-float(m["fraction"]), -m["block"])):
            same = "–" if m["same_decisions"] is None else f"{100 * m['same_decisions']:.1f}%"
            differing = m.get("differing_statistics", [])
            flips = [f"step {d['step']}: z {d['exact_z']:.2f} → {d['sampled_z']:.2f}" for d in differing]
            if flips:  # how close to the threshold (z = -drift_z) the exact decision was
                same += f" ({'; '.join(flips)})"
            lines.append(
                f"| {run} | {m['fraction']} | {m['block']:,} | "
                f"{m['watched_parameters']:,} of {r['trainable_parameters']:,} | "
                f"{m['bytes_per_parameter']:.2f} | {m['angle_error_median_degrees']:.2f}° / "
                f"{m['angle_error_p95_degrees']:.2f}° / {m['angle_error_max_degrees']:.2f}° | {same} |"
            )
    return "\n".join(lines)


def _mode(result: dict) -> str:
    fraction = result.get("sample_fraction", 1.0)
    average = " + weight average" if result.get("average") else ""
    if fraction == 1:
        return "exact" + average
    block = f", blocks of {result['sample_block']}" if "sample_block" in result else ""
    return f"memory-light ({fraction:g}{block})" + average


def compute_line(runs: list[dict]) -> str:
    seconds = sum(run.get("seconds", run.get("train_seconds", 0.0)) for run in runs)
    return f"{len(runs)} runs, {seconds / 3600:.1f} hours of run time in all (one CPU thread per run)."


def plot_quality(runs: list[dict], output: Path) -> None:
    """One panel per data set: the headline metric of every seed (dots) and their mean (bar) per schedule."""
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


def plot_task(runs: list[dict], data: str, output: Path) -> None:
    """One data set: the learning rate and training loss of every schedule (first seed), and for every seed
    AutoDrop's angle against its noise floor and each decision's statistic (drops ▼, holds ●)."""
    import matplotlib.pyplot as plt

    members = [r for r in runs if r["data"] == data]
    first_seed = min(r["seed"] for r in members)
    figure, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    for run in sorted(members, key=lambda r: _order(r["variant"])):
        train = run.get("trace", {}).get("train")
        if run["seed"] == first_seed and train:
            style = {"color": f"C{_order(run['variant'])[0]}"}
            axes[0].plot(train["step"], train["learning_rate"], label=run["variant"], **style)
            axes[1].plot(train["step"], train["loss"], alpha=0.8, **style)
    for index, run in enumerate(sorted((r for r in members if r["variant"] == "autodrop"), key=lambda r: r["seed"])):
        trace = run.get("trace", {}).get("autodrop")
        if not trace:
            continue
        axes[2].plot(trace["step"], trace["angle"], ".", markersize=2, alpha=0.35, color=f"C{index}")
        if trace.get("noise_floor"):
            axes[2].axhline(trace["noise_floor"], color="black", linestyle="--", linewidth=1)
        decisions = trace.get("decisions")
        if decisions:
            for dropped, marker in ((True, "v"), (False, "o")):
                points = [
                    (s, z)
                    for s, z, d in zip(decisions["step"], decisions["statistic"], decisions["dropped"], strict=True)
                    if d is dropped and z is not None
                ]
                if points:
                    axes[3].plot(
                        *zip(*points, strict=True),
                        marker,
                        color=f"C{index}",
                        markersize=4,
                        label=f"seed {run['seed']}" if dropped else None,
                    )
    axes[3].axhline(-2, color="black", linestyle=":", linewidth=1)
    axes[0].set_ylabel("learning rate")
    axes[0].legend(fontsize="small")
    axes[0].set_title(f"{data}: schedules (seed {first_seed}); AutoDrop's angle and decisions (every seed)")
    axes[1].set_ylabel("training loss")
    axes[2].set_ylabel("angle (°), ψ dashed")
    axes[3].set_ylabel("decision z (▼ drop, ● hold)")
    if axes[3].get_legend_handles_labels()[0]:
        axes[3].legend(fontsize="small", ncol=3)
    axes[3].set_xlabel("optimizer step")
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="the results folder (default: benchmarks/results)"
    )
    results = parser.parse_args().results
    import matplotlib

    matplotlib.use("Agg")
    sections = ["# Benchmark results\n", "## Cost (CPU)\n", cost_table(results)]
    if any(results.glob("sampling_error_*.json")):
        sections += ["\n## The memory-light mode against exact mode (recorded real runs)\n", sampling_table(results)]
    for title, name in QUALITY_SECTIONS:
        runs = load_runs(results / name) if (results / name).exists() else []
        if not runs:
            continue
        sections += [
            f"\n## {title}\n",
            "Headline metric, mean ± std (seeds):\n",
            headline_table(runs),
            f"\nPaired by seed against {REFERENCE}:\n",
            paired_table(runs),
            f"\nMean rank among {', '.join(RANKED)}:\n",
            ranks_table(runs),
            "\nDrops and final learning rate:\n",
            drops_table(runs),
            "\nAutoDrop's angle against its noise floor, per run:\n",
            signal_table(runs),
            "",
            compute_line(runs),
            "\n<details><summary>Every run</summary>\n",
            runs_table(runs),
            "\n</details>",
        ]
        plot_quality(runs, results / f"{name}_quality.png")
        for data in sorted({run["data"] for run in runs}):
            plot_task(runs, data, results / name / f"{data}.png")
    text = "\n".join(sections) + "\n"
    (results / "tables.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
