"""Saturation test of Algorithm 1: Gaussian smoothing of angles and the |ΔC| < threshold rule.

Pure Python on floats: it runs once per window, on at most ``buffer_size`` numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def gaussian_smooth(angles: Sequence[float], sigma_cap: float) -> float:
    """Smooth a buffer of angles with a Gaussian filter in value space (paper, Section 4).

    The filter is centred on the middle element ``c = angles[len // 2]``; each angle ``b`` gets
    weight ``exp(-(c - b)² / 2σ²)`` with ``σ = min(std(angles), sigma_cap)`` (population std).
    With ``σ == 0`` (all angles equal) the result is ``c``.

    Args:
        angles: the buffer, in degrees.
        sigma_cap: upper bound of ``σ`` in degrees (the paper's ``m / 2``).

    Returns:
        The weighted mean of the buffer, in degrees.
    """
    if not angles:
        raise ValueError("gaussian_smooth needs at least one angle.")
    count = len(angles)
    mean = math.fsum(angles) / count
    std = math.sqrt(math.fsum((a - mean) ** 2 for a in angles) / count)
    sigma = min(std, sigma_cap)
    centre = angles[count // 2]
    if sigma == 0.0:
        return centre
    weights = [math.exp(-((centre - a) ** 2) / (2.0 * sigma * sigma)) for a in angles]
    return math.fsum(w * a for w, a in zip(weights, angles, strict=True)) / math.fsum(weights)


class SaturationDetector:
    """Decides when the angular velocity has saturated (Algorithm 1, as resolved in SPEC.md).

    Feed it one angle per window with :meth:`update`. Once ``buffer_size`` angles are buffered,
    each new angle yields a smoothed value ``C`` and the oldest angle leaves the buffer. Saturation
    is ``|C - C_prev| < threshold``; after it, :meth:`reset` empties the buffer and forgets
    ``C_prev``, so two saturations are at least ``buffer_size + 1`` angles apart.
    """

    def __init__(self, buffer_size: int, threshold: float) -> None:
        self.buffer_size = buffer_size
        self.threshold = threshold
        self.buffer: list[float] = []
        self.previous_smoothed: float | None = None

    def update(self, angle: float) -> tuple[float | None, bool]:
        """Add one angle (degrees); return ``(smoothed value or None, saturated)``."""
        self.buffer.append(float(angle))
        if len(self.buffer) < self.buffer_size:
            return None, False
        smoothed = gaussian_smooth(self.buffer, sigma_cap=self.buffer_size / 2)
        del self.buffer[0]
        previous = self.previous_smoothed
        if previous is not None and abs(smoothed - previous) < self.threshold:
            return smoothed, True
        self.previous_smoothed = smoothed
        return smoothed, False

    def reset(self) -> None:
        """Start over after a drop: empty buffer, no previous smoothed value."""
        self.buffer.clear()
        self.previous_smoothed = None

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": list(self.buffer), "previous_smoothed": self.previous_smoothed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer = [float(a) for a in state["buffer"]]
        previous = state["previous_smoothed"]
        self.previous_smoothed = None if previous is None else float(previous)
