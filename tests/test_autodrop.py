import math

import numpy as np
import pytest
import torch
from reference import drop_indices, window_angles

from autodrop_hf import AutoDrop, AutoDropConfig, AutoDropLR


class NoisyQuadratic:
    """The paper's NQM (Section 3) as a training problem: x ∈ R^200, A = diag(1..200)/10."""

    def __init__(self, seed=0, lr=0.06, num_warmup_steps=0, scheduler=None):
        torch.manual_seed(seed)
        self.curvature = torch.arange(1, 201, dtype=torch.float32) / 10
        self.x = torch.nn.Parameter(torch.randn(200))
        self.optimizer = torch.optim.SGD([self.x], lr=lr)
        self.scheduler = (scheduler or (lambda opt: AutoDropLR(opt, num_warmup_steps=num_warmup_steps)))(self.optimizer)
        self.trajectory, self.lrs = [], []

    def train_step(self):
        c = torch.randn(200)
        loss = 0.5 * ((self.x - c) ** 2 * self.curvature).sum()
        self.optimizer.zero_grad()
        loss.backward()
        self.lrs.append(self.optimizer.param_groups[0]["lr"])
        self.optimizer.step()
        self.scheduler.step()
        self.trajectory.append(self.x.detach().double().numpy().copy())
        return loss.item()


def run(problem, autodrop, steps):
    for _ in range(steps):
        problem.train_step()
        autodrop.step()
    return problem


def test_drops_match_the_float64_reference_algorithm():
    problem = NoisyQuadratic(num_warmup_steps=30)
    config = AutoDropConfig(window_size=5, buffer_size=10, threshold=0.1, drop_factor=0.7)
    autodrop = AutoDrop([problem.x], config, problem.scheduler)
    run(problem, autodrop, 3_000)
    angles = window_angles(np.array(problem.trajectory), window_size=5, num_warmup_steps=30)
    np.testing.assert_allclose([a for _, a in autodrop.angles], angles, atol=1e-3)
    angle_steps = [s for s, _ in autodrop.angles]
    assert angle_steps == [30 + 5 * (j + 3) for j in range(len(angles))]
    expected = [angle_steps[i] for i in drop_indices(angles, buffer_size=10, threshold=0.1)]
    assert autodrop.drops == expected
    assert len(expected) >= 3
    assert min(np.diff(expected)) >= (10 + 1) * 5  # drops at least m + 1 windows apart
    assert autodrop.scale == pytest.approx(0.7 ** len(expected))


def test_drop_takes_effect_from_the_next_optimizer_step():
    problem = NoisyQuadratic(lr=0.06, num_warmup_steps=10)
    autodrop = AutoDrop([problem.x], AutoDropConfig(window_size=4, drop_factor=0.5), problem.scheduler)
    run(problem, autodrop, 2_000)
    assert autodrop.drops
    for n, step in enumerate(autodrop.drops, start=1):
        assert problem.lrs[step - 1] == pytest.approx(0.06 * 0.5 ** (n - 1))  # step `step` used the old LR
        assert problem.lrs[step] == pytest.approx(0.06 * 0.5**n)  # the next one the new LR
    # Everywhere: base · warmup · scale.
    for t, lr in enumerate(problem.lrs):
        drops_before = sum(1 for s in autodrop.drops if s <= t)
        assert lr == pytest.approx(0.06 * min(1.0, t / 10) * 0.5**drops_before, abs=1e-15)


def test_warmup_steps_are_not_observed():
    problem = NoisyQuadratic(num_warmup_steps=50)
    autodrop = AutoDrop([problem.x], AutoDropConfig(window_size=7), problem.scheduler)
    run(problem, autodrop, 200)
    assert autodrop.angles[0][0] == 50 + 3 * 7
    np.testing.assert_allclose(
        [a for _, a in autodrop.angles],
        window_angles(np.array(problem.trajectory), 7, num_warmup_steps=50),
        atol=1e-3,
    )


def test_floor_min_lr():
    problem = NoisyQuadratic(lr=0.06)
    config = AutoDropConfig(window_size=3, buffer_size=3, drop_factor=0.5, min_lr=0.02)
    autodrop = AutoDrop([problem.x], config, problem.scheduler)
    run(problem, autodrop, 3_000)
    assert len(autodrop.drops) >= 4
    assert autodrop.scale == pytest.approx(1 / 3)
    assert min(problem.lrs) == pytest.approx(0.02)
    assert problem.optimizer.param_groups[0]["lr"] == pytest.approx(0.02)


def test_min_lr_needs_a_peak_learning_rate():
    params = [torch.nn.Parameter(torch.zeros(3))]
    with pytest.raises(ValueError, match=r"min_lr=0\.001 needs the peak learning rate"):
        AutoDrop(params, AutoDropConfig(min_lr=1e-3))
    assert AutoDrop(params, AutoDropConfig(min_lr=1e-3), base_lr=1e-2).min_scale == pytest.approx(0.1)


def test_bad_arguments():
    params = [torch.nn.Parameter(torch.zeros(3))]
    with pytest.raises(TypeError, match="AutoDropConfig"):
        AutoDrop(params, {"window_size": 3})
    with pytest.raises(ValueError, match="num_warmup_steps must be an integer >= 0"):
        AutoDrop(params, num_warmup_steps=-1)
    with pytest.raises(ValueError, match="no trainable parameters"):
        AutoDrop(torch.nn.Linear(2, 2).requires_grad_(False))
    with pytest.raises(ValueError, match="num_warmup_steps must be an integer >= 0"):
        AutoDropLR(torch.optim.SGD(params, lr=0.1), num_warmup_steps=1.5)


