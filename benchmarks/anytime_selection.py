"""How the horizon-free rule was chosen: candidates read at several budgets on cheap problems (anytime protocol).

python benchmarks/anytime_selection.py     # ~15 min on 2 cores; writes results/anytime_selection.{json,md}
python benchmarks/anytime_selection.py --b0 200 --seeds 1 --output /tmp/smoke     # a quick check
python benchmarks/anytime_selection.py --rules drift --seeds 2   # the drift hold: results/anytime_selection_drift.*

Each horizon-free schedule runs once per (problem, learning rate, seed) for 2·B0 steps and is read at B0/4, B0/2,
B0 and 2·B0; the oracle, linear decay, runs once per budget with that budget as its length. The tables give the
regret ``metric / oracle - 1`` (lower is better; negative beats the oracle), the mean over the learning rates and
seeds. Problems (float64, fresh noise every step): the README's quick-start regression (an 8-32-1 tanh MLP on
1,024 fixed points, AdamW with weight decay 0.01, full-data MSE, 50 warm-up steps) and the three problems of
``rule_selection.py`` that use Adam (noisy quadratic, logistic regression near a good solution, online
teacher-student MLP; 30 warm-up steps). Every AutoDrop rule is the library's readable twin
(:class:`autodrop_hf.core.autodrop_reference.ReferenceAutoDrop`); the rejected candidates are small variations of it.
The ``+ average`` schedules train as their base schedule and are read on a polynomial-decay average of the
iterates (``AVERAGE_GAMMA``): candidates for the next rule, measured after the ``anytime`` rule was frozen. The
last of them, the stairs of ``t^-0.25`` read on the average, was the preset ``anytime_average``: of the three, the
one whose worst (problem, budget) cell is best (the library updates its average from window means, which this
per-step average stands for). ``--rules drift`` runs the candidates of its successor instead, the drift hold
(``drift_ratio``) with stairs or halving, read on the average; halving is the preset now.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
from rule_selection import Logistic, NoisyQuadratic, TeacherStudent

from autodrop_hf import AutoDropConfig
from autodrop_hf.core.autodrop_reference import ReferenceAutoDrop
from autodrop_hf.core.weight_average import AVERAGE_GAMMA  # x̄_t = x̄_(t-1) + (γ+1)/(t+γ)·(x_t - x̄_(t-1))

RESULTS = Path(__file__).parent / "results"


class QuickStart:
    """The README's quick-start problem: ``sin`` summed over 8 inputs, 1,024 fixed points, an 8-32-1 tanh MLP."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.inputs = rng.standard_normal((1024, 8))
        self.targets = np.sin(self.inputs).sum(axis=1)
        bound1, bound2 = 1 / np.sqrt(8), 1 / np.sqrt(32)  # PyTorch's default initialisation
        self.x0 = np.concatenate([rng.uniform(-bound1, bound1, 8 * 32 + 32), rng.uniform(-bound2, bound2, 32 + 1)])

    @staticmethod
    def _split(x):
        return x[:256].reshape(8, 32), x[256:288], x[288:320], x[320]

    def grad(self, x, rng):
        batch = rng.integers(0, 1024, 32)
        inputs, targets = self.inputs[batch], self.targets[batch]
        weights, bias, head, head_bias = self._split(x)
        hidden = np.tanh(inputs @ weights + bias)
        residual = 2 * (hidden @ head + head_bias - targets) / len(batch)
        back = np.outer(residual, head) * (1 - hidden * hidden)
        return np.concatenate([(inputs.T @ back).ravel(), back.sum(0), hidden.T @ residual, [residual.sum()]])

    def loss(self, x):
        weights, bias, head, head_bias = self._split(x)
        return float(((np.tanh(self.inputs @ weights + bias) @ head + head_bias - self.targets) ** 2).mean())


