"""``autodrop-hf nqm``: the paper's Section 3 and Theorem 3.2 / Eq. 38 checks, reproduced.

Writes ``figure1.png`` (fixed learning rates), ``figure2.png`` (AutoDrop), ``nqm_results.json`` and
prints the tables.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from . import convergence, nqm


def run(output_dir: str | Path, steps: int = 3000, seed: int = 0, theorem_steps: int = 20_000) -> dict[str, Any]:
    """Run every part; return the numbers written to ``nqm_results.json``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    x0 = torch.randn(200, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 10

    fixed = {lr: nqm.run_gd(lr, steps, x0, torch.Generator().manual_seed(seed + 1)) for lr in nqm.PAPER_LEARNING_RATES}
    adaptive = nqm.run_autodrop(steps, x0, torch.Generator().manual_seed(seed + 1))
    print(f"Noisy quadratic model, x ∈ R^200, x0 ~ N(0, 100 I), {steps} steps, seed {seed}")
    print("final excess loss ½xᵀAx:")
    for lr, trajectory in fixed.items():
        print(f"  GD at lr {lr:<6}: {trajectory.losses[-1]:10.3f}")
    print(
        f"  AutoDrop        : {adaptive.losses[-1]:10.3f}  ({len(adaptive.drops)} drops, lr 0.06 -> "
        f"{adaptive.learning_rates[-1]:.4g}; {nqm.section3_config()})"
    )

    table = nqm.theorem_table(steps=theorem_steps, seed=seed)
    print(f"\nTheorem 3.2: saturation cosine of consecutive steps ({theorem_steps} stationary steps per lr)")
    print("| lr | measured cos ± s.e. | measured angle | Eq. 5 (main text) | Eq. 23 (supplement) | Eq. 6 bound |")
    print("|---|---|---|---|---|---|")
    for row in table:
        print(
            f"| {row['lr']} | {row['cosine']:.4f} ± {row['cosine_stderr']:.4f} | {row['angle']:.2f}° | "
            f"{row['eq5_main_text']:.4f} ({row['eq5_angle']:.2f}°) | {row['eq23_supplement']:.4f} "
            f"({row['eq23_angle']:.2f}°) | {row['eq6_bound']:.4f} |"
        )
    supported = verdict(table)
    print(supported)

    grid = convergence.check_grid()
    print("\nAlgorithm 2 on the model v_α(t) (Eq. 12), drop gaps k_i against Eq. 38, 30 stages each:")
    print("| lr sequence | γ | τ0 | k_i < lower | k_i > upper | continuous k_i > upper | of those with γα̂ ≤ 1 |")
    print("|---|---|---|---|---|---|---|")
    for row in grid:
        print(
            f"| {row['schedule']} | {row['gamma']} | {row['tau0']} | {row['below_lower']} | {row['above_upper']} | "
            f"{row['crossing_above_upper']} | {row['crossing_above_upper_gamma_lr_le_1']} |"
        )
    print(eq38_summary(grid))

    figure1(fixed, output_dir / "figure1.png")
    figure2(adaptive, fixed, output_dir / "figure2.png")
    results = {
        "steps": steps,
        "seed": seed,
        "final_loss": {str(lr): t.losses[-1] for lr, t in fixed.items()} | {"autodrop": adaptive.losses[-1]},
        "autodrop_drops": adaptive.drops,
        "theorem_3_2": table,
        "theorem_3_2_verdict": supported,
        "algorithm2_eq38": grid,
    }
    (output_dir / "nqm_results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {output_dir / 'figure1.png'}, {output_dir / 'figure2.png'}, {output_dir / 'nqm_results.json'}")
    return results


def verdict(table: list[dict[str, float]]) -> str:
    """Which form of Theorem 3.2 the measured cosines support, in one sentence."""
    eq5 = max(abs(r["cosine"] - r["eq5_main_text"]) for r in table)
    eq23 = max(abs(r["cosine"] - r["eq23_supplement"]) for r in table)
    better, other = ("Eq. 23 (supplement)", "Eq. 5") if eq23 < eq5 else ("Eq. 5 (main text)", "Eq. 23")
    return (
        f"The simulation supports {better}: largest |measured - predicted| cosine {min(eq5, eq23):.4f} "
        f"(Eq. 23 is itself the approximation E[cos] ≈ E<s,s'>/E‖s‖²), against {max(eq5, eq23):.4f} for "
        f"{other}. Eq. 5 as printed lacks the factor 2 of N* = E‖s‖² (Eq. 20); with it, Eq. 6 follows."
    )


def eq38_summary(grid: list[dict[str, Any]]) -> str:
    """The Eq. 38 check in one sentence, from the grid's counts."""
    gaps = sum(r["gaps"] for r in grid)
    below = sum(r["below_lower"] for r in grid)
    continuous = sum(r["crossing_above_upper"] for r in grid)
    explained = continuous - sum(r["crossing_above_upper_gamma_lr_le_1"] for r in grid)
    integer = sum(r["above_upper"] for r in grid)
    excess = max(r["max_steps_above_upper"] for r in grid)
    return (
        f"Eq. 38 over {gaps} gaps: {below} below the lower bound; the proof's continuous gaps exceed the upper "
        f"bound {continuous} times, {explained} of them where γα̂_i > 1 (its proof uses (γα̂)^(-1/2) ≤ "
        f"(γα̂)^(-1), true only for γα̂ ≤ 1, which the theorem does not state); the integer gaps of the "
        f"simulation exceed it {integer} times, by at most {excess:.2f} steps (a drop happens at a whole step)."
    )


def _moving_average(values: list[float], width: int = 50) -> list[float]:
    out, window = [], []
    for value in values:
        if not math.isnan(value):
            window.append(value)
        window = window[-width:]
        out.append(sum(window) / len(window) if window else math.nan)
    return out


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("The NQM figures need matplotlib: pip install 'autodrop-hf[examples]'.") from error
    return plt


def figure1(fixed: dict[float, nqm.Trajectory], path: Path) -> None:
    """Loss and angular velocity (50-step moving average) at fixed learning rates."""
    plt = _pyplot()
    figure, (loss_axis, angle_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for lr, trajectory in fixed.items():
        loss_axis.plot(trajectory.losses, label=f"lr {lr}")
        angle_axis.plot(_moving_average(trajectory.angles), label=f"lr {lr}")
    loss_axis.set(yscale="log", xlabel="iteration", ylabel="excess loss ½xᵀAx", title="Loss, fixed learning rate")
    angle_axis.set(xlabel="iteration", ylabel="degrees", title="Angular velocity (50-step moving average)")
    for axis in (loss_axis, angle_axis):
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def figure2(adaptive: nqm.Trajectory, fixed: dict[float, nqm.Trajectory], path: Path) -> None:
    """AutoDrop on the NQM: learning rate, loss against the fixed rates, angular velocity."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(adaptive.learning_rates)
    axes[0].set(yscale="log", xlabel="iteration", ylabel="learning rate", title="AutoDrop learning rate")
    for lr, trajectory in fixed.items():
        axes[1].plot(trajectory.losses, alpha=0.5, label=f"fixed lr {lr}")
    axes[1].plot(adaptive.losses, color="black", label="AutoDrop")
    axes[1].set(yscale="log", xlabel="iteration", ylabel="excess loss", title="Loss")
    axes[1].legend(fontsize="small")
    axes[2].plot(_moving_average(adaptive.angles), label="angular velocity (50-step average)")
    for step in adaptive.drops:
        axes[2].axvline(step, color="tab:red", alpha=0.3, linewidth=0.8)
    axes[2].set(xlabel="iteration", ylabel="degrees", title="Angular velocity, drops in red")
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
