"""The angle's noise floor ψ(k, β): closed form, general sum, the readable twin's direct sum, and
simulations of the real optimizers on pure gradient noise."""

import math

import numpy as np
import pytest
import torch

from autodrop_hf.core.autodrop_reference import pure_noise_angle
from autodrop_hf.core.noise_floor import MomentumFilter, heavy_ball_noise_floor, momentum_filter, noise_floor


@pytest.mark.parametrize(
    ("k", "beta", "degrees"),
    [(1, 0.9, 25.84), (2, 0.9, 28.43), (8, 0.9, 48.10), (64, 0.9, 73.27), (1, 0.99, 8.11), (16, 0.99, 23.45)],
)
def test_closed_form_table(k, beta, degrees):
    assert heavy_ball_noise_floor(k, beta) == pytest.approx(degrees, abs=0.005)


def test_closed_form_limits():
    assert heavy_ball_noise_floor(1, 0.9) == pytest.approx(math.degrees(math.acos(0.9)), abs=1e-9)
    for k in (1, 2, 3, 10):  # no momentum: cos ψ = (k² - 1) / (2(2k² + 1))
        assert heavy_ball_noise_floor(k, 0.0) == pytest.approx(math.degrees(math.acos((k * k - 1) / (4 * k * k + 2))))
    assert heavy_ball_noise_floor(100_000, 0.9) == pytest.approx(math.degrees(math.acos(0.25)), abs=0.01)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("k", [1, 2, 5, 17])
def test_closed_form_matches_the_direct_sum_and_the_general_filter(k, beta):
    expected = pure_noise_angle(k, beta)  # the twin's O(k²) sum over the triangular weights
    assert heavy_ball_noise_floor(k, beta) == pytest.approx(expected, abs=1e-5)  # cancellation near β = 1
    nearly_heavy_ball = MomentumFilter(beta=beta, lead=1.0, tail=1.0 + 1e-12)  # takes the general (FFT) path
    assert noise_floor(k, nearly_heavy_ball) == pytest.approx(expected, abs=1e-6)


def _pure_noise_angles(optimizer_factory, window: int, steps: int = 4000, dim: int = 2000) -> np.ndarray:
    """Mean angle between window-mean displacements of an optimizer driven by white-noise gradients."""
    torch.manual_seed(0)
    x = torch.nn.Parameter(torch.zeros(dim, dtype=torch.float64))
    optimizer = optimizer_factory([x])
    trajectory = []
    for _ in range(steps):
        x.grad = torch.randn(dim, dtype=torch.float64)
        optimizer.step()
        trajectory.append(x.detach().clone())
    means = torch.stack(trajectory[500:]).view(-1, window, dim).mean(dim=1)  # skip the start-up
    s = means.diff(dim=0)
    cosine = (s[1:] * s[:-1]).sum(1) / (s[1:].norm(dim=1) * s[:-1].norm(dim=1))
    return np.degrees(np.arccos(cosine.numpy()))


@pytest.mark.parametrize(
    "make",
    [
        lambda p: torch.optim.SGD(p, lr=1e-3),
        lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9, dampening=0.5),
        lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.8, nesterov=True),
        lambda p: torch.optim.AdamW(p, lr=1e-3),
        lambda p: torch.optim.Adam(p, lr=1e-3, betas=(0.8, 0.99)),
        lambda p: torch.optim.RMSprop(p, lr=1e-3, momentum=0.7),
    ],
    ids=["sgd", "sgd-momentum", "sgd-dampening", "nesterov", "adamw", "adam-0.8", "rmsprop"],
)
@pytest.mark.parametrize("window", [1, 4])
def test_real_optimizers_on_pure_noise_sit_at_the_floor(make, window):
    optimizer = make([torch.nn.Parameter(torch.zeros(1))])
    floor = noise_floor(window, momentum_filter(optimizer))
    angles = _pure_noise_angles(make, window)
    standard_error = angles.std() / math.sqrt(len(angles)) * 3  # consecutive angles are correlated
    assert abs(angles.mean() - floor) < max(4 * standard_error, 0.15), (angles.mean(), floor)


