"""Tables of the horizon-free benchmark: regret against the oracle at each budget (F1, F2) and the over-long
fine-tuning runs (F3).

python benchmarks/anytime_tables.py      # reads benchmarks/results/anytime/, writes tables.md there

F1/F2 (``anytime_quality.sh``): a horizon-free schedule's run is read at B0/4, B0/2, B0 and 2·B0; a schedule told
the horizon has one run per budget. The oracle at a budget is ``linear`` run to that budget. Regret is
``loss / oracle's loss − 1`` per seed (paired; for BLEU ``1 − BLEU / oracle's BLEU``: positive is worse either way),
then mean ± standard deviation over the seeds.
F3 (``glue_quality.sh`` with ``EPOCHS=10``): the dev metric at the end of each run, the steps it ran (of the
10 epochs' budget), and for AutoDrop the step where it said done.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "anytime"
NAME = re.compile(r"(?P<schedule>.+)_b(?P<budget>\d+)_seed(?P<seed>\d+)\.json")
#: AutoDrop's horizon-free schedules: each gets its drops, done, and the cells where it is ahead of each competitor.
LEADS = ("autodrop_anytime", "autodrop_averaged")
GLUE_NAME = re.compile(r"(?P<task>[a-z0-9]+)_(?P<schedule>.+)_seed(?P<seed>\d+)\.json")
GLUE_METRIC = {
    "cola": "eval_matthews_correlation",
    "mrpc": "eval_accuracy",
    "rte": "eval_accuracy",
    "sst2": "eval_accuracy",
}


def _mean_std(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    if not values:
        return "–"
    mean = statistics.fmean(values) * scale
    if len(values) == 1:
        return f"{mean:+.{digits}f} (1)"
    return f"{mean:+.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f} ({len(values)})"


def family_runs(folder: Path) -> dict[tuple[str, int], dict[int, dict]]:
    """``{(schedule, seed): {budget or read point: evaluation}}``: every run's evaluations by step."""
    runs: dict[tuple[str, int], dict[int, dict]] = defaultdict(dict)
    meta: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for path in sorted(folder.glob("*.json")):
        match = NAME.fullmatch(path.name)
        if match is None:
            continue
        result = json.loads(path.read_text())
        key = (match["schedule"], int(match["seed"]))
        for evaluation in result["evals"]:
            if result["schedule"] in ("linear", "wsd", "autodrop"):  # told the horizon: only its end counts
                if evaluation["step"] == result["budget"]:
                    runs[key][result["budget"]] = evaluation
            else:
                runs[key][evaluation["step"]] = evaluation
        meta[key].append(result)
    return runs, meta


def _regret(metric: str, value: float, oracle: float) -> float:
    return 1 - value / oracle if metric.endswith("bleu") else value / oracle - 1


def family_table(name: str, folder: Path, metric: str, budgets: list[int]) -> list[str]:
    runs, meta = family_runs(folder)
    seeds = sorted({seed for schedule, seed in runs if schedule == "linear"})
    schedules = sorted({schedule for schedule, _ in runs}, key=lambda s: (s not in LEADS, s))
    heads = " | ".join(f"{b} steps" for b in budgets)
    lines = [
        f"### {name}: regret against linear decay run to each budget (%, {metric})",
        "",
        f"| schedule | {heads} |",
        "|---|" + "---|" * len(budgets),
    ]
    oracle = {(b, s): runs[("linear", s)][b][metric] for s in seeds for b in budgets if b in runs[("linear", s)]}
    for schedule in schedules:
        cells = []
        for b in budgets:
            regrets = [
                _regret(metric, runs[(schedule, s)][b][metric], oracle[(b, s)])
                for s in seeds
                if b in runs.get((schedule, s), {}) and (b, s) in oracle
            ]
            cells.append(_mean_std(regrets, 100))
        lines.append(f"| {schedule} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Oracle (linear) {metric} by budget: "
        + ", ".join(
            f"{b}: {statistics.fmean(oracle[(b, s)] for s in seeds if (b, s) in oracle):.4f}"
            for b in budgets
            if any((b, s) in oracle for s in seeds)
        ),
    ]
    for lead in (lead for lead in LEADS if any(schedule == lead for schedule, _ in meta)):
        lines += ["", *_lead_lines(lead, runs, meta, schedules, seeds, budgets, metric)]
    seconds, seeds_run = defaultdict(list), defaultdict(set)
    for (schedule, seed), results in meta.items():
        seconds[schedule] += [r["train_seconds"] for r in results]
        seeds_run[schedule].add(seed)
    lines += [
        "",
        "Compute, minutes of one core per seed (all runs of the schedule): "
        + ", ".join(f"{s} {sum(seconds[s]) / 60 / len(seeds_run[s]):.0f}" for s in schedules),
    ]
    return lines


