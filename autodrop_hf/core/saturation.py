"""Saturation tests: they read one angle per window and decide when the learning rate drops.

Pure Python on floats: they run once per window, on at most ``buffer_size`` numbers.

- :class:`NoiseFloorTest` (the default): is the mean angle of a buffer significantly below the angle
  pure noise gives? Then training still moves in a consistent direction; otherwise it is saturated.
- :class:`SmoothedChangeTest`: the paper's Algorithm 1, the change of the Gaussian-smoothed angle.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

#: Upper bound of the lag-1 autocorrelation used in the standard error (|r| → 1 would make it infinite).
MAX_AUTOCORRELATION = 0.9


@dataclass(frozen=True)
class SaturationResult:
    """What a test concluded from one more angle.

    Attributes:
        decided: whether this angle completed a decision (the buffer was full).
        saturated: whether the decision is "drop".
        statistic: the decision's statistic: the mean angle's distance to the noise floor in standard
            errors (noise-floor test), or ``|C - C_prev|`` in degrees (paper's test); ``None`` otherwise.
        smoothed: the paper's test only: the Gaussian-smoothed angle, once the buffer is full.
        variance_ratio: with ``drift_ratio``, the decision's variance ratio (:func:`hold_while_drifting`).
    """

    decided: bool = False
    saturated: bool = False
    statistic: float | None = None
    smoothed: float | None = None
    variance_ratio: float | None = None


def hold_while_drifting(result: SaturationResult, variance_ratio: float | None, drift_ratio: float) -> SaturationResult:
    """A decision of the noise-floor test, held while the window means drift: not saturated when the variance ratio
    ``‖s_1 + … + s_m‖² / (‖s_1‖² + … + ‖s_m‖²)`` of its displacements is at least ``drift_ratio``.

    The angle compares consecutive displacements only; where steep directions revert from one window to the next
    while flat ones drift, it sits above its floor although the iterate keeps moving on. The ratio weighs every lag
    of the decision's span: about ``1/m`` at rest in a noise ball, 1.5 to 2.6 for a random walk, ``m`` for a
    straight line (docs/algorithm.md, §6b). ``None`` (no displacement) leaves the decision as it is."""
    drifting = variance_ratio is not None and variance_ratio >= drift_ratio
    return replace(result, saturated=result.saturated and not drifting, variance_ratio=variance_ratio)


class NoiseFloorTest:
    """Drop unless the angle shows progress: a one-sided test of the mean angle against the noise floor.

    Every ``buffer_size`` angles ``ω_1 … ω_m`` give one decision. With their mean ``ω̄``, standard
    deviation ``s`` (ddof=1) and lag-1 autocorrelation ``r`` (clamped to [0, 0.9]: momentum makes
    consecutive angles correlated), the standard error of the mean is
    ``SE = s·√((1 + r) / ((1 - r)·m))`` and the statistic ``z = (ω̄ - ψ) / SE``. A consistent direction
    of travel lowers the angle below the noise floor ψ: ``z < -drift_z`` holds the learning rate;
    otherwise the angle has saturated at (or above) its floor and the test says drop. The buffer
    then starts afresh, whatever the decision: decisions are ``buffer_size`` angles apart.

    Args:
        buffer_size: angles per decision, at least 2.
        noise_floor: ψ in degrees (:func:`~autodrop_hf.core.noise_floor.noise_floor`).
        drift_z: standard errors below ψ that count as progress.
    """

    def __init__(self, buffer_size: int, noise_floor: float, drift_z: float) -> None:
        self.buffer_size = buffer_size
        self.noise_floor = noise_floor
        self.drift_z = drift_z
        self.buffer: list[float] = []

    def update(self, angle: float) -> SaturationResult:
        """Add one angle (degrees); decide when the buffer is full."""
        self.buffer.append(float(angle))
        if len(self.buffer) < self.buffer_size:
            return SaturationResult()
        statistic = self.statistic(self.buffer, self.noise_floor)
        self.buffer.clear()
        return SaturationResult(decided=True, saturated=statistic >= -self.drift_z, statistic=statistic)

    @staticmethod
    def statistic(angles: Sequence[float], noise_floor: float) -> float:
        """``z = (mean - ψ) / SE`` of a buffer of angles (±inf when they are all equal and off ψ)."""
        count = len(angles)
        mean = math.fsum(angles) / count
        deviations = [a - mean for a in angles]
        squares = math.fsum(d * d for d in deviations)
        if squares == 0.0:
            return 0.0 if mean == noise_floor else math.copysign(math.inf, mean - noise_floor)
        lag1 = math.fsum(a * b for a, b in itertools.pairwise(deviations)) / squares
        r = min(max(lag1, 0.0), MAX_AUTOCORRELATION)
        standard_error = math.sqrt(squares / (count - 1) * (1 + r) / ((1 - r) * count))
        return (mean - noise_floor) / standard_error

    def reset(self) -> None:
        """Start a new buffer."""
        self.buffer.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": list(self.buffer)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer = [float(a) for a in state["buffer"]]


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


class SmoothedChangeTest:
    """The paper's test (Algorithm 1): ``|C - C_prev| < threshold`` on the Gaussian-smoothed angle.

    Angles go into a buffer; once ``buffer_size`` are buffered, each new angle yields a smoothed value
    ``C`` and the oldest angle leaves the buffer. Saturation is ``|C - C_prev| < threshold``; after it,
    :meth:`reset` empties the buffer and forgets ``C_prev``, so two saturations are at least
    ``buffer_size + 1`` angles apart.
    """

    def __init__(self, buffer_size: int, threshold: float) -> None:
        self.buffer_size = buffer_size
        self.threshold = threshold
        self.buffer: list[float] = []
        self.previous_smoothed: float | None = None

    def update(self, angle: float) -> SaturationResult:
        """Add one angle (degrees); a smoothed value once the buffer is full, a decision from the second."""
        self.buffer.append(float(angle))
        if len(self.buffer) < self.buffer_size:
            return SaturationResult()
        smoothed = gaussian_smooth(self.buffer, sigma_cap=self.buffer_size / 2)
        del self.buffer[0]
        previous = self.previous_smoothed
        if previous is None:
            self.previous_smoothed = smoothed
            return SaturationResult(smoothed=smoothed)
        change = abs(smoothed - previous)
        if change < self.threshold:
            return SaturationResult(decided=True, saturated=True, statistic=change, smoothed=smoothed)
        self.previous_smoothed = smoothed
        return SaturationResult(decided=True, statistic=change, smoothed=smoothed)

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