def test_auto_window_size_uses_planned_steps():
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert AutoDrop(params, num_training_steps=20_000).window_size == 20
    assert AutoDrop(params).window_size == 64


def test_without_scheduler_only_scale_and_records():
    problem = NoisyQuadratic()
    autodrop = AutoDrop([problem.x], AutoDropConfig(window_size=4))
    run(problem, autodrop, 1_500)
    assert autodrop.drops and autodrop.scale == pytest.approx(0.95 ** len(autodrop.drops))
    assert set(problem.lrs) == {0.06}  # nothing touched the optimizer


def test_nan_parameters_never_drop():
    problem = NoisyQuadratic()
    autodrop = AutoDrop([problem.x], AutoDropConfig(window_size=2, buffer_size=2), problem.scheduler)
    problem.x.data.fill_(float("nan"))
    with pytest.warns(RuntimeWarning, match="not finite") as record:
        for _ in range(100):
            problem.optimizer.step()
            problem.scheduler.step()
            autodrop.step()
    assert autodrop.drops == [] and autodrop.angles == [] and len(record) == 1


def test_any_scheduler_is_multiplied():
    total = 3_000
    linear = lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 - t / total)  # noqa: E731
    problem = NoisyQuadratic(scheduler=linear)
    autodrop = AutoDrop([problem.x], AutoDropConfig(window_size=4, drop_factor=0.5), problem.scheduler)
    run(problem, autodrop, total - 1)
    assert autodrop.drops
    for t, lr in enumerate(problem.lrs):
        drops_before = sum(1 for s in autodrop.drops if s <= t)
        assert lr == pytest.approx(0.06 * (1 - t / total) * 0.5**drops_before, rel=1e-12)
    assert problem.scheduler.base_lrs == [0.06 * autodrop.scale]  # recoverable from its state
    assert problem.scheduler.get_last_lr() == [problem.optimizer.param_groups[0]["lr"]]


def test_plateau_scheduler_keeps_the_drop():
    plateau = lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt)  # noqa: E731
    problem = NoisyQuadratic(scheduler=plateau)
    problem.scheduler.step = lambda: None  # steps on eval metrics only
    autodrop = AutoDrop([problem.x], AutoDropConfig(window_size=4, drop_factor=0.5), problem.scheduler)
    run(problem, autodrop, 1_500)
    assert autodrop.drops
    assert problem.optimizer.param_groups[0]["lr"] == pytest.approx(0.06 * autodrop.scale)


def test_resume_mid_window_is_exact(tmp_path):
    config = AutoDropConfig(window_size=6, buffer_size=4, drop_factor=0.8)
    straight = NoisyQuadratic(seed=3, num_warmup_steps=12)
    reference = AutoDrop([straight.x], config, straight.scheduler)
    run(straight, reference, 1_200)
    assert len([s for s in reference.drops if s < 500]) >= 1

    first = NoisyQuadratic(seed=3, num_warmup_steps=12)
    autodrop = AutoDrop([first.x], config, first.scheduler)
    run(first, autodrop, 500)
    assert autodrop.angular_velocity.steps_in_window != 0  # the checkpoint is mid-window
    torch.save(
        {
            "x": first.x.detach(),
            "optimizer": first.optimizer.state_dict(),
            "scheduler": first.scheduler.state_dict(),
            "autodrop": autodrop.state_dict(),
            "rng": torch.get_rng_state(),
        },
        tmp_path / "checkpoint.pt",
    )
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    second = NoisyQuadratic(seed=99, num_warmup_steps=12)
    second.x.data.copy_(saved["x"])
    second.optimizer.load_state_dict(saved["optimizer"])
    second.scheduler.load_state_dict(saved["scheduler"])
    resumed = AutoDrop([second.x], config, second.scheduler)
    resumed.load_state_dict(saved["autodrop"])
    torch.set_rng_state(saved["rng"])
    run(second, resumed, 700)

    assert resumed.drops == reference.drops
    assert resumed.angles == reference.angles
    assert first.lrs + second.lrs == straight.lrs
    assert torch.equal(second.x, straight.x)


def test_state_dict_is_plain():
    problem = NoisyQuadratic()
    autodrop = AutoDrop([problem.x], AutoDropConfig(window_size=2), problem.scheduler)
    run(problem, autodrop, 50)
    allowed = (int, float, str, bool, type(None), torch.Tensor)

    def check(value):
        if isinstance(value, dict):
            assert all(isinstance(k, str) for k in value)
            for v in value.values():
                check(v)
        elif isinstance(value, list):
            for v in value:
                check(v)
        else:
            assert isinstance(value, allowed), type(value)

    check(autodrop.state_dict())
    check(problem.scheduler.state_dict())
    assert math.isclose(problem.scheduler.state_dict()["scale"], autodrop.scale)


def test_a_new_detector_recovers_the_scale_from_the_schedulers_state():
    linear = lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)  # noqa: E731
    for make in (None, linear):
        problem = NoisyQuadratic(scheduler=make)
        autodrop = AutoDrop([problem.x], AutoDropConfig(window_size=4, drop_factor=0.5), problem.scheduler)
        run(problem, autodrop, 1_000)
        assert autodrop.drops
        fresh = AutoDrop([problem.x], AutoDropConfig(window_size=4, drop_factor=0.5), problem.scheduler)
        assert fresh.scale == pytest.approx(autodrop.scale)
        fresh_state = problem.scheduler.state_dict()
        problem.scheduler.load_state_dict(fresh_state)
        assert AutoDrop([problem.x], scheduler=problem.scheduler).scale == pytest.approx(autodrop.scale)
