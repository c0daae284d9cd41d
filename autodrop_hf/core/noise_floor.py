"""The angle's noise floor: the angular velocity that pure gradient noise gives.

When the gradient is dominated by noise, an optimizer's update is a linear filter of white noise, and
the parameters perform a random walk with correlated increments. The angle between consecutive
displacements of ``k``-step window means then has a value ``ψ`` fixed by ``k`` and the optimizer's
momentum alone, whatever the learning rate and the loss: ``ψ(1, β) = arccos β`` (25.84° for Adam's
β1 = 0.9), rising to 75.52° for long windows. A consistent direction of travel (training still
making progress) lowers the angle below ψ; mean reversion in a basin raises it. AutoDrop's default
test compares the measured angle with ψ (see :class:`~autodrop_hf.core.saturation.NoiseFloorTest`).

The filters (the update's impulse response to one gradient, up to scale; ``h_j`` for ``j`` steps later):

- heavy-ball momentum β (Adam and AdamW's first moment, SGD, RMSprop): ``h_j = β^j``;
- Nesterov momentum (SGD with ``nesterov=True``, NAdam): ``h_0 = a``, ``h_j = c·β^j`` for ``j ≥ 1``;
- no momentum: ``h_0 = 1``.

The increments' autocovariance is then ``γ(0) = a² + c²β²/(1-β²)`` and ``γ(l) = β^|l|·(a·c + c²β²/(1-β²))``,
and ``cos ψ = Σ_L T(L)·γ(L + k) / Σ_L T(L)·γ(L)``, where ``T`` is the autocorrelation of the triangular
weights ``min(d + 1, 2k - 1 - d)`` with which the ``2k - 1`` increments between the two windows enter a
displacement (the ratio of expectations: exact in many dimensions). For heavy-ball momentum this has the
closed form :func:`heavy_ball_noise_floor`, which the tests check against the general sum and against a
simulation of the optimizers themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .scheduler_adapters import unwrap_optimizer
from .user_warnings import warn


@dataclass(frozen=True)
class MomentumFilter:
    """How an optimizer filters gradient noise into its updates: ``h_0 = lead``, ``h_j = tail·beta^j``.

    Attributes:
        beta: the momentum coefficient, in [0, 1).
        lead: weight of the current gradient in the update.
        tail: weight of the gradient ``j`` steps back, divided by ``beta^j`` (``j ≥ 1``).
        source: what the filter was read from, for messages.
    """

    beta: float
    lead: float = 1.0
    tail: float = 1.0
    source: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.beta, int | float) and 0 <= self.beta < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.beta!r} ({self.source or 'given'}).")

    @classmethod
    def heavy_ball(cls, beta: float, source: str = "") -> MomentumFilter:
        """``h_j = beta^j``: Adam's first moment, SGD momentum (any dampening), RMSprop momentum."""
        return cls(beta=float(beta), source=source)

    @property
    def is_heavy_ball(self) -> bool:
        """``h_j = lead·beta^j`` for every ``j``: an AR(1) process."""
        return self.tail == self.lead or self.beta == 0

    def autocovariance(self, lag: int) -> float:
        """``γ(lag)`` of the update increments, for unit gradient noise."""
        beta, tail = self.beta, self.tail
        geometric = tail * tail * beta * beta / (1 - beta * beta)
        if lag == 0:
            return self.lead * self.lead + geometric
        return beta ** abs(lag) * (self.lead * tail + geometric)


def heavy_ball_noise_floor(window_size: int, beta: float) -> float:
    """``ψ(k, β)`` in degrees for heavy-ball momentum, in closed form (``q = β^k``, ``P = 1 - 8β + β²``)::

        cos ψ = [(1-β²)(k³(1-β)² - kP) - 6β²(1-q)(4 - 3q + q²)] / [2(1-β²)(2k³(1-β)² + kP) + 12β²(1-q)(3 - q)]

    ``ψ(1, β) = arccos β``; ``β = 0`` gives ``cos ψ = (k² - 1) / (2(2k² + 1))``, 90° at ``k = 1``.
    """
    k, q, p = window_size, beta**window_size, 1 - 8 * beta + beta * beta
    numerator = (1 - beta * beta) * (k**3 * (1 - beta) ** 2 - k * p) - 6 * beta * beta * (1 - q) * (4 - 3 * q + q * q)
    denominator = 2 * (1 - beta * beta) * (2 * k**3 * (1 - beta) ** 2 + k * p) + 12 * beta * beta * (1 - q) * (3 - q)
    return math.degrees(math.acos(max(-1.0, min(1.0, numerator / denominator))))


def noise_floor(window_size: int, momentum: MomentumFilter) -> float:
    """``ψ``: the expected angular velocity, in degrees, of a pure-noise random walk whose increments
    are filtered by ``momentum``, measured with windows of ``window_size`` steps."""
    if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
        raise ValueError(f"window_size must be an integer >= 1, got {window_size!r}.")
    if momentum.is_heavy_ball:
        return heavy_ball_noise_floor(window_size, momentum.beta)
    k = window_size
    d = torch.arange(2 * k - 1, dtype=torch.float64)
    weights = torch.minimum(d + 1, 2 * k - 1 - d)
    # T(L) for L = -(2k-2) … 2k-2: the autocorrelation of the triangular weights, through the FFT.
    spectrum = torch.fft.rfft(weights, n=8 * k)
    circular = torch.fft.irfft(spectrum * spectrum.conj(), n=8 * k)
    overlap = torch.cat((circular[-(2 * k - 2) :], circular[: 2 * k - 1])) if k > 1 else circular[:1]
    lags = torch.arange(-(2 * k - 2), 2 * k - 1, dtype=torch.float64)
    beta = momentum.beta

    def gamma(shift: int) -> torch.Tensor:
        lag = (lags + shift).abs()
        values = torch.full_like(lag, momentum.autocovariance(1) / beta) * beta**lag if beta else torch.zeros_like(lag)
        return torch.where(lag == 0, torch.full_like(lag, momentum.autocovariance(0)), values)

    cosine = float((overlap * gamma(k)).sum() / (overlap * gamma(0)).sum())
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


