"""How the default rule was chosen: candidate saturation rules against the usual schedules on cheap problems.

python benchmarks/rule_selection.py      # ~15 min on one core; writes benchmarks/results/rule_selection.{json,md}
python benchmarks/rule_selection.py --budgets 100 --seeds 1 --output /tmp/smoke   # a quick check

Problems (float64, fresh noise every step, 5 seeds each, budgets T = 300, 1000, 3000 steps, 6% warm-up):
- ``nqm-adam``, ``nqm-sgdm``: the paper's noisy quadratic (x in R^200, A = diag(1..200)/10, c ~ N(0, I)) from
  x0 ~ N(0, A^-1), with Adam (β1 0.9) or SGD with momentum 0.9; metric: the excess loss ½xᵀAx;
- ``logistic-adam``: logistic regression (d = 100) started near a good solution, as in fine-tuning; test loss;
- ``mlp-adam``: online teacher-student regression with a tanh MLP (20-64-1), label noise 0.3; test MSE.

Each schedule runs at three peak learning rates per problem. The AutoDrop rules are the library's readable
twin (:class:`autodrop_hf.core.autodrop_reference.ReferenceAutoDrop`, which the tests hold the fast path to), so
these are the decisions the library takes; the rejected candidates are small variations of it defined here.
The tables give each schedule's mean final metric and its mean rank over the 12 (problem, T) cells, at the
best learning rate of each schedule and over every learning rate.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from autodrop_hf import AutoDropConfig
from autodrop_hf.core.autodrop_reference import ReferenceAutoDrop

RESULTS = Path(__file__).parent / "results"
SEEDS, BUDGETS, WARMUP = range(5), (300, 1000, 3000), 0.06


# ------------------------------------------------------------------------------------------ problems
class NoisyQuadratic:
    def __init__(self, rng: np.random.Generator, dim: int = 200) -> None:
        self.a = np.arange(1, dim + 1) / 10
        self.x0 = rng.standard_normal(dim) / np.sqrt(self.a)

    def grad(self, x, rng):
        return self.a * (x - rng.standard_normal(x.size))

    def loss(self, x):
        return 0.5 * float((self.a * x * x).sum())


class Logistic:
    def __init__(self, rng: np.random.Generator, dim: int = 100, batch: int = 32) -> None:
        self.w, self.batch = rng.standard_normal(dim) * 0.5, batch
        self.x0 = self.w * 0.3 + rng.standard_normal(dim) * 0.05
        self.test_x = rng.standard_normal((5000, dim))
        self.test_y = (rng.random(5000) < 1 / (1 + np.exp(-self.test_x @ self.w))).astype(float)

    def grad(self, x, rng):
        features = rng.standard_normal((self.batch, x.size))
        labels = (rng.random(self.batch) < 1 / (1 + np.exp(-features @ self.w))).astype(float)
        return features.T @ (1 / (1 + np.exp(-features @ x)) - labels) / self.batch

    def loss(self, x):
        z = self.test_x @ x
        return float(np.mean(np.logaddexp(0, z) - self.test_y * z))


class TeacherStudent:
    def __init__(self, rng: np.random.Generator, inputs: int = 20, hidden: int = 64, batch: int = 32) -> None:
        self.teacher = (
            rng.standard_normal((inputs, hidden)) / np.sqrt(inputs),
            rng.standard_normal(hidden) / np.sqrt(hidden),
        )
        self.inputs, self.hidden, self.batch = inputs, hidden, batch
        student = (
            rng.standard_normal((inputs, hidden)) / np.sqrt(inputs),
            rng.standard_normal(hidden) * 0.1 / np.sqrt(hidden),
        )
        self.x0 = np.concatenate([student[0].ravel(), student[1]])
        self.test_x = rng.standard_normal((4000, inputs))
        self.test_y = self._net(self.test_x, *self.teacher)

    @staticmethod
    def _net(features, weights, head):
        return np.tanh(features @ weights) @ head

    def _split(self, x):
        return x[: self.inputs * self.hidden].reshape(self.inputs, self.hidden), x[self.inputs * self.hidden :]

    def grad(self, x, rng):
        weights, head = self._split(x)
        features = rng.standard_normal((self.batch, self.inputs))
        targets = self._net(features, *self.teacher) + 0.3 * rng.standard_normal(self.batch)
        hidden = np.tanh(features @ weights)
        residual = hidden @ head - targets
        grad_head = hidden.T @ residual / self.batch
        grad_weights = features.T @ ((residual[:, None] * head[None, :]) * (1 - hidden * hidden)) / self.batch
        return np.concatenate([grad_weights.ravel(), grad_head])

    def loss(self, x):
        return float(((self._net(self.test_x, *self._split(x)) - self.test_y) ** 2).mean())


class Adam:
    momentum = 0.9

    def __init__(self, dim: int) -> None:
        self.m, self.v, self.t = np.zeros(dim), np.zeros(dim), 0

    def step(self, x, g, lr):
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * g
        self.v = 0.999 * self.v + 0.001 * g * g
        return x - lr * (self.m / (1 - 0.9**self.t)) / (np.sqrt(self.v / (1 - 0.999**self.t)) + 1e-8)


class MomentumSGD:
    momentum = 0.9

    def __init__(self, dim: int) -> None:
        self.buffer = np.zeros(dim)

    def step(self, x, g, lr):
        self.buffer = 0.9 * self.buffer + g
        return x - lr * self.buffer


PROBLEMS = {
    "nqm-adam": (NoisyQuadratic, Adam, (0.003, 0.01, 0.03)),
    "nqm-sgdm": (NoisyQuadratic, MomentumSGD, (0.001, 0.003, 0.01)),
    "logistic-adam": (Logistic, Adam, (0.003, 0.01, 0.03)),
    "mlp-adam": (TeacherStudent, Adam, (0.001, 0.003, 0.01)),
}


# ------------------------------------------------------------------------------------------ schedules
class Fixed:
    """linear, cosine or constant after a linear warm-up."""

    def __init__(self, kind: str, total: int, warmup: int) -> None:
        self.kind, self.total, self.warmup = kind, total, warmup

    def factor(self, t: int) -> float:
        if t < self.warmup:
            return t / self.warmup
        progress = (t - self.warmup) / max(1, self.total - self.warmup)
        return {"constant": 1.0, "linear": 1 - progress, "cosine": 0.5 * (1 + math.cos(math.pi * progress))}[self.kind]

    def observe(self, x) -> None:
        pass


class Rule:
    """An AutoDrop rule through the library's readable twin: factor = warm-up × the twin's scale."""

    def __init__(self, twin: ReferenceAutoDrop, warmup: int) -> None:
        self.twin, self.warmup = twin, warmup

    def factor(self, t: int) -> float:
        return (t / self.warmup if t < self.warmup else 1.0) * self.twin.lr_scales()[0]

    def observe(self, x) -> None:
        self.twin.step(torch.from_numpy(x))


class GeometricHorizon(ReferenceAutoDrop):
    """Rejected: the noise-floor test with ρ = 0.01^(1/n_max), n_max the drops a run has room for."""

    def drop_factor(self) -> float:
        decisions = max(1, (self.total - self.warmup) // (self.config.buffer_size * self.k) - 1)
        return 0.01 ** (1 / decisions)


class ThreeWay(ReferenceAutoDrop):
    """Rejected: halve at once when the angle is significantly above its floor (curvature: LR too large?)."""

    def drop_factor(self) -> float:
        linear = super().drop_factor()
        return min(linear, 0.5) if self.z > 2 else linear


class AlwaysDrop(ReferenceAutoDrop):
    """Control: the same staircase with no test (every decision drops): what the test adds."""

    def saturated(self) -> bool:
        self.decided = len(self.buffer) >= self.config.buffer_size
        if self.decided:
            self.buffer = []
        return self.decided


def twin_rule(cls, config: AutoDropConfig):
    def make(total: int, warmup: int, momentum: float) -> Rule:
        window = config.resolve_window_size(total)
        return Rule(cls(config.replace(window_size=window), momentum, total, warmup), warmup)

    return make


SCHEDULES = {
    "constant": lambda total, warmup, momentum: Fixed("constant", total, warmup),
    "linear": lambda total, warmup, momentum: Fixed("linear", total, warmup),
    "cosine": lambda total, warmup, momentum: Fixed("cosine", total, warmup),
    "autodrop (default)": twin_rule(ReferenceAutoDrop, AutoDropConfig()),
    "autodrop, drift_z 1": twin_rule(ReferenceAutoDrop, AutoDropConfig(drift_z=1.0)),
    "autodrop, no test (control)": twin_rule(AlwaysDrop, AutoDropConfig()),
    "noise floor + geometric to 1%": twin_rule(GeometricHorizon, AutoDropConfig()),
    "noise floor, halve above the floor": twin_rule(ThreeWay, AutoDropConfig()),
    "paper (preset)": twin_rule(ReferenceAutoDrop, AutoDropConfig.paper()),
}


def run(problem: str, schedule: str, total: int, lr: float, seed: int) -> tuple[float, int]:
    """The final metric and the number of drops of one run."""
    make_problem, make_optimizer, _ = PROBLEMS[problem]
    data = make_problem(np.random.default_rng(1000 + seed))
    rng = np.random.default_rng(seed)
    warmup = int(WARMUP * total)
    x, optimizer = data.x0.copy(), make_optimizer(data.x0.size)
    plan = SCHEDULES[schedule](total, warmup, make_optimizer.momentum)
    for t in range(total):
        x = optimizer.step(x, data.grad(x, rng), lr * plan.factor(t))
        plan.observe(x)
    drops = len(plan.twin.drops) if isinstance(plan, Rule) else 0
    return data.loss(x), drops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS), help="steps per run")
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds per cell")
    parser.add_argument("--output", type=Path, default=RESULTS, help="folder for rule_selection.{json,md}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for problem, (_, _, rates) in PROBLEMS.items():
        for total in args.budgets:
            for schedule in SCHEDULES:
                for lr in rates:
                    runs = [run(problem, schedule, total, lr, seed) for seed in range(args.seeds)]
                    results[f"{problem}|{total}|{schedule}|{lr}"] = {
                        "metric": statistics.fmean(r[0] for r in runs),
                        "drops": statistics.fmean(r[1] for r in runs),
                    }
            print(f"{problem} T={total} done", file=sys.stderr, flush=True)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "rule_selection.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.output / "rule_selection.md").write_text(tables(results))
    print(tables(results))


def tables(results: dict[str, dict[str, float]]) -> str:
    cells: dict[tuple[str, str], dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    drops: dict[str, list[float]] = defaultdict(list)
    for key, value in results.items():
        problem, total, schedule, lr = key.split("|")
        cells[(problem, total)][schedule][lr] = value["metric"]
        drops[schedule].append(value["drops"])
    best_ranks, all_ranks = defaultdict(list), defaultdict(list)
    lines = [
        "# Rule selection on cheap problems (benchmarks/rule_selection.py)",
        "",
        "Final metric (lower is better) at the best of three learning rates; mean over 5 seeds.",
        "",
        "| problem | T | " + " | ".join(SCHEDULES) + " |",
        "|---|---|" + "---|" * len(SCHEDULES),
    ]
    for (problem, total), by_schedule in cells.items():
        best = {s: min(by_lr.values()) for s, by_lr in by_schedule.items()}
        for rank, schedule in enumerate(sorted(best, key=best.get), start=1):
            best_ranks[schedule].append(rank)
        for lr in next(iter(by_schedule.values())):
            order = sorted(by_schedule, key=lambda s, lr=lr: by_schedule[s][lr])
            for rank, schedule in enumerate(order, start=1):
                all_ranks[schedule].append(rank)
        lines.append(f"| {problem} | {total} | " + " | ".join(f"{best[s]:.4g}" for s in SCHEDULES) + " |")
    lines += ["", "| schedule | mean rank, best LR | mean rank, every LR | mean drops per run |", "|---|---|---|---|"]
    for schedule in sorted(SCHEDULES, key=lambda s: statistics.fmean(all_ranks[s])):
        lines.append(
            f"| {schedule} | {statistics.fmean(best_ranks[schedule]):.2f} | {statistics.fmean(all_ranks[schedule]):.2f}"
            f" | {statistics.fmean(drops[schedule]):.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
