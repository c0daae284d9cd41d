"""``autodrop-hf plot``: one figure of a run — learning rate, angle against its floor, decisions, loss, metrics."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from ..core.history import HISTORY_FILE

_NOT_METRICS = ("runtime", "samples_per_second", "steps_per_second", "epoch")
#: Image formats the figure is written in, by file suffix (matplotlib's Agg backend).
IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
#: At most this many evaluation metrics get a panel each (the first in name order).
MAX_METRIC_PANELS = 4


def _number(value: Any) -> float | None:
    return (
        float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        else None
    )


def read_windows(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The window records of a history file that can be drawn, and what was skipped (a line each kind).

    A record needs an integer ``step``; a missing or damaged field leaves out only that value. Lines that are
    not UTF-8, not JSON or not an object are skipped (a run stopped mid-write leaves a partial last line)."""
    records, bad = [], []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
        else:
            bad.append(number)
    skipped = []
    if bad:
        lines = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        skipped.append(f"{path}: {len(bad)} line(s) that are not window records left out (line {lines})")
    return records, skipped


def read_log_history(output_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The Trainer's ``log_history``: from ``output_dir/trainer_state.json`` (``trainer.save_state()``) or the
    newest checkpoint's; a file that does not read is said and the next one tried."""
    checkpoints = []
    for state in output_dir.glob("checkpoint-*/trainer_state.json"):
        suffix = state.parent.name.rsplit("-", 1)[1]
        if suffix.isdigit():  # checkpoint-best and other names are not steps
            checkpoints.append((int(suffix), state))
    candidates = [output_dir / "trainer_state.json", *(p for _, p in sorted(checkpoints, reverse=True))]
    skipped = []
    for candidate in (p for p in candidates if p.exists()):
        try:
            log = json.loads(candidate.read_text(encoding="utf-8"))["log_history"]
            if isinstance(log, list):
                return [e for e in log if isinstance(e, dict) and isinstance(e.get("step"), int)], skipped
        except (OSError, ValueError, KeyError, TypeError) as error:
            skipped.append(f"{candidate} left out: it does not read ({type(error).__name__})")
    return [], skipped


def read_run(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The window records, the Trainer's ``log_history`` (empty for a plain loop) and what was left out.

    ``path`` is a run's ``output_dir`` (``autodrop_history.jsonl`` inside) or a history file itself
    (``AutoDrop(history_file=...)`` in a plain loop: no loss, no evaluations).
    """
    path = Path(path)
    history_path = path if path.is_file() else path / HISTORY_FILE
    if not history_path.exists():
        raise FileNotFoundError(
            f"{history_path} not found: give the output_dir of a run with AutoDropCallback, or the history file "
            "of AutoDrop(history_file=...)."
        )
    windows, skipped = read_windows(history_path)
    log_history, more = read_log_history(history_path.parent)
    return windows, log_history, skipped + more


def image_path(output: str | Path | None, history_dir: Path) -> Path:
    """Where the figure goes: ``autodrop.png`` in a folder (``history_dir`` by default), ``.png`` added to a
    name without a suffix; a suffix that is not an image format is refused."""
    if output is None:
        return history_dir / "autodrop.png"
    path = Path(output)
    if path.is_dir():
        return path / "autodrop.png"
    if not path.suffix:
        return path.with_name(path.name + ".png")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"--output {output}: not an image file name; end it in one of {', '.join(IMAGE_SUFFIXES)}.")
    return path


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _span(values: list[float], unit: str = "") -> str:
    low, high = min(values), max(values)
    return f"{low:g}{unit}" if low == high else f"{low:g}{unit}→{high:g}{unit}"


def _title(windows: list[dict[str, Any]]) -> str:
    """What ran and what it did: the test, window sizes and floors seen, drops, where it said done."""
    drops = sum(1 for w in windows if w.get("dropped") is True)
    test = "the paper's test" if any(w.get("smoothed") is not None for w in windows) else "noise-floor test"
    parts = [f"AutoDrop, {test}"]
    sizes = [w["window"] for w in windows if isinstance(w.get("window"), int)]
    if sizes:
        parts.append(f"window {_span(sizes)} steps")
    floors = [round(f, 1) for f in (_number(w.get("noise_floor")) for w in windows) if f is not None]
    if floors:
        parts.append(f"floor ψ {_span(floors, '°')}")
    summary = _plural(drops, "drop") + " (red lines)"
    done = next((w["step"] for w in windows if w.get("done") is True), None)
    if done is not None:
        summary += f", done at step {done}"
    return ", ".join(parts) + ": " + summary


def draw(windows: list[dict[str, Any]], log_history: list[dict[str, Any]]):
    """The figure of a run (a ``matplotlib.figure.Figure``): panels for the learning rate; the angle against
    its noise floor ψ (and the paper's smoothed angle); each decision's statistic against the line where the
    rule changes between hold and drop; the training loss; one panel per evaluation metric. Drops are red
    lines, the warm-up (not observed) is shaded, and every panel spans the whole run."""
    from matplotlib.figure import Figure

    decisions = [w for w in windows if _number(w.get("statistic")) is not None]
    train = [(e["step"], e["loss"]) for e in log_history if _number(e.get("loss")) is not None]
    metrics = sorted(
        {
            k
            for e in log_history
            for k, v in e.items()
            if k.startswith("eval_") and not k.endswith(_NOT_METRICS) and _number(v) is not None
        }
    )[:MAX_METRIC_PANELS]
    panels = ["lr", "angle", *(["decisions"] if decisions else []), *(["loss"] if train else []), *metrics]
    figure = Figure(figsize=(9, 2.2 * len(panels) + 0.4))
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    axis = dict(zip(panels, axes, strict=True))

    def series(entries, x_key, y_key):
        return [(e[x_key], y) for e in entries if (y := _number(e.get(y_key))) is not None]

    logged_lr = series(log_history, "step", "learning_rate")
    if logged_lr:
        axis["lr"].plot(*zip(*logged_lr, strict=True), ".", markersize=3, label="logged by the Trainer")
    window_lr = series(windows, "step", "lr")
    if window_lr:
        axis["lr"].step(*zip(*window_lr, strict=True), where="post", label="AutoDrop, per window")
    axis["lr"].set_ylabel("learning rate")

    for key, style, label in (
        ("angle", ".", "angular velocity"),
        ("noise_floor", "k--", "noise floor ψ"),
        ("smoothed", "-", "Gaussian-smoothed (paper's test)"),
    ):
        points = series(windows, "step", key)
        if points:
            axis["angle"].plot(*zip(*points, strict=True), style, markersize=3, linewidth=1, label=label)
    axis["angle"].set_ylabel("degrees")

    if decisions:
        for dropped, marker, label in ((True, "v", "drop"), (False, "o", "hold")):
            points = [(w["step"], w["statistic"]) for w in decisions if (w.get("dropped") is True) is dropped]
            if points:
                axis["decisions"].plot(*zip(*points, strict=True), marker, linestyle="none", label=label)
        boundary = next((b for w in decisions if (b := _number(w.get("boundary"))) is not None), None)
        if boundary is not None:
            axis["decisions"].axhline(boundary, color="k", linewidth=0.8, label=f"hold | drop at {boundary:g}")
        axis["decisions"].set_ylabel("statistic")

    if train:
        axis["loss"].plot(*zip(*train, strict=True), label="training loss")
        axis["loss"].set_ylabel("loss")
    for key in metrics:
        axis[key].plot(*zip(*series(log_history, "step", key), strict=True), "o-", markersize=3, label=key)
        axis[key].set_ylabel(key.removeprefix("eval_"))

    steps = [w["step"] for w in windows] + [e["step"] for e in log_history]
    end = max(steps, default=1)
    first = next((w for w in windows if isinstance(w.get("window"), int)), None)
    warmup = 0 if first is None else first["step"] - first["window"]
    drops = [w["step"] for w in windows if w.get("dropped") is True]
    for ax in axes:
        if warmup > 0:
            ax.axvspan(0, warmup, color="0.85", label="warm-up (not observed)" if ax is axes[0] else None)
        for step in drops:
            ax.axvline(step, color="tab:red", alpha=0.25, linewidth=0.8)
        ax.set_xlim(0, end)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="best")
    axes[0].set_title(_title(windows), fontsize="medium")
    axes[-1].set_xlabel("optimizer step")
    figure.tight_layout()
    return figure


def plot_run(path: str | Path, output: str | Path | None = None) -> Path:
    """Draw a run (an ``output_dir`` or a history file, see :func:`read_run`) into an image (default
    ``autodrop.png`` beside the history) and return its path; what could not be drawn is said on stderr."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise ImportError("Plotting needs matplotlib: pip install 'autodrop-hf[examples]'.") from error
    windows, log_history, skipped = read_run(path)
    for line in skipped:
        print(f"autodrop-hf plot: {line}", file=sys.stderr)
    history_dir = Path(path) if Path(path).is_dir() else Path(path).parent
    target = image_path(output, history_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    draw(windows, log_history).savefig(target, dpi=110)
    return target