#: Optimizers whose ``betas[0]`` is a heavy-ball first moment (Adam's update ``m̂ / √v̂`` with ``v̂``
#: slowly varying under noise).
_ADAM_LIKE = ("Adam", "AdamW", "Adamax", "RAdam", "SparseAdam", "Adafactor")


def _nadam_momentum(beta: float, step: int, momentum_decay: float) -> float:
    """NAdam's momentum at ``step`` (PyTorch's schedule): ``β1·(1 - 0.5·0.96^(step·momentum_decay))``, which
    reaches β1 only after tens of thousands of steps (0.52 at step 1,000 for β1 = 0.9 and the default decay)."""
    return beta * (1 - 0.5 * 0.96 ** (step * momentum_decay))


def momentum_filter(optimizer: Any, warn_unknown: bool = True) -> MomentumFilter:
    """The momentum filter of an optimizer, read from its first parameter group, as it stands now (a
    scheduler may move the momentum: ``OneCycleLR``, ``CyclicLR``; NAdam's grows with its step count).

    - ``torch.optim.SGD``: heavy ball with ``momentum`` (dampening only scales the update); Nesterov
      ``h_0 = 1 + μ(1 - dampening)``, ``h_j = μ^{j+1}(1 - dampening)``; no momentum: 0.
    - Adam, AdamW, Adamax, RAdam, SparseAdam (``betas[0]``), Transformers' Adafactor (``beta1``, none by
      default): heavy ball with β1.
    - NAdam: Nesterov with its momentum ``μ_t`` at the current step ``t`` (``h_0 = 1 - μ_t + μ_{t+1}(1 - β1)``,
      ``h_j = μ_{t+1}(1 - β1)·β1^j``; at the limit ``μ = β1``: ``h_0 = 1 - β1²``).
    - RMSprop: heavy ball with its ``momentum``. Adagrad, Adadelta, Rprop, ASGD, LBFGS: none.
    - Any other optimizer: ``betas[0]`` if its groups have ``betas``, else ``momentum`` if they have it,
      with a warning saying so (unless ``warn_unknown`` is false); with neither, no momentum and a warning.
      Pass ``momentum=`` to :class:`~autodrop_hf.AutoDrop` to say what your optimizer does.
    """
    optimizer = unwrap_optimizer(optimizer)
    name = type(optimizer).__name__
    group = optimizer.param_groups[0]
    source = f"{name} param_groups[0]"
    if name == "SGD":
        mu, dampening = float(group.get("momentum", 0.0)), float(group.get("dampening", 0.0))
        if group.get("nesterov") and mu:
            return MomentumFilter(beta=mu, lead=1 + mu * (1 - dampening), tail=mu * (1 - dampening), source=source)
        return MomentumFilter.heavy_ball(mu, f"{source} momentum")
    if name == "NAdam":
        beta, decay = float(group["betas"][0]), float(group.get("momentum_decay", 4e-3))
        # the step count of the first parameter it has updated (one without a gradient has no state): one read,
        # since this runs at every window end and a capturable NAdam keeps its counts on the device
        step = int(next((state["step"] for state in optimizer.state.values() if "step" in state), 0))
        mu, mu_next = _nadam_momentum(beta, step, decay), _nadam_momentum(beta, step + 1, decay)
        lead, tail = 1 - mu + mu_next * (1 - beta), mu_next * (1 - beta)
        return MomentumFilter(beta=beta, lead=lead, tail=tail, source=f"{source} betas[0], step {step}")
    if name in _ADAM_LIKE:
        beta = group.get("beta1") if "betas" not in group else group["betas"][0]
        return MomentumFilter.heavy_ball(float(beta or 0.0), f"{source} betas[0]")
    if name == "RMSprop":
        return MomentumFilter.heavy_ball(float(group.get("momentum", 0.0)), f"{source} momentum")
    if name in ("Adagrad", "Adadelta", "Rprop", "ASGD", "LBFGS"):
        return MomentumFilter.heavy_ball(0.0, f"{name} has no momentum")
    if "betas" in group or "momentum" in group:
        key = "betas" if "betas" in group else "momentum"
        beta = float(group[key][0] if key == "betas" else group[key])
        assumption = f"heavy-ball momentum {beta} (param_groups[0]['{key}']{'[0]' if key == 'betas' else ''})"
    else:
        beta, assumption = 0.0, "no momentum"
    if warn_unknown:
        warn(
            f"AutoDrop does not know how {name} filters gradient noise; it assumes {assumption} for the "
            "angle's noise floor. Pass momentum=β (to AutoDrop, AutoDropScheduler or AutoDropCallback) if that "
            "is wrong.",
            UserWarning,
        )
    return MomentumFilter.heavy_ball(beta, f"{name}: assumed")
