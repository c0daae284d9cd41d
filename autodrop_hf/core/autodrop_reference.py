"""AutoDrop's whole decision rule, written to be read: float64, one parameter vector, no buffers to reuse.

This is the algorithm of ``docs/algorithm.md`` in the order one would explain it. The fast path
(:class:`~autodrop_hf.AutoDrop`: float32 buffers relative to the previous window mean, multi-tensor ops,
several processes) must take the same decisions; the tests run both on the same trajectories and compare
them step by step. Nothing here is used in training.

    twin = ReferenceAutoDrop(config, momentum=0.9, num_training_steps=1000, num_warmup_steps=60)
    for step in range(1000):
        ...  # one optimizer step with learning rate peak · warmup · twin.scale
        twin.step(parameters_as_one_float64_vector)
"""

from __future__ import annotations

import itertools
import math

import torch

from .config import AutoDropConfig


def pure_noise_angle(window_size: int, momentum: float) -> float:
    """ψ: the expected angle between consecutive window-mean displacements of a random walk whose
    increments are white noise filtered by heavy-ball momentum (autocovariance ``β^|l|``), by direct summation.

    A displacement ``s_i = y_i - y_{i-1}`` weighs the increments between the two windows with the triangle
    ``w(d) = min(d + 1, 2k - 1 - d) / k``, ``d = 0 … 2k - 2``; ``s_{i-1}`` is the same triangle ``k``
    steps earlier. ``cos ψ = E<s_i, s_{i-1}> / E|s_i|²``."""
    k = window_size
    weights = [min(d + 1, 2 * k - 1 - d) / k for d in range(2 * k - 1)]
    covariance = lambda lag: momentum ** abs(lag)  # noqa: E731
    same = sum(wa * wb * covariance(a - b) for a, wa in enumerate(weights) for b, wb in enumerate(weights))
    shifted = sum(wa * wb * covariance(a + k - b) for a, wa in enumerate(weights) for b, wb in enumerate(weights))
    return math.degrees(math.acos(shifted / same))


