"""Plots of a training run: learning rate, angular velocity (raw, smoothed, drops), loss, eval metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..core.history import HISTORY_FILE, read_history

_NOT_METRICS = ("runtime", "samples_per_second", "steps_per_second", "epoch")


def read_run(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The AutoDrop window records and, for a Trainer run, the Trainer's ``log_history``.

    ``path`` is a run's ``output_dir`` (``autodrop_history.jsonl`` inside; ``log_history`` from its
    ``trainer_state.json``, written by ``trainer.save_state()``, or from the newest checkpoint's), or a
    history file itself (``AutoDrop(history_file=...)`` in a plain loop: no loss, no evaluations).
    """
    path = Path(path)
    history_path = path if path.is_file() else path / HISTORY_FILE
    if not history_path.exists():
        raise FileNotFoundError(
            f"{history_path} not found: give the output_dir of a run with AutoDropCallback, or the history file "
            "of AutoDrop(history_file=...)."
        )
    windows = read_history(history_path)
    output_dir = history_path.parent
    checkpoints = sorted(
        output_dir.glob("checkpoint-*/trainer_state.json"),
        key=lambda p: int(p.parent.name.rsplit("-", 1)[1]),
        reverse=True,
    )
    candidates = [output_dir / "trainer_state.json", *checkpoints]
    state_path = next((p for p in candidates if p.exists()), None)
    log_history = json.loads(state_path.read_text())["log_history"] if state_path else []
    return windows, log_history


def plot_run(path: str | Path, output: str | Path | None = None) -> Path:
    """Draw a run (an ``output_dir`` or a history file, see :func:`read_run`) into a PNG (default
    ``autodrop.png`` beside the history); return its path.

    Panels: the learning rate; the angular velocity with its noise floor ψ (and the smoothed angle of the
    paper's test); the decisions' statistic, held and dropped; the training loss and eval metrics of a
    Trainer run. Drops are red lines.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("Plotting needs matplotlib: pip install 'autodrop-hf[examples]'.") from error

    windows, log_history = read_run(path)
    history_dir = Path(path) if Path(path).is_dir() else Path(path).parent
    output = Path(output) if output is not None else history_dir / "autodrop.png"
    drops = [w["step"] for w in windows if w["dropped"]]
    decisions = [w for w in windows if w.get("statistic") is not None]
    train = [e for e in log_history if "loss" in e and "step" in e]
    evals = sorted({k for e in log_history for k in e if k.startswith("eval_") and not k.endswith(_NOT_METRICS)})
    panels = ["lr", "angle", *(["decisions"] if decisions else []), *(["loss"] if train else []),
              *(["eval"] if evals else [])]  # fmt: skip
    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 2.4 * len(panels)), sharex=True, squeeze=False)
    axis = dict(zip(panels, axes[:, 0], strict=True))

    lr_logged = [(e["step"], e["learning_rate"]) for e in log_history if "learning_rate" in e and "step" in e]
    if lr_logged:
        axis["lr"].plot(*zip(*lr_logged, strict=True), ".", label="logged by the Trainer")
    lr_windows = [(w["step"], w["lr"]) for w in windows if w.get("lr") is not None]
    if lr_windows:
        axis["lr"].step(*zip(*lr_windows, strict=True), where="post", label="per window")
    axis["lr"].set_ylabel("learning rate")
    if axis["lr"].get_legend_handles_labels()[0]:  # a run too short for a window has nothing to label
        axis["lr"].legend(fontsize="small")

    angle_points = [(w["step"], w["angle"]) for w in windows if w["angle"] is not None]
    floor_points = [(w["step"], w["noise_floor"]) for w in windows if w.get("noise_floor") is not None]
    smooth_points = [(w["step"], w["smoothed"]) for w in windows if w.get("smoothed") is not None]
    if angle_points:
        axis["angle"].plot(*zip(*angle_points, strict=True), ".", markersize=3, alpha=0.5, label="angular velocity")
    if floor_points:
        axis["angle"].plot(*zip(*floor_points, strict=True), "k--", linewidth=1, label="noise floor ψ")
    if smooth_points:
        axis["angle"].plot(*zip(*smooth_points, strict=True), "-", linewidth=1.2, label="Gaussian-smoothed")
    axis["angle"].set_ylabel("degrees")
    if axis["angle"].get_legend_handles_labels()[0]:  # a run too short for a window has nothing to label
        axis["angle"].legend(fontsize="small")

    if decisions:
        for dropped, marker, label in ((True, "v", "drop"), (False, "o", "no drop")):
            points = [(w["step"], w["statistic"]) for w in decisions if w["dropped"] is dropped]
            if points:
                axis["decisions"].plot(*zip(*points, strict=True), marker, linestyle="none", label=label)
        axis["decisions"].axhline(0, color="k", linewidth=0.6)
        axis["decisions"].set_ylabel("decision statistic")
        axis["decisions"].legend(fontsize="small")

    if train:
        axis["loss"].plot([e["step"] for e in train], [e["loss"] for e in train], label="training loss")
        axis["loss"].set_ylabel("loss")
    for key in evals:
        points = [(e["step"], e[key]) for e in log_history if key in e and math.isfinite(e[key])]
        if points:
            axis["eval"].plot(*zip(*points, strict=True), "o-", label=key)
    if evals:
        axis["eval"].set_ylabel("eval")
        axis["eval"].legend(fontsize="small")
    for ax in axes[:, 0]:
        for step in drops:
            ax.axvline(step, color="tab:red", alpha=0.25, linewidth=0.8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(f"AutoDrop: {len(drops)} drops (red lines)")
    axes[-1, 0].set_xlabel("optimizer step")
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output
