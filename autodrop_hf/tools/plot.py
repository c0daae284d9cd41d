"""Plots of a training run: learning rate, angular velocity (raw, smoothed, drops), loss, eval metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..core.history import HISTORY_FILE, read_history

_NOT_METRICS = ("runtime", "samples_per_second", "steps_per_second", "epoch")


def read_run(output_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The AutoDrop window records and the Trainer's ``log_history`` of a run.

    ``log_history`` comes from ``output_dir/trainer_state.json`` (``trainer.save_state()``) or,
    without it, from the newest checkpoint's.
    """
    output_dir = Path(output_dir)
    history_path = output_dir / HISTORY_FILE
    if not history_path.exists():
        raise FileNotFoundError(
            f"{history_path} not found: is {output_dir} the output_dir of a run with AutoDropCallback?"
        )
    windows = read_history(history_path)
    checkpoints = sorted(
        output_dir.glob("checkpoint-*/trainer_state.json"),
        key=lambda p: int(p.parent.name.rsplit("-", 1)[1]),
        reverse=True,
    )
    candidates = [output_dir / "trainer_state.json", *checkpoints]
    state_path = next((p for p in candidates if p.exists()), None)
    log_history = json.loads(state_path.read_text())["log_history"] if state_path else []
    return windows, log_history


def plot_run(output_dir: str | Path, output: str | Path | None = None) -> Path:
    """Draw the run in ``output_dir`` into a PNG (default ``output_dir/autodrop.png``); return its path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("Plotting needs matplotlib: pip install 'autodrop-hf[examples]'.") from error

    windows, log_history = read_run(output_dir)
    output = Path(output) if output is not None else Path(output_dir) / "autodrop.png"
    drops = [w["step"] for w in windows if w["dropped"]]
    train = [e for e in log_history if "loss" in e and "step" in e]
    evals = sorted({k for e in log_history for k in e if k.startswith("eval_") and not k.endswith(_NOT_METRICS)})
    panels = 3 + bool(evals)
    figure, axes = plt.subplots(panels, 1, figsize=(9, 2.6 * panels), sharex=True)

    lr_steps = [e["step"] for e in log_history if "learning_rate" in e and "step" in e]
    lr_values = [e["learning_rate"] for e in log_history if "learning_rate" in e and "step" in e]
    axes[0].plot(lr_steps, lr_values, ".", label="logged by the Trainer")
    axes[0].step([w["step"] for w in windows], [w["lr"] for w in windows], where="post", label="per window")
    axes[0].set_ylabel("learning rate")
    axes[0].legend(fontsize="small")

    angle_points = [(w["step"], w["angle"]) for w in windows if w["angle"] is not None]
    smooth_points = [(w["step"], w["smoothed"]) for w in windows if w["smoothed"] is not None]
    if angle_points:
        axes[1].plot(*zip(*angle_points, strict=True), ".", markersize=3, alpha=0.5, label="angular velocity")
    if smooth_points:
        axes[1].plot(*zip(*smooth_points, strict=True), "-", linewidth=1.2, label="Gaussian-smoothed")
    axes[1].set_ylabel("degrees")
    axes[1].legend(fontsize="small")

    axes[2].plot([e["step"] for e in train], [e["loss"] for e in train], label="training loss")
    axes[2].set_ylabel("loss")
    if evals:
        for key in evals:
            points = [(e["step"], e[key]) for e in log_history if key in e and math.isfinite(e[key])]
            if points:
                axes[3].plot(*zip(*points, strict=True), "o-", label=key)
        axes[3].set_ylabel("eval")
        axes[3].legend(fontsize="small")
    for axis in axes:
        for step in drops:
            axis.axvline(step, color="tab:red", alpha=0.25, linewidth=0.8)
        axis.grid(alpha=0.3)
    axes[0].set_title(f"AutoDrop: {len(drops)} drops (red lines)")
    axes[-1].set_xlabel("optimizer step")
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output