class ReferenceAutoDrop:
    """The decision rule on a float64 parameter vector, one optimizer step at a time.

    Args:
        config: the hyper-parameters (``window_size`` an integer, or ``"growing"``).
        momentum: the optimizer's heavy-ball momentum β, for the noise floor.
        num_training_steps: ``T`` for ``drop_factor="auto"`` (``None``: unknown).
        num_warmup_steps: steps not observed.
        floors: ``min_lr / peak_lr`` of each parameter group.
    """

    def __init__(
        self,
        config: AutoDropConfig,
        momentum: float,
        num_training_steps: int | None = None,
        num_warmup_steps: int = 0,
        floors: tuple[float, ...] = (0.0,),
    ) -> None:
        self.config = config
        self.momentum = momentum
        self.growing = config.window_size == "growing"
        self.k = 1 if self.growing else config.window_size
        self.psi = pure_noise_angle(self.k, momentum)
        self.total = num_training_steps
        self.warmup = num_warmup_steps
        self.floors = floors
        self.step_count = 0
        self.window: list[torch.Tensor] = []  # parameter vectors of the current window
        self.means: list[torch.Tensor] = []  # the last two window means
        self.previous_displacement: torch.Tensor | None = None
        self.buffer: list[float] = []  # angles since the last decision
        self.span: list[torch.Tensor] = []  # their displacements (drift_ratio)
        self.variance_ratio: float | None = None  # the last decision's (drift_ratio)
        self.previous_smoothed: float | None = None  # paper's test
        self.z = math.nan  # noise-floor test: the last decision's statistic
        self.decided = False  # whether the last angle completed a decision
        self.scale = 1.0
        self.angles: list[tuple[int, float]] = []
        self.decision_steps: list[int] = []
        self.drops: list[int] = []
        self.done_step: int | None = None

    def lr_scales(self) -> list[float]:
        return [max(self.scale, floor) for floor in self.floors]

    def step(self, parameters: torch.Tensor) -> bool:
        """Observe the parameters after one optimizer step; whether the learning rate dropped."""
        self.step_count += 1
        if self.step_count <= self.warmup or max(self.lr_scales()) == 0.0:
            return False
        if self.growing and self.step_count == self.warmup + 1:
            self.resize()  # observation starts
        self.window.append(parameters.detach().double().flatten().clone())
        if len(self.window) < self.k:
            return False
        mean = torch.stack(self.window).mean(dim=0)  # y_i
        self.window = []
        if not self.means:  # the first window mean: the reference of the first displacement
            if bool(torch.isfinite(mean).all()):
                self.means = [mean]
            return False
        displacement = mean - self.means[-1]  # s_i = y_i - y_{i-1}
        if float(displacement.norm()) == 0.0 or not bool(torch.isfinite(displacement).all()):
            return False  # no movement, or a non-finite window: skipped, s_{i-1} kept
        self.means = [mean]
        previous, self.previous_displacement = self.previous_displacement, displacement
        if previous is None:
            return False
        cosine = float(displacement @ previous) / (float(displacement.norm()) * float(previous.norm()))
        angle = math.degrees(math.acos(min(1.0, max(-1.0, cosine))))
        self.angles.append((self.step_count, angle))
        self.buffer.append(angle)
        if self.config.drift_ratio is not None:
            self.span.append(displacement)
        saturated = self.saturated()
        decided = self.decided
        if decided:
            self.decision_steps.append(self.step_count)
        dropped = False
        if saturated:
            old = self.lr_scales()
            low = all(s <= max(self.config.done_scale, f) for s, f in zip(old, self.floors, strict=True))
            self.scale *= self.drop_factor()
            dropped = self.lr_scales() != old
            if dropped:
                self.drops.append(self.step_count)
            if self.done_step is None and (low or max(self.lr_scales()) == 0.0):
                self.done_step = self.step_count
        if decided and self.growing:
            self.resize()
        return dropped

    def resize(self) -> None:
        """Growing windows: the largest power of 2 at most 1/50 of the steps taken; a new size starts the
        chain of window means afresh."""
        k = 1
        while 2 * k <= self.step_count / 50:
            k *= 2
        if k != self.k:
            self.k, self.psi = k, pure_noise_angle(k, self.momentum)
            self.means, self.previous_displacement = [], None

    def saturated(self) -> bool:
        """The saturation test on the buffer of angles (it empties the buffer when it decides); sets
        :attr:`decided`."""
        m = self.config.buffer_size
        self.decided = False
        if len(self.buffer) < m:
            return False
        if self.config.saturation_test == "noise_floor":
            self.decided = True
            angles, self.buffer = self.buffer, []
            span, self.span = self.span, []
            self.z = self.statistic(angles)
            if self.config.drift_ratio is None:
                return self.z >= -self.config.drift_z
            # hold while the window means drift: ‖s_1 + … + s_m‖² / (‖s_1‖² + … + ‖s_m‖²) >= drift_ratio
            self.variance_ratio = float(torch.stack(span).sum(dim=0).square().sum()) / sum(
                float(s.square().sum()) for s in span
            )
            return self.z >= -self.config.drift_z and self.variance_ratio < self.config.drift_ratio
        # the paper's: Gaussian smoothing around the middle angle, then |C - C_prev| < threshold
        buffer = self.buffer[-m:]
        mean = sum(buffer) / m
        sigma = min(math.sqrt(sum((b - mean) ** 2 for b in buffer) / m), m / 2)
        centre = buffer[m // 2]
        if sigma == 0.0:
            smoothed = centre
        else:
            weights = [math.exp(-((centre - b) ** 2) / (2 * sigma**2)) for b in buffer]
            smoothed = sum(w * b for w, b in zip(weights, buffer, strict=True)) / sum(weights)
        self.buffer = buffer[1:]
        previous, self.previous_smoothed = self.previous_smoothed, smoothed
        self.decided = previous is not None
        if previous is not None and abs(smoothed - previous) < self.config.threshold:
            self.buffer, self.previous_smoothed = [], None
            return True
        return False

    def statistic(self, angles: list[float]) -> float:
        """How many standard errors the mean angle lies above the noise floor ψ (lag-1 corrected)."""
        m = len(angles)
        mean = sum(angles) / m
        deviations = [a - mean for a in angles]
        squares = sum(d * d for d in deviations)
        if squares == 0.0:
            return 0.0 if mean == self.psi else math.copysign(math.inf, mean - self.psi)
        r = sum(a * b for a, b in itertools.pairwise(deviations)) / squares
        r = min(max(r, 0.0), 0.9)
        return (mean - self.psi) / math.sqrt(squares / (m - 1) * (1 + r) / ((1 - r) * m))

    def drop_factor(self) -> float:
        """ρ; ``"linear"``: the step of a linear decay to 0 at step T over one decision interval; ``"power"``:
        the step of the decay ``t ** -power_exponent`` since the previous decision (none at the first)."""
        rule = self.config.drop_factor
        if rule == "auto":
            rule = "power" if self.total is None else "linear"
        if rule == "power":
            if len(self.decision_steps) < 2:
                return 1.0
            return (self.decision_steps[-2] / self.decision_steps[-1]) ** self.config.power_exponent
        if rule != "linear":
            return rule
        remaining = self.total - self.step_count
        interval = self.config.buffer_size * self.k
        return max(0.0, 1 - interval / remaining) if remaining > 0 else 0.0