def _lead_lines(lead, runs, meta, schedules, seeds, budgets, metric) -> list[str]:
    """For one of AutoDrop's horizon-free schedules: its drops, done and final LR per seed, the train/dev gap, and
    the cells (budgets) where it is ahead of each other schedule, on the seeds both ran."""
    wins: dict[str, int] = defaultdict(int)
    compared: dict[str, int] = defaultdict(int)
    for schedule in schedules:
        for b in budgets:
            both = [s for s in seeds if b in runs.get((schedule, s), {}) and b in runs.get((lead, s), {})]
            if schedule == lead or not both:
                continue
            compared[schedule] += 1
            ahead = statistics.fmean(runs[(lead, s)][b][metric] - runs[(schedule, s)][b][metric] for s in both)
            if ahead > 0 if metric.endswith("bleu") else ahead < 0:
                wins[schedule] += 1
    extra, gaps = [], []
    for (schedule, seed), results in sorted(meta.items()):
        if schedule != lead:
            continue
        result = results[0]
        last = result["evals"][-1]
        if "train_loss" in last:
            gaps.append(f"seed {seed}: dev {last['dev_loss']:.4f}, train {last['train_loss']:.4f}")
        drops = len(result["autodrop"]["drops"])
        done = result["autodrop"]["done"]
        final = "final LR not logged"
        if result["train_log"]:
            lr = result["train_log"][-1]["lr"]
            final = f"final LR {lr:.3g} ({lr / result['learning_rate']:.2f} of the peak)"
        said = f"at step {done}" if done else "not said"
        extra.append(f"seed {seed}: {drops} drops, done {said}, {final}, {result['train_seconds'] / 60:.1f} min")
    lines = [f"{lead}: " + "; ".join(extra)]
    if gaps:
        lines += ["", f"{lead}, train/dev gap at the end (1,000 training sequences against dev): " + "; ".join(gaps)]
    return [
        *lines,
        "",
        f"Cells (budgets) where {lead} is ahead, by competitor: "
        + ", ".join(f"{s} {wins[s]} of {compared[s]}" for s in schedules if compared[s]),
    ]


def glue_table(folder: Path) -> list[str]:
    rows: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for path in sorted(folder.glob("*.json")):
        match = GLUE_NAME.fullmatch(path.name)
        if match:
            rows[(match["task"], match["schedule"])].append(json.loads(path.read_text()))
    if not rows:
        return []
    lines = [
        "### F3: MiniLM fine-tuning given 10 epochs",
        "",
        "| task | schedule | dev metric at the end | steps run | of the 10-epoch budget | AutoDrop said done at |",
        "|---|---|---|---|---|---|",
    ]
    for (task, schedule), results in sorted(rows.items()):
        metric = GLUE_METRIC.get(task, "eval_accuracy")
        values = [r[metric] for r in results if r.get(metric) is not None]
        steps = [r["optimizer_steps"] for r in results]
        budget = [r["trace"].get("max_steps") for r in results]
        done = [str(d) for r in results if (d := r["trace"].get("autodrop", {}).get("done")) is not None]
        share = ", ".join(f"{s / b:.0%}" for s, b in zip(steps, budget, strict=True) if b) or "–"
        mean = f"{statistics.fmean(values):.4f}" + (f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else "")
        lines.append(
            f"| {task} | {schedule} | {mean} ({len(values)}) | {', '.join(map(str, steps))} | {share} | "
            f"{', '.join(done) or '–'} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    lines = ["# The horizon-free benchmark (benchmarks/anytime_quality.sh; F3: glue_quality.sh with EPOCHS=10)", ""]
    for name, family, metric, budgets in (
        ("F1, byte-level LM", "lm", "dev_loss", [500, 1000, 2000, 4000]),
        ("F2, Multi30k de→en", "translation", "dev_loss", [250, 500, 1000, 2000]),
    ):
        if (args.results / family).exists():
            lines += [*family_table(name, args.results / family, metric, budgets), ""]
    if (args.results / "translation").exists():
        lines += family_table("F2, Multi30k de→en", args.results / "translation", "dev_bleu", [250, 500, 1000, 2000])
        lines += [""]
    if (args.results / "glue").exists():
        lines += glue_table(args.results / "glue")
    text = "\n".join(lines) + "\n"
    (args.results / "tables.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