class AdamW:
    momentum = 0.9

    def __init__(self, dim: int, weight_decay: float) -> None:
        self.m, self.v, self.t, self.weight_decay = np.zeros(dim), np.zeros(dim), 0, weight_decay

    def step(self, x, g, lr):
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * g
        self.v = 0.999 * self.v + 0.001 * g * g
        x = x * (1 - lr * self.weight_decay)
        return x - lr * (self.m / (1 - 0.9**self.t)) / (np.sqrt(self.v / (1 - 0.999**self.t)) + 1e-8)


class ScheduleFreeAdamW:
    """Schedule-Free AdamW (Defazio et al., 2024; the reference form of ``facebookresearch/schedule_free``):
    gradients at ``y``, the base sequence ``z``, the evaluated average ``x`` with weights lr² after warm-up."""

    def __init__(self, x0, lr: float, warmup: int, weight_decay: float, beta: float = 0.9) -> None:
        self.z, self.x, self.v = x0.copy(), x0.copy(), np.zeros_like(x0)
        self.lr, self.warmup, self.weight_decay, self.beta = lr, warmup, weight_decay, beta
        self.t, self.weight_sum, self.lr_max = 0, 0.0, 0.0

    def point(self):
        return (1 - self.beta) * self.z + self.beta * self.x

    def step(self, g) -> None:
        self.t += 1
        lr = self.lr * min(1.0, self.t / self.warmup) * math.sqrt(1 - 0.999**self.t)
        self.v = 0.999 * self.v + 0.001 * g * g
        self.z = self.z - lr * (g / (np.sqrt(self.v) + 1e-8) + self.weight_decay * self.point())
        self.lr_max = max(self.lr_max, lr)
        weight = self.lr_max**2
        self.weight_sum += weight
        self.x += (weight / self.weight_sum) * (self.z - self.x)


# (problem, weight decay, warm-up steps, learning rates)
PROBLEMS = {
    "quickstart": (QuickStart, 0.01, 50, (3e-3, 1e-2, 3e-2)),
    "nqm-adam": (NoisyQuadratic, 0.0, 30, (0.003, 0.01, 0.03)),
    "logistic-adam": (Logistic, 0.0, 30, (0.003, 0.01, 0.03)),
    "mlp-adam": (TeacherStudent, 0.0, 30, (0.001, 0.003, 0.01)),
}


class PowerStairs(ReferenceAutoDrop):
    """Rejected: the same rule with a steeper power law, ``(t_prev / t) ** exponent``."""

    exponent = 1.0

    def drop_factor(self) -> float:
        if len(self.decision_steps) < 2:
            return 1.0
        return (self.decision_steps[-2] / self.decision_steps[-1]) ** self.exponent


class PowerStairs075(PowerStairs):
    exponent = 0.75


class AboveTheFloor(ReferenceAutoDrop):
    """Rejected: drop (halve) only when the angle is significantly *above* its floor (mean reversion in a basin,
    the iterate stationary); hold otherwise."""

    def saturated(self) -> bool:
        saturated = super().saturated()
        return saturated and self.z > self.config.drift_z


class NoTest(ReferenceAutoDrop):
    """Control: the anytime stairs with every decision a drop (what the test adds)."""

    def saturated(self) -> bool:
        super().saturated()
        return self.decided


