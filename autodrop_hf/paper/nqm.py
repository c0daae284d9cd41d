"""The paper's noisy quadratic model (Section 3): simulation, Theorem 3.2, and AutoDrop on it.

``L(x) = ½ (x - c)ᵀ A (x - c)`` with ``x ∈ R^200``, ``A = diag(1/10, 2/10, …, 200/10)`` and fresh noise
``c ~ N(0, Σ)`` at every step (``Σ = I`` here). Gradient descent reads
``x_{t+1} = x_t - α A (x_t - c_t)``; the excess loss reported is ``½ xᵀ A x``. The per-iteration
angular velocity is the angle between consecutive steps ``s_t = x_{t+1} - x_t`` (Definition 1.1),
which is the library's batch angular velocity with ``window_size=1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.autodrop import AutoDrop
from ..core.config import AutoDropConfig
from ..core.scheduler import AutoDropLR

#: The fixed learning rates of the paper's Figure 1.
PAPER_LEARNING_RATES = (0.06, 0.03, 0.01, 0.001)


def curvatures(dimension: int = 200) -> torch.Tensor:
    """The diagonal of ``A``: ``1/10, 2/10, …, dimension/10`` (float64)."""
    return torch.arange(1, dimension + 1, dtype=torch.float64) / 10


def excess_loss(x: torch.Tensor, a: torch.Tensor) -> float:
    """``½ xᵀ A x``: the expected loss above its minimum ``½ tr(AΣ)``."""
    return 0.5 * float((a * x * x).sum())


@dataclass
class Trajectory:
    """Per-iteration records of one run: excess loss, learning rate, and angle (degrees, NaN for
    the first step, which has no predecessor)."""

    losses: list[float]
    learning_rates: list[float]
    angles: list[float]
    drops: list[int]


def run_gd(
    learning_rate: float,
    steps: int,
    x0: torch.Tensor,
    generator: torch.Generator,
    noise_std: torch.Tensor | float = 1.0,
) -> Trajectory:
    """Gradient descent at a fixed learning rate; angles between consecutive steps."""
    a = curvatures(x0.numel())
    x = x0.clone()
    previous_step = None
    losses, angles = [], []
    for _ in range(steps):
        c = torch.randn(x.numel(), generator=generator, dtype=torch.float64) * noise_std
        step = -learning_rate * a * (x - c)
        x += step
        losses.append(excess_loss(x, a))
        angles.append(math.nan if previous_step is None else _angle(step, previous_step))
        previous_step = step
    return Trajectory(losses, [learning_rate] * steps, angles, [])


def _angle(u: torch.Tensor, v: torch.Tensor) -> float:
    cosine = float(u @ v) / math.sqrt(float(u @ u) * float(v @ v))
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def section3_config() -> AutoDropConfig:
    """Section 3's rule in library terms: per-iteration angles (``window_size=1``), smoothed over 20
    iterations, halve the LR when the smoothed value changes by less than 0.01°, floor 0.001."""
    return AutoDropConfig.paper(window_size=1, buffer_size=20, threshold=0.01, drop_factor=0.5, min_lr=0.001)


def run_autodrop(
    steps: int,
    x0: torch.Tensor,
    generator: torch.Generator,
    initial_lr: float = 0.06,
    config: AutoDropConfig | None = None,
) -> Trajectory:
    """Gradient descent on the NQM driven by :class:`~autodrop_hf.AutoDrop` (the library itself)."""
    a = curvatures(x0.numel())
    x = torch.nn.Parameter(x0.clone())
    optimizer = torch.optim.SGD([x], lr=initial_lr)
    scheduler = AutoDropLR(optimizer)
    autodrop = AutoDrop([x], config or section3_config(), scheduler)
    losses, rates = [], []
    for _ in range(steps):
        c = torch.randn(x.numel(), generator=generator, dtype=torch.float64)
        rates.append(optimizer.param_groups[0]["lr"])
        x.grad = a * (x.detach() - c)  # ∇L(x) for this draw of c
        optimizer.step()
        scheduler.step()
        autodrop.step()
        losses.append(excess_loss(x.detach(), a))
    angles = [math.nan] * steps
    for step, angle in autodrop.angles:
        angles[step - 1] = angle
    return Trajectory(losses, rates, angles, list(autodrop.drops))


# --- Theorem 3.2 ----------------------------------------------------------------------------------


def theorem_cosine(learning_rate: float, a: torch.Tensor, sigma_sq: torch.Tensor | float = 1.0) -> dict[str, float]:
    """Saturation cosine of Theorem 3.2 as printed in the main text (Eq. 5) and as derived in the
    supplement's proof (Eq. 18-23, whose denominator ``N* = 2α² Σ a²σ²/(2 - αa)`` has a factor 2)."""
    weight = a * a * sigma_sq / (2 - learning_rate * a)
    ratio = float((weight * a).sum() / weight.sum())
    return {
        "eq5_main_text": -learning_rate * ratio,
        "eq23_supplement": -learning_rate * ratio / 2,
        "eq6_bound": -learning_rate * float(a.max()) / 2,
    }


def stationary_start(learning_rate: float, a: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A draw from the stationary distribution of GD: ``x_i ~ N(0, α a_i σ² / (2 - α a_i))`` (Eq. 13)."""
    variance = learning_rate * a / (2 - learning_rate * a)
    return torch.randn(a.numel(), generator=generator, dtype=torch.float64) * variance.sqrt()


def measure_saturation(learning_rate: float, steps: int, generator: torch.Generator) -> dict[str, float]:
    """Mean cosine (and its standard error) and mean angle between consecutive steps at saturation,
    started from the stationary distribution so that every step counts."""
    a = curvatures()
    x = stationary_start(learning_rate, a, generator)
    noise = torch.randn(steps + 1, a.numel(), generator=generator, dtype=torch.float64)
    cosines = torch.empty(steps)
    previous = -learning_rate * a * (x - noise[0])
    x = x + previous
    for t in range(steps):
        step = -learning_rate * a * (x - noise[t + 1])
        x = x + step
        cosines[t] = float(step @ previous) / math.sqrt(float(step @ step) * float(previous @ previous))
        previous = step
    cosines64 = cosines.double()
    # consecutive cosines are correlated: the standard error uses blocks of 100 steps
    blocks = cosines64[: steps - steps % 100].view(-1, 100).mean(1)
    return {
        "cosine": float(cosines64.mean()),
        "cosine_stderr": float(blocks.std() / math.sqrt(blocks.numel())),
        "angle": float(torch.rad2deg(torch.arccos(cosines64.clamp(-1, 1))).mean()),
    }


def theorem_table(steps: int = 20_000, seed: int = 0) -> list[dict[str, float]]:
    """Measured saturation cosine and angle against Eq. 5 and Eq. 23, for each of the paper's α."""
    generator = torch.Generator().manual_seed(seed)
    a = curvatures()
    rows = []
    for lr in PAPER_LEARNING_RATES:
        measured = measure_saturation(lr, steps, generator)
        theory = theorem_cosine(lr, a)
        rows.append(
            {
                "lr": lr,
                **measured,
                **theory,
                "eq5_angle": math.degrees(math.acos(max(-1.0, theory["eq5_main_text"]))),
                "eq23_angle": math.degrees(math.acos(theory["eq23_supplement"])),
            }
        )
    return rows