def test_nadam_on_pure_noise_sits_at_the_floor_of_its_momentum_at_that_step():
    """NAdam's momentum grows with its step count (0.52 at step 1,000 for β1 = 0.9): the floor of the
    limit β1 (48.9° at k = 1) would be far below what it measures; the floor read at the step is not."""
    x = torch.nn.Parameter(torch.zeros(4000, dtype=torch.float64))
    optimizer = torch.optim.NAdam([x], lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    trajectory = []
    for _ in range(1200):
        x.grad = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        optimizer.step()
        trajectory.append(x.detach().clone())
    s = torch.stack(trajectory[1000:]).diff(dim=0)
    angles = np.degrees(np.arccos(((s[1:] * s[:-1]).sum(1) / (s[1:].norm(dim=1) * s[:-1].norm(dim=1))).numpy()))
    floor = noise_floor(1, momentum_filter(optimizer))
    assert abs(angles.mean() - floor) < 0.5 and floor - noise_floor(1, MomentumFilter(0.9, 0.19, 0.09)) > 20


def test_momentum_is_read_from_the_optimizer():
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert momentum_filter(torch.optim.AdamW(params, betas=(0.85, 0.999))).beta == 0.85
    assert momentum_filter(torch.optim.SGD(params, lr=0.1)).beta == 0.0
    nesterov = momentum_filter(torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True))
    assert (nesterov.beta, nesterov.lead, nesterov.tail) == (0.9, pytest.approx(1.9), pytest.approx(0.9))
    assert momentum_filter(torch.optim.Adagrad(params)).beta == 0.0
    nadam = torch.optim.NAdam(params, betas=(0.9, 0.999))
    nadam.state[params[0]]["step"] = torch.tensor(10.0**6)  # at its limit μ = β1: h_0 = 1 - β1², h_j = β1(1 - β1)β1^j
    at_the_limit = momentum_filter(nadam)
    assert (at_the_limit.lead, at_the_limit.tail) == (pytest.approx(0.19), pytest.approx(0.09))
    frozen_first = torch.optim.NAdam([torch.nn.Parameter(torch.zeros(2)), params[0]])  # the first never steps
    frozen_first.state[params[0]]["step"] = torch.tensor(10.0**6)
    assert momentum_filter(frozen_first).lead == pytest.approx(0.19)

    from transformers.optimization import Adafactor

    class Wrapped:  # as Accelerate's AcceleratedOptimizer: the optimizer is .optimizer
        optimizer = torch.optim.Adam(params, betas=(0.7, 0.9))

    assert momentum_filter(Wrapped()).beta == 0.7
    assert momentum_filter(Adafactor(params, lr=1e-3, relative_step=False)).beta == 0.0  # beta1=None: none
    assert momentum_filter(Adafactor(params, lr=1e-3, relative_step=False, beta1=0.9)).beta == 0.9


def _impulse_response(optimizer: torch.optim.Optimizer, x: torch.nn.Parameter, lags: int) -> np.ndarray:
    """The updates the real optimizer makes for a unit gradient now and zero gradients after it."""
    updates = []
    for lag in range(lags):
        before = x.detach().clone()
        x.grad = torch.full_like(x, 1.0 if lag == 0 else 0.0)
        optimizer.step()
        updates.append(float((before - x.detach())[0]))
    return np.array(updates)


@pytest.mark.parametrize(
    ("name", "make", "step"),
    [
        ("Adam", lambda p: torch.optim.Adam(p, lr=1e12, eps=1e12), 1000),
        ("SGD Nesterov", lambda p: torch.optim.SGD(p, lr=1.0, momentum=0.8, nesterov=True), 5),
        ("NAdam at step 1,000", lambda p: torch.optim.NAdam(p, lr=1e12, eps=1e12), 1000),
        ("NAdam near its limit", lambda p: torch.optim.NAdam(p, lr=1e12, eps=1e12), 10**6),
    ],
)
def test_the_filter_is_the_real_optimizers_impulse_response(name, make, step):
    """Measured, not derived: with a huge ``eps`` Adam's and NAdam's denominators are constant, so an update is
    a linear filter of the gradients; the filter read at the step must have its shape (h_j / h_0, j = 0…5)."""
    x = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = make([x])
    for _ in range(min(step, 1000)):  # zero gradients: the step count (and NAdam's μ product) advance, x stays
        x.grad = torch.zeros_like(x)
        optimizer.step()
    if step > 1000:
        optimizer.state[x]["step"] = torch.tensor(float(step), dtype=torch.float64)
    read = momentum_filter(optimizer)
    expected = np.array([read.lead] + [read.tail * read.beta**j for j in range(1, 6)])
    measured = _impulse_response(optimizer, x, 6)
    np.testing.assert_allclose(measured / measured[0], expected / expected[0], rtol=2e-3, err_msg=name)


def test_an_unknown_optimizer_gets_a_stated_assumption():
    params = [torch.nn.Parameter(torch.zeros(2))]

    class Lion(torch.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {"lr": 1e-4, "betas": (0.95, 0.98)})

    class Plain(torch.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {"lr": 1e-4})

    with pytest.warns(UserWarning, match=r"does not know how Lion .* heavy-ball momentum 0.95 .*momentum=β"):
        assert momentum_filter(Lion(params)).beta == 0.95
    with pytest.warns(UserWarning, match="Plain .* assumes no momentum"):
        assert momentum_filter(Plain(params)).beta == 0.0


def test_bad_filters_and_windows_are_refused():
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\), got 1.0"):
        MomentumFilter.heavy_ball(1.0)
    with pytest.raises(ValueError, match="window_size must be an integer >= 1, got 0"):
        noise_floor(0, MomentumFilter.heavy_ball(0.9))