RULES = {
    "anytime (chosen)": (ReferenceAutoDrop, AutoDropConfig.anytime()),
    "power stairs, exponent 0.75": (PowerStairs075, AutoDropConfig.anytime()),
    "power stairs, exponent 1": (PowerStairs, AutoDropConfig.anytime()),
    "growing windows, halve when saturated": (ReferenceAutoDrop, AutoDropConfig.anytime(drop_factor=0.5)),
    "growing windows, halve above the floor": (AboveTheFloor, AutoDropConfig.anytime(drop_factor=0.5)),
    "anytime stairs, no test (control)": (NoTest, AutoDropConfig.anytime()),
    "previous rule (window 64, 0.95)": (ReferenceAutoDrop, AutoDropConfig(window_size=64, drop_factor=0.95)),
    "anytime_average's stairs (exponent 0.25)": (ReferenceAutoDrop, AutoDropConfig.anytime(power_exponent=0.25)),
}
# --rules drift: the drift hold (drift_ratio) on the same problems, measured after the real runs of the rules above
DRIFT_RULES = {
    "drift hold, t^-0.5 stairs": (ReferenceAutoDrop, AutoDropConfig.anytime(drift_ratio=1.0)),
    "drift hold, halve": (ReferenceAutoDrop, AutoDropConfig.anytime(drift_ratio=1.0, drop_factor=0.5)),
    "anytime_average's former stairs (exponent 0.25)": (ReferenceAutoDrop, AutoDropConfig.anytime(power_exponent=0.25)),
}
DRIFT_AVERAGED = (
    "constant + average",
    "drift hold, t^-0.5 stairs + average",
    "drift hold, halve + average",
    "anytime_average's former stairs (exponent 0.25) + average",
)
ANCHORS = ("constant", "wsd 20%", "schedule-free", "schedule-free 3x")
# read on the average, not the last iterate; the last was the preset anytime_average until the drift hold
AVERAGED = ("constant + average", "anytime (chosen) + average", "anytime_average's stairs (exponent 0.25) + average")


def use_rules(rules: str) -> None:
    """Make ``rules`` ("anytime" or "drift") the candidate sets :func:`run` reads, in this process."""
    global AVERAGED
    if rules == "drift":
        RULES.clear()
        RULES.update(DRIFT_RULES)
        AVERAGED = DRIFT_AVERAGED


def run(problem: str, schedule: str, length: int, lr: float, seed: int, budgets: list[int]) -> dict[int, float]:
    """The metric at each of ``budgets`` (those within ``length``) of one run."""
    make, weight_decay, warmup, _ = PROBLEMS[problem]
    data = make(np.random.default_rng(1000 + seed))
    rng = np.random.default_rng(seed)
    out = {}
    if schedule.startswith("schedule-free"):
        optimizer = ScheduleFreeAdamW(data.x0, lr * (3 if schedule.endswith("3x") else 1), warmup, weight_decay)
        for t in range(1, length + 1):
            optimizer.step(data.grad(optimizer.point(), rng))
            if t in budgets:
                out[t] = data.loss(optimizer.x)
        return out
    averaged = schedule in AVERAGED
    schedule = schedule.removesuffix(" + average")
    twin = None
    if schedule in RULES:
        cls, config = RULES[schedule]
        twin = cls(config, AdamW.momentum, None, warmup)
    x, optimizer = data.x0.copy(), AdamW(data.x0.size, weight_decay)
    average = x.copy()
    for t in range(1, length + 1):
        factor = min(1.0, t / warmup)
        if schedule == "linear" and t > warmup:
            factor = 1 - (t - 1 - warmup) / (length - warmup)
        elif schedule == "wsd 20%":
            factor *= min(1.0, (length - t + 1) / (0.2 * length))
        elif twin is not None:
            factor *= twin.lr_scales()[0]
        x = optimizer.step(x, data.grad(x, rng), lr * factor)
        if twin is not None:
            twin.step(torch.from_numpy(x))
        average += (AVERAGE_GAMMA + 1) / (t + AVERAGE_GAMMA) * (x - average)
        if t in budgets:
            out[t] = data.loss(average if averaged else x)
    return out


def cell(job: tuple[str, float, int, list[int]]) -> tuple[tuple[str, float, int], dict[str, dict[int, float]]]:
    problem, lr, seed, budgets = job
    metrics = {"linear": {b: run(problem, "linear", b, lr, seed, [b])[b] for b in budgets}}
    metrics["wsd 20%"] = {b: run(problem, "wsd 20%", b, lr, seed, [b])[b] for b in budgets}
    for schedule in ("constant", "schedule-free", "schedule-free 3x", *RULES, *AVERAGED):
        metrics[schedule] = run(problem, schedule, budgets[-1], lr, seed, budgets)
    return (problem, lr, seed), metrics


