"""Algorithm 2 of the paper (Section 5.2, Supplement 11-12) simulated on its angular-velocity model.

The model (Eq. 12) is ``v_α(t) = π/2 (1 + εα) (1 - 1 / (γα (t + 1/(γα))))``; Algorithm 2 drops from
``α̂_i`` to ``α̂_{i+1}`` at the first step ``t - t_i`` where ``v'_{α̂_i}(t - t_i) ≤ τ_i = min(τ_0, γα̂_i/2)``.
The proof of Theorem 5.2 bounds every gap ``k_i = t_{i+1} - t_i`` by Eq. 38:
``(√π - 1) / (γ α̂_i) ≤ k_i ≤ √(2π / (3τ_0)) / (γ α̂_i)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def velocity(t: float, lr: float, epsilon: float, gamma: float) -> float:
    """``v_α(t)`` of Eq. 12, in radians."""
    return math.pi / 2 * (1 + epsilon * lr) * (1 - 1 / (gamma * lr * (t + 1 / (gamma * lr))))


def velocity_derivative(t: float, lr: float, epsilon: float, gamma: float) -> float:
    """``v'_α(t) = π (1 + εα) / (2 γα (t + 1/(γα))²)``."""
    return math.pi * (1 + epsilon * lr) / (2 * gamma * lr * (t + 1 / (gamma * lr)) ** 2)


def learning_rates(count: int, schedule: str = "lemma") -> list[float]:
    """The proof's sequence: ``"lemma"`` = ``(i + 2)^-1`` (Lemma 12.1, which the proof applies),
    ``"theorem"`` = ``(i + 1)^(-2/3)`` (the statement of Theorem 5.2), for ``i = 0 … count-1``."""
    if schedule == "lemma":
        return [1 / (i + 2) for i in range(count)]
    if schedule == "theorem":
        return [(i + 1) ** (-2 / 3) for i in range(count)]
    raise ValueError(f"schedule must be 'lemma' or 'theorem', got {schedule!r}.")


@dataclass(frozen=True)
class Gap:
    """One stage of Algorithm 2 and its check against Eq. 38."""

    stage: int
    lr: float
    tau: float
    gap: int  # k_i of the step-by-step simulation
    crossing: float  # the proof's continuous solution of v'(k) = τ_i; gap == ceil(crossing)
    lower: float  # (√π - 1) / (γ α̂_i)
    upper: float  # √(2π / (3τ_0)) / (γ α̂_i)


def simulate(rates: list[float], epsilon: float, gamma: float, tau0: float) -> list[Gap]:
    """Run Algorithm 2 step by step on the model; one :class:`Gap` per learning rate."""
    if not 0 < tau0 < 2:
        raise ValueError(f"Theorem 5.2 needs 0 < tau0 < 2, got {tau0}.")
    if not 0 < epsilon < 1 / (3 * rates[0]):
        raise ValueError(f"Theorem 5.2 needs 0 < epsilon < 1/(3 α̂_0) = {1 / (3 * rates[0]):.4g}, got {epsilon}.")
    gaps = []
    for stage, lr in enumerate(rates):
        tau = min(tau0, gamma * lr / 2)
        steps = 0
        while velocity_derivative(steps, lr, epsilon, gamma) > tau:
            steps += 1
        scale = (gamma * lr) ** -0.5
        gaps.append(
            Gap(
                stage=stage,
                lr=lr,
                tau=tau,
                gap=steps,
                crossing=scale * (math.sqrt(math.pi * (1 + epsilon * lr) / (2 * tau)) - scale),
                lower=(math.sqrt(math.pi) - 1) / (gamma * lr),
                upper=math.sqrt(2 * math.pi / (3 * tau0)) / (gamma * lr),
            )
        )
    return gaps


def check_grid(
    count: int = 30,
    gammas: tuple[float, ...] = (0.5, 1.0, 2.0),
    tau0s: tuple[float, ...] = (0.1, 0.5, 1.0, 1.9),
    schedules: tuple[str, ...] = ("lemma", "theorem"),
) -> list[dict[str, float | str | int]]:
    """Eq. 38 checked over a grid of (schedule, γ, τ_0), with ε in the middle of its range.

    Counts gaps outside the bounds, for the integer gaps of the simulation and for the proof's
    continuous crossing times, and how many of those lie where ``γα̂_i > 1`` (the proof's upper bound
    uses ``(γα̂_i)^(-1/2) ≤ (γα̂_i)^(-1)``, which needs ``γα̂_i ≤ 1``).
    """
    rows = []
    for schedule in schedules:
        rates = learning_rates(count, schedule)
        epsilon = 1 / (6 * rates[0])
        for gamma in gammas:
            for tau0 in tau0s:
                gaps = simulate(rates, epsilon, gamma, tau0)
                rows.append(
                    {
                        "schedule": schedule,
                        "gamma": gamma,
                        "tau0": tau0,
                        "gaps": len(gaps),
                        "below_lower": sum(g.gap < g.lower for g in gaps),
                        "above_upper": sum(g.gap > g.upper for g in gaps),
                        "crossing_above_upper": sum(g.crossing > g.upper for g in gaps),
                        "crossing_above_upper_gamma_lr_le_1": sum(
                            g.crossing > g.upper and gamma * g.lr <= 1 for g in gaps
                        ),
                        "max_steps_above_upper": max(g.gap - g.upper for g in gaps),
                    }
                )
    return rows
