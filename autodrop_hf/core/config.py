"""AutoDrop hyper-parameters: one validated dataclass, the single source of truth."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

#: Window size used when ``window_size="auto"`` but the planned number of steps is unknown.
DEFAULT_WINDOW_SIZE = 64
#: ``window_size="auto"`` aims at this many windows per run (the paper has 800-1,200).
AUTO_WINDOWS_PER_RUN = 1000


@dataclass(frozen=True)
class AutoDropConfig:
    """Hyper-parameters of AutoDrop (paper, Section 4.1; exact meaning in ``SPEC.md``).

    Args:
        window_size: optimizer steps per window ``k``; the angular velocity is measured between
            consecutive displacements of window-averaged parameters. ``"auto"`` picks
            ``max(1, round(T / 1000))`` for a run of ``T`` planned optimizer steps (64 if unknown).
        drop_factor: ``ρ``, the factor the learning rate is multiplied by at each drop, in (0, 1).
        buffer_size: ``m``, number of angles the Gaussian filter smooths; at least 2. Two drops are
            at least ``m + 1`` windows apart.
        threshold: saturation threshold in degrees: a drop happens when two consecutive smoothed
            angular velocities differ by less than this.
        min_lr: absolute floor of the learning rate (after warm-up); drops stop there.
    """

    window_size: int | Literal["auto"] = field(
        default="auto",
        metadata={
            "help": "Optimizer steps per AutoDrop window (an integer, or 'auto' = max(1, round(T / 1000)) "
            "for T planned optimizer steps)."
        },
    )
    drop_factor: float = field(
        default=0.95, metadata={"help": "Factor (0 < ρ < 1) the learning rate is multiplied by at each drop."}
    )
    buffer_size: int = field(
        default=10,
        metadata={"help": "Angles smoothed by the Gaussian filter (m >= 2); drops are >= m + 1 windows apart."},
    )
    threshold: float = field(
        default=0.1,
        metadata={"help": "Degrees: drop when two consecutive smoothed angular velocities differ by less."},
    )
    min_lr: float = field(default=0.0, metadata={"help": "Floor of the learning rate; drops stop there."})

    def __post_init__(self) -> None:
        window = self.window_size
        if isinstance(window, str):
            if window != "auto":
                raise ValueError(f"window_size must be an integer >= 1 or 'auto', got {window!r}.")
        elif isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window_size must be an integer >= 1 or 'auto', got {window!r}.")
        _check_number("drop_factor", self.drop_factor, "0 < drop_factor < 1", lambda v: 0 < v < 1)
        buffer = self.buffer_size
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 2:
            raise ValueError(f"buffer_size must be an integer >= 2, got {buffer!r}.")
        _check_number("threshold", self.threshold, "threshold > 0 (degrees)", lambda v: v > 0)
        _check_number("min_lr", self.min_lr, "min_lr >= 0", lambda v: v >= 0)

    def resolve_window_size(self, num_training_steps: int | None) -> int:
        """The window size in optimizer steps, resolving ``"auto"`` from the planned step count."""
        if self.window_size != "auto":
            return self.window_size
        if num_training_steps is None or num_training_steps <= 0:
            return DEFAULT_WINDOW_SIZE
        return max(1, round(num_training_steps / AUTO_WINDOWS_PER_RUN))

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of the hyper-parameters, in declaration order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def help(cls, name: str) -> str:
        """The one-line help of a hyper-parameter (shown by command-line ``--help``)."""
        return next(f.metadata["help"] for f in fields(cls) if f.name == name)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python copy, for logs and checkpoints."""
        return asdict(self)


def _check_number(name: str, value: Any, allowed: str, is_allowed) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not is_allowed(value)
    ):
        raise ValueError(f"{name} must satisfy {allowed}, got {value!r}.")