def tables(results: list[tuple[tuple[str, float, int], dict[str, dict[int, float]]]], budgets: list[int]) -> str:
    schedules = [s for s in results[0][1] if s != "linear"]
    regret: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for (problem, _, _), metrics in results:
        for schedule in schedules:
            for b in budgets:
                value = metrics[schedule][b] / metrics["linear"][b] - 1
                regret[(problem, schedule, b)].append(value)
                regret[("all", schedule, b)].append(value)
    heads = " | ".join(f"{b} steps" for b in budgets)
    lines = [
        "# The horizon-free rule on cheap problems (benchmarks/anytime_selection.py)",
        "",
        "Regret against linear decay run to each budget (metric / oracle − 1; negative beats it), mean over "
        "3 learning rates × seeds; one horizon-free run read at every budget.",
    ]
    ranks: dict[str, list[int]] = defaultdict(list)
    for problem in [*PROBLEMS, "all"]:
        lines += ["", f"**{problem}**", "", f"| schedule | {heads} |", "|---|" + "---|" * len(budgets)]
        for schedule in schedules:
            values = [statistics.fmean(regret[(problem, schedule, b)]) for b in budgets]
            lines.append(f"| {schedule} | " + " | ".join(f"{100 * v:+.1f}%" for v in values) + " |")
        for b in budgets if problem != "all" else ():
            order = sorted(schedules, key=lambda s, b=b: statistics.fmean(regret[(problem, s, b)]))
            for rank, schedule in enumerate(order, start=1):
                ranks[schedule].append(rank)
    lines += ["", "Mean rank over the (problem, budget) cells (1 = best):", "", "| schedule | mean rank |", "|---|---|"]
    for schedule in sorted(schedules, key=lambda s: statistics.fmean(ranks[s])):
        lines.append(f"| {schedule} | {statistics.fmean(ranks[schedule]):.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--b0", type=int, default=2000, help="read at b0/4, b0/2, b0 and 2·b0 steps")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per (problem, learning rate)")
    parser.add_argument("--jobs", type=int, default=2, help="processes")
    parser.add_argument("--output", type=Path, default=RESULTS, help="folder for anytime_selection.{json,md}")
    parser.add_argument("--tables", action="store_true", help="only write the tables of the --output folder's JSON")
    parser.add_argument(
        "--rules", choices=("anytime", "drift"), default="anytime", help="drift: the drift-hold candidates (-> *_drift)"
    )
    args = parser.parse_args()
    name = "anytime_selection" if args.rules == "anytime" else "anytime_selection_drift"
    use_rules(args.rules)
    if args.tables:
        records = json.loads((args.output / f"{name}.json").read_text())
        results = [
            (
                (r["problem"], r["lr"], r["seed"]),
                {k: {int(b): v for b, v in m.items()} for k, m in r["metrics"].items()},
            )
            for r in records
        ]
        budgets = sorted(next(iter(results[0][1].values())))
        (args.output / f"{name}.md").write_text(tables(results, budgets))
        return
    torch.set_num_threads(1)
    budgets = [args.b0 // 4, args.b0 // 2, args.b0, 2 * args.b0]
    jobs = [(p, lr, s, budgets) for p, (*_, rates) in PROBLEMS.items() for lr in rates for s in range(args.seeds)]
    with Pool(args.jobs, initializer=use_rules, initargs=(args.rules,)) as pool:
        results = pool.map(cell, jobs)
    args.output.mkdir(parents=True, exist_ok=True)
    records = [{"problem": p, "lr": lr, "seed": s, "metrics": m} for (p, lr, s), m in results]
    (args.output / f"{name}.json").write_text(json.dumps(records, indent=1) + "\n")
    (args.output / f"{name}.md").write_text(tables(results, budgets))
    print(tables(results, budgets), file=sys.stdout)


if __name__ == "__main__":
    main()
