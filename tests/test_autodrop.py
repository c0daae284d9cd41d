import copy
import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from reference import drop_indices, window_angles

from autodrop_hf import AutoDrop, AutoDropConfig, AutoDropLR
from autodrop_hf.core.autodrop_reference import ReferenceAutoDrop
from autodrop_hf.core.noise_floor import heavy_ball_noise_floor


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


def test_paper_drops_match_the_float64_reference_algorithm():
    problem = NoisyQuadratic(num_warmup_steps=30)
    config = AutoDropConfig.paper(window_size=5, buffer_size=10, threshold=0.1, drop_factor=0.7)
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


def test_paper_preset_reproduces_the_decisions_from_before_the_presets():
    """Recorded with the library before the noise-floor test existed (AutoDropConfig() was the paper's)."""
    golden = json.loads((Path(__file__).parent / "data" / "paper_rule_before_presets.json").read_text())
    cases = {
        "sgd_defaults_3000": (AutoDropConfig.paper(), 3000, 30, 0, lambda p: torch.optim.SGD(p, lr=0.06)),
        "adam_window4_4000": (
            AutoDropConfig.paper(window_size=4),
            4000,
            100,
            1,
            lambda p: torch.optim.Adam(p, lr=0.03),
        ),
        "sgdm_window2_m5_2000": (
            AutoDropConfig.paper(window_size=2, buffer_size=5, drop_factor=0.8, threshold=0.2),
            2000,
            0,
            2,
            lambda p: torch.optim.SGD(p, lr=0.005, momentum=0.9),
        ),
    }
    for name, (config, steps, warmup, seed, make_optimizer) in cases.items():
        torch.manual_seed(seed)
        curvature = torch.arange(1, 201, dtype=torch.float32) / 10
        x = torch.nn.Parameter(torch.randn(200))
        optimizer = make_optimizer([x])
        scheduler = AutoDropLR(optimizer, num_warmup_steps=warmup)
        autodrop = AutoDrop([x], config, scheduler, num_training_steps=steps)
        lrs = []
        for _ in range(steps):
            loss = 0.5 * ((x - torch.randn(200)) ** 2 * curvature).sum()
            optimizer.zero_grad()
            loss.backward()
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
            autodrop.step()
        assert autodrop.drops == golden[name]["drops"] and len(autodrop.drops) > 10, name
        assert [list(a) for a in autodrop.angles] == golden[name]["angles"], name  # bit for bit
        assert [list(c) for c in autodrop.smoothed] == golden[name]["smoothed"], name
        assert lrs == golden[name]["lrs"] and autodrop.scale == golden[name]["scale"], name


class AdamProblem:
    """A noisy quadratic trained with Adam from far away: a drift phase, then noise."""

    def __init__(self, seed=0, lr=0.03, num_warmup_steps=60, dim=200, start=3.0):
        torch.manual_seed(seed)
        self.curvature = torch.arange(1, dim + 1, dtype=torch.float32) / 10
        self.x = torch.nn.Parameter(torch.randn(dim) * start)
        self.optimizer = torch.optim.Adam([self.x], lr=lr)
        self.scheduler = AutoDropLR(self.optimizer, num_warmup_steps=num_warmup_steps)
        self.lr = lr

    def train_step(self):
        loss = 0.5 * ((self.x - torch.randn_like(self.x)) ** 2 * self.curvature).sum()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()


@pytest.mark.parametrize(
    ("config", "steps", "warmup", "beta"),
    [
        (AutoDropConfig(), 3000, 100, 0.9),
        (AutoDropConfig(window_size=3, drift_z=1.0), 2400, 50, 0.9),
        (AutoDropConfig(window_size=4, buffer_size=5, drop_factor=0.95), 1500, 0, 0.9),
        (AutoDropConfig(min_lr=3e-4), 3000, 100, 0.9),
        (AutoDropConfig.paper(window_size=4), 3000, 30, 0.9),
        (AutoDropConfig.anytime(), 6000, 100, 0.9),
        (AutoDropConfig.anytime(buffer_size=4, min_lr=5e-3, done_scale=0.5), 3000, 0, 0.9),
        (AutoDropConfig.anytime_average(), 6000, 100, 0.9),
    ],
    ids=["defaults", "window3-z1", "fixed-factor", "min-lr", "paper", "anytime", "anytime-m4-floor-done", "averaged"],
)
def test_fast_path_takes_the_readable_twins_decisions_step_by_step(config, steps, warmup, beta):
    problem = AdamProblem(num_warmup_steps=warmup)
    horizon = None if config.window_size == "growing" else steps
    autodrop = AutoDrop([problem.x], config, problem.scheduler, num_training_steps=horizon)
    if horizon is not None:
        config = config.replace(window_size=autodrop.window_size)
    twin = ReferenceAutoDrop(config, beta, horizon, warmup, floors=tuple(autodrop.floors))
    ratios = []
    for t in range(steps):
        lr = problem.optimizer.param_groups[0]["lr"]
        assert lr == pytest.approx(problem.lr * problem.scheduler.warmup_factor(t) * twin.lr_scales()[0], rel=1e-12)
        problem.train_step()
        assert autodrop.step() == twin.step(problem.x), f"step {t + 1}"
        ratio = (autodrop.last_record or {}).get("variance_ratio")
        if ratio is not None:  # drift_ratio: the float32 span against the twin's float64 displacements
            assert ratio == pytest.approx(twin.variance_ratio, rel=1e-4), f"step {t + 1}"
            ratios.append(ratio)
    assert autodrop.drops == twin.drops and len(twin.drops) >= 5
    assert [s for s, _ in autodrop.angles] == [s for s, _ in twin.angles]
    fast, slow = np.array([a for _, a in autodrop.angles]), np.array([a for _, a in twin.angles])
    assert np.abs(fast - slow).max() < 1e-2
    assert autodrop.done_step == twin.done_step
    if config.drift_ratio is not None:  # both sides of the ratio's boundary were met
        assert min(ratios) < config.drift_ratio <= max(ratios)


def test_default_rule_holds_while_training_drifts_and_otherwise_follows_a_linear_decay_to_zero():
    steps, warmup = 3000, 100
    problem = AdamProblem(num_warmup_steps=warmup, start=10.0)
    autodrop = AutoDrop([problem.x], AutoDropConfig(), problem.scheduler, num_training_steps=steps)
    lrs = []
    for _ in range(steps):
        lrs.append(problem.optimizer.param_groups[0]["lr"])
        problem.train_step()
        autodrop.step()
    assert autodrop.decisions[0][1] < -2 and not autodrop.decisions[0][2]  # far from the optimum: drift, hold
    held = [step for step, _, saturated in autodrop.decisions if not saturated]
    assert autodrop.drops == [step for step, _, saturated in autodrop.decisions if saturated]
    assert len(held) >= 3 and len(autodrop.drops) >= 20
    interval = 10 * autodrop.window_size
    for step in held:
        assert lrs[step] == lrs[step - 1]
    # each run of drops between holds is one linear decay from the level before it to 0 at the last step, read
    # at the end of each stair (a closed form, not the per-drop factor): level·(steps − t − interval)/(steps − t0)
    start = level = None
    for step, _, saturated in autodrop.decisions:
        if not saturated:
            start = None
            continue
        if start is None:
            start, level = step, lrs[step - 1]
        expected = level * max(0.0, steps - step - interval) / (steps - start)
        assert lrs[step] == pytest.approx(expected, rel=1e-9, abs=1e-15), step
    assert lrs[-1] == 0.0 and autodrop.scale == 0.0
    last_window = max(s for s, _, _ in autodrop.decisions)
    assert steps - last_window < interval and autodrop.angular_velocity.steps_in_window == 0  # stopped at 0


def test_without_a_horizon_windows_grow_and_drops_are_inverse_square_root_stairs():
    """Pure noise (the optimum at the start): a decision after the first drops by sqrt(t_prev / t) unless the
    test holds (by chance, about 4% of decisions under noise)."""
    problem = AdamProblem(num_warmup_steps=0, start=0.0)
    autodrop = AutoDrop([problem.x], AutoDropConfig(), problem.scheduler)
    assert autodrop.window_grows and autodrop.drop_rule == "power"
    lrs, sizes, records = [], {}, []
    for step in range(1, 6_401):
        lrs.append(problem.optimizer.param_groups[0]["lr"])
        problem.train_step()
        sizes[step] = autodrop.window_size
        autodrop.step()
        records += [autodrop.last_record] if autodrop.last_record else []
    for record in records:  # each record gives the window it measured and that window's floor
        assert record["window"] == sizes[record["step"]]
        assert record["noise_floor"] == pytest.approx(heavy_ball_noise_floor(record["window"], 0.9))
    steps = [step for step, _, _ in autodrop.decisions]
    saturated = {step: at_floor for step, _, at_floor in autodrop.decisions}
    assert sum(saturated.values()) >= 0.8 * len(steps) and len(steps) >= 30
    assert autodrop.drops == [step for step in steps[1:] if saturated[step]]  # the first decision starts the decay
    expected_scale = 1.0
    for previous, step in itertools.pairwise(steps):
        stair = (previous / step) ** 0.5 if saturated[step] else 1.0
        assert lrs[step] / lrs[step - 1] == pytest.approx(stair, rel=1e-12)
        expected_scale *= stair
        k = sizes[step]  # the window of this decision: the largest power of 2 at most step_at_start / 50
        assert k & (k - 1) == 0 and k <= max(1, previous / 50) < 2 * k
        restarted = k != sizes[previous]  # a new size: two windows before the first angle of the new chain
        assert step - previous == (10 + 2 * restarted) * k
    assert autodrop.scale == pytest.approx(expected_scale, rel=1e-12) and expected_scale < 0.2
    assert autodrop.window_size == 64 and autodrop.noise_floor == pytest.approx(heavy_ball_noise_floor(64, 0.9))


def test_training_is_done_once_the_rate_is_low_and_the_angle_still_saturated(tmp_path, caplog):
    problem = AdamProblem(num_warmup_steps=0, start=0.0)
    history = tmp_path / "history.jsonl"
    config = AutoDropConfig.anytime(done_scale=0.5)
    autodrop = AutoDrop([problem.x], config, problem.scheduler, history_file=history)
    assert not autodrop.done and autodrop.log_dict()["autodrop/done"] == 0.0
    with caplog.at_level("INFO", logger="autodrop_hf"):
        for _ in range(6_400):
            problem.train_step()
            autodrop.step()
    first_low = next(step for step, _, saturated in autodrop.decisions if saturated and scale_at(autodrop, step) <= 0.5)
    assert autodrop.done and autodrop.done_step == first_low and autodrop.log_dict()["autodrop/done"] == 1.0
    assert autodrop.drops[-1] > first_low  # done is a signal: the rule goes on if training does
    said = [r.getMessage() for r in caplog.records if "training is done" in r.getMessage()]
    assert len(said) == 1 and f"at step {first_low}:" in said[0]
    records = [json.loads(line) for line in history.read_text().splitlines()]
    assert next(r["step"] for r in records if r["done"]) == first_low
    assert not any(r["done"] for r in records if r["step"] < first_low)
    resumed = AutoDrop([problem.x], config, problem.scheduler)
    resumed.load_state_dict(autodrop.state_dict())
    assert resumed.done_step == first_low


def scale_at(autodrop, step):
    """The scale in force at ``step`` (before a drop there), from the drops' stairs."""
    scale, previous = 1.0, None
    for decision, _, saturated in autodrop.decisions:
        if decision >= step:
            return scale
        if saturated and previous is not None:
            scale *= (previous / decision) ** 0.5
        previous = decision
    return scale


def test_resume_with_growing_windows_is_exact(tmp_path):
    config = AutoDropConfig.anytime(buffer_size=4)
    straight = AdamProblem(seed=3, num_warmup_steps=12)
    reference = AutoDrop([straight.x], config, straight.scheduler)
    lrs_straight = _learning_rates(straight, reference, 2_500)
    first = AdamProblem(seed=3, num_warmup_steps=12)
    autodrop = AutoDrop([first.x], config, first.scheduler)
    lrs = _learning_rates(first, autodrop, 1_203)
    assert autodrop.window_size == 16 and autodrop.angular_velocity.steps_in_window != 0
    saved = copy.deepcopy(
        {
            "x": first.x.detach(),
            "optimizer": first.optimizer.state_dict(),
            "scheduler": first.scheduler.state_dict(),
            "autodrop": autodrop.state_dict(),
            "rng": torch.get_rng_state(),
        }
    )
    second = AdamProblem(seed=99, num_warmup_steps=12)
    second.x.data.copy_(saved["x"])
    second.optimizer.load_state_dict(saved["optimizer"])
    second.scheduler.load_state_dict(saved["scheduler"])
    resumed = AutoDrop([second.x], config, second.scheduler)
    assert resumed.window_size == 1
    resumed.load_state_dict(saved["autodrop"])
    assert resumed.window_size == 16 and resumed.noise_floor == autodrop.noise_floor
    torch.set_rng_state(saved["rng"])
    lrs += _learning_rates(second, resumed, 1_297)
    assert resumed.decisions == reference.decisions and resumed.drops == reference.drops
    assert len(reference.drops) > 5 and reference.window_size == 32
    assert lrs == lrs_straight and torch.equal(second.x, straight.x)


def test_each_drop_is_said_once_with_the_learning_rate_before_and_after(caplog):
    problem = NoisyQuadratic(lr=0.06)
    autodrop = AutoDrop([problem.x], AutoDropConfig.paper(window_size=4, drop_factor=0.5), problem.scheduler)
    with caplog.at_level("INFO", logger="autodrop_hf"):
        run(problem, autodrop, 1_000)
    said = [r.getMessage() for r in caplog.records if "no progress (statistic" in r.getMessage()]
    assert len(said) == len(autodrop.drops) >= 2
    assert said[0].startswith(f"AutoDrop: step {autodrop.drops[0]}: ") and said[0].endswith("0.06 -> 0.03.")


def test_drop_takes_effect_from_the_next_optimizer_step():
    problem = NoisyQuadratic(lr=0.06, num_warmup_steps=10)
    autodrop = AutoDrop([problem.x], AutoDropConfig.paper(window_size=4, drop_factor=0.5), problem.scheduler)
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
    autodrop = AutoDrop([problem.x], AutoDropConfig.paper(window_size=7), problem.scheduler)
    run(problem, autodrop, 200)
    assert autodrop.angles[0][0] == 50 + 3 * 7
    np.testing.assert_allclose(
        [a for _, a in autodrop.angles],
        window_angles(np.array(problem.trajectory), 7, num_warmup_steps=50),
        atol=1e-3,
    )


def test_min_lr_is_a_floor_per_group_and_drops_stop_counting_there():
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(50)), torch.nn.Parameter(torch.randn(50))
    optimizer = torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01}])
    scheduler = AutoDropLR(optimizer)
    config = AutoDropConfig.paper(window_size=2, buffer_size=3, threshold=5.0, drop_factor=0.5, min_lr=8e-3)
    autodrop = AutoDrop([a, b], config, scheduler)
    for _ in range(600):
        loss = ((a - torch.randn(50)) ** 2).sum() + ((b - torch.randn(50)) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        autodrop.step()
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(8e-3), pytest.approx(8e-3)]
    # group 1: 0.1 -> 0.05 -> 0.025 -> 0.0125 -> 8e-3; group 2: 0.01 -> 8e-3 at the first drop, then at its floor
    assert len(autodrop.drops) == 4 and len(autodrop.decisions) > 10
    assert autodrop.lr_scales == [pytest.approx(0.08), pytest.approx(0.8)]
    with pytest.raises(ValueError, match="min_lr has 3 values, the optimizer has 2 parameter groups"):
        AutoDrop([a, b], config.replace(min_lr=[1e-3, 1e-3, 1e-3]), scheduler)
    per_group = AutoDrop([a, b], config.replace(min_lr=[1e-3, 5e-3]), scheduler)
    assert per_group.floors == [pytest.approx(0.01), pytest.approx(0.5)]


def test_min_lr_above_the_lr_records_no_drop():
    problem = NoisyQuadratic(lr=0.06)
    config = AutoDropConfig.paper(window_size=3, buffer_size=3, threshold=5.0, min_lr=0.1)
    autodrop = AutoDrop([problem.x], config, problem.scheduler)
    run(problem, autodrop, 1_000)
    assert autodrop.drops == [] and len(autodrop.decisions) > 5
    assert set(problem.lrs) == {0.06}


def test_min_lr_needs_a_peak_learning_rate():
    params = [torch.nn.Parameter(torch.zeros(3))]
    config = AutoDropConfig.paper(min_lr=1e-3)
    with pytest.raises(ValueError, match=r"min_lr=0\.001 needs the peak learning rate"):
        AutoDrop(params, config)
    assert AutoDrop(params, config, base_lr=1e-2).floors == [pytest.approx(0.1)]


def test_the_noise_floor_follows_the_momentum_a_scheduler_moves():
    params = [torch.nn.Parameter(torch.zeros(50))]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=400)  # β1: 0.95 -> 0.85
    autodrop = AutoDrop(params, AutoDropConfig(window_size=4), scheduler, num_training_steps=400)
    assert autodrop.noise_floor == pytest.approx(heavy_ball_noise_floor(4, 0.95))
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        params[0].grad = torch.randn(50, generator=generator)
        optimizer.step()
        scheduler.step()
        autodrop.step()
    beta = optimizer.param_groups[0]["betas"][0]
    assert beta < 0.87 and autodrop.noise_floor == pytest.approx(heavy_ball_noise_floor(4, beta))
    assert autodrop.test.noise_floor == autodrop.noise_floor == autodrop.last_record["noise_floor"]


def test_min_lr_is_a_fraction_of_the_peak_learning_rate_cyclic_and_one_cycle_included():
    params = [torch.nn.Parameter(torch.zeros(3))]
    config = AutoDropConfig(min_lr=1e-5)
    constant = AutoDropLR(torch.optim.SGD(params, lr=1e-3))
    assert AutoDrop(params, config, constant).floors == [pytest.approx(0.01)]
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(torch.optim.AdamW(params, lr=1e-3), max_lr=1e-3, total_steps=100)
    assert AutoDrop(params, config, one_cycle).floors == [pytest.approx(0.01)]  # not of max_lr / 25
    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    cyclic = torch.optim.lr_scheduler.CyclicLR(optimizer, base_lr=1e-5, max_lr=1e-3, step_size_up=10)
    assert AutoDrop(params, config, cyclic).floors == [pytest.approx(0.01)]  # of the top of the cycle, not its bottom
    sequential = torch.optim.lr_scheduler.SequentialLR(
        optimizer, [torch.optim.lr_scheduler.LinearLR(optimizer, total_iters=5), cyclic], milestones=[5]
    )
    assert AutoDrop(params, config, sequential).floors == [pytest.approx(0.01)]


def test_base_lr_gives_one_value_per_parameter_group():
    params = [torch.nn.Parameter(torch.zeros(3))]
    scheduler = AutoDropLR(torch.optim.SGD(params, lr=0.1))
    config = AutoDropConfig(min_lr=1e-3)
    for min_lr in (0.0, 1e-3):  # with min_lr=0 no floor is computed, and the first drop would fail
        with pytest.raises(ValueError, match="base_lr has 2 values and the optimizer 1 parameter groups"):
            AutoDrop(params, config.replace(min_lr=min_lr), scheduler, base_lr=[0.1, 0.1])
    assert AutoDrop(params, config, scheduler, base_lr=[0.1]).floors == [pytest.approx(0.01)]


def test_bad_arguments_are_refused_at_construction():
    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer = torch.optim.SGD(params, lr=0.1)
    with pytest.raises(TypeError, match="AutoDropConfig"):
        AutoDrop(params, {"window_size": 3})
    with pytest.raises(ValueError, match="num_warmup_steps must be None or an integer >= 0"):
        AutoDrop(params, momentum=0.9, num_warmup_steps=-1)
    for bad in (float("nan"), float("inf"), "1000", 0, 10.5):
        with pytest.raises(ValueError, match=f"num_training_steps must be None or an integer >= 1, got {bad!r}"):
            AutoDrop(params, momentum=0.9, num_training_steps=bad)
    with pytest.raises(ValueError, match="no trainable parameters"):
        AutoDrop(torch.nn.Linear(2, 2).requires_grad_(False), momentum=0.9)
    with pytest.raises(ValueError, match="num_warmup_steps must be an integer >= 0"):
        AutoDropLR(optimizer, num_warmup_steps=1.5)
    for not_a_scheduler in (optimizer, object()):
        with pytest.raises(TypeError, match="scheduler must be a learning-rate scheduler"):
            AutoDrop(params, scheduler=not_a_scheduler)
    with pytest.raises(ValueError, match="the noise-floor test needs the optimizer's momentum"):
        AutoDrop(params)
    with pytest.raises(ValueError, match="momentum must be a finite number"):
        AutoDrop(params, momentum="0.9")
    with pytest.raises(ValueError, match="meta device"):
        AutoDrop(torch.nn.Linear(2, 2, device="meta"), momentum=0.9)


def test_auto_window_size_uses_planned_steps():
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert AutoDrop(params, momentum=0.9, num_training_steps=20_000).window_size == 20
    unknown = AutoDrop(params, momentum=0.9)
    assert unknown.window_grows and unknown.window_size == 1  # grows once observation starts
    assert AutoDrop(params, AutoDropConfig.paper(), momentum=0.9).window_size == 64
    assert AutoDrop(params, momentum=0.9, num_training_steps=np.int64(2_000)).window_size == 2


def test_without_scheduler_only_scale_and_records():
    problem = NoisyQuadratic()
    autodrop = AutoDrop([problem.x], AutoDropConfig.paper(window_size=4))
    run(problem, autodrop, 1_500)
    assert autodrop.drops and autodrop.scale == pytest.approx(0.95 ** len(autodrop.drops))
    assert set(problem.lrs) == {0.06}  # nothing touched the optimizer
    record = autodrop.last_record  # step 1,500 ends a window
    assert record["lr"] is None and record["lr_scale"] == autodrop.scale


def test_nan_parameters_never_drop():
    problem = NoisyQuadratic()
    autodrop = AutoDrop([problem.x], AutoDropConfig.paper(window_size=2, buffer_size=2), problem.scheduler)
    problem.x.data.fill_(float("nan"))
    with pytest.warns(RuntimeWarning, match="not finite") as record:
        for _ in range(100):
            problem.optimizer.step()
            problem.scheduler.step()
            autodrop.step()
    assert autodrop.drops == [] and autodrop.angles == [] and len(record) == 1


def test_records_and_history_file(tmp_path):
    problem = NoisyQuadratic(num_warmup_steps=4)
    history = tmp_path / "history.jsonl"
    autodrop = AutoDrop(
        [problem.x],
        AutoDropConfig(window_size=2, buffer_size=3),
        problem.scheduler,
        num_training_steps=300,
        history_file=history,
    )
    records = []
    for _ in range(300):
        problem.train_step()
        autodrop.step()
        if autodrop.last_record is not None:
            records.append(autodrop.last_record)
    written = [json.loads(line) for line in history.read_text().splitlines()]
    assert written == records and autodrop.scale == 0.0
    assert [r["step"] for r in records] == list(range(6, autodrop.drops[-1] + 1, 2))  # none once the LR is 0
    assert [r["step"] for r in records if r["dropped"]] == autodrop.drops
    assert [(r["step"], r["angle"]) for r in records if r["angle"] is not None] == autodrop.angles
    decided = [r for r in records if r["statistic"] is not None]
    assert [(r["step"], r["statistic"]) for r in decided] == [(s, z) for s, z, _ in autodrop.decisions]
    assert all(r["noise_floor"] == pytest.approx(90 - 9.59, abs=0.01) for r in records)  # SGD, k = 2: 80.41°
    assert records[-1]["lr"] == problem.optimizer.param_groups[0]["lr"]
    # done: the first saturated decision that finds the scale at most 0.1 (done_scale), or the drop to 0
    before = dict(zip([r["step"] for r in records[1:]], [r["lr_scale"] for r in records], strict=False))
    expected = next(r["step"] for r in decided if r["dropped"] and (before[r["step"]] <= 0.1 or r["lr_scale"] == 0))
    assert [r["step"] for r in records if r["done"]] == [r["step"] for r in records if r["step"] >= expected]
    assert autodrop.done_step == expected
    assert set(autodrop.log_dict()) == {
        "autodrop/angular_velocity",
        "autodrop/noise_floor",
        "autodrop/statistic",
        "autodrop/lr_scale",
        "autodrop/num_drops",
        "autodrop/done",
    }


def test_newly_trainable_parameters_are_watched_from_the_next_window(caplog):
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))
    model[0].requires_grad_(False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = AutoDropLR(optimizer)
    autodrop = AutoDrop(model, AutoDropConfig(window_size=2), scheduler, num_training_steps=400)
    assert autodrop.angular_velocity.num_parameters == 9
    inputs = torch.randn(64, 4)
    for step in range(100):
        if step == 41:
            model[0].requires_grad_(True)  # gradual unfreezing, mid-window
        loss = (model(inputs) - 1).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        with caplog.at_level("INFO", logger="autodrop_hf"):
            autodrop.step()
    assert autodrop.angular_velocity.num_parameters == 9 + 40
    assert "2 tensors became trainable and 0 frozen at step 42" in caplog.text
    assert caplog.text.count("became trainable") == 1
    steps = [s for s, _ in autodrop.angles]
    assert 42 in steps and 44 not in steps and 46 not in steps and 48 in steps  # three new windows, then angles


def test_any_scheduler_is_multiplied():
    total = 3_000
    linear = lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 - t / total)  # noqa: E731
    problem = NoisyQuadratic(scheduler=linear)
    autodrop = AutoDrop([problem.x], AutoDropConfig.paper(window_size=4, drop_factor=0.5), problem.scheduler)
    run(problem, autodrop, total - 1)
    assert autodrop.drops
    for t, lr in enumerate(problem.lrs):
        drops_before = sum(1 for s in autodrop.drops if s <= t)
        assert lr == pytest.approx(0.06 * (1 - t / total) * 0.5**drops_before, rel=1e-12)
    assert problem.scheduler.base_lrs == [0.06 * autodrop.scale]  # recoverable from its state
    assert problem.scheduler.get_last_lr() == [problem.optimizer.param_groups[0]["lr"]]


def _learning_rates(problem, autodrop, steps):
    """Train ``steps`` steps; the learning rate each step ran with."""
    lrs = []
    for _ in range(steps):
        lrs.append(problem.optimizer.param_groups[0]["lr"])
        problem.train_step()
        autodrop.step()
    return lrs


def test_resume_mid_window_is_exact(tmp_path):
    config = AutoDropConfig(window_size=6, buffer_size=4)
    straight = AdamProblem(seed=3, num_warmup_steps=12)
    reference = AutoDrop([straight.x], config, straight.scheduler, num_training_steps=1_200)
    lrs_straight = _learning_rates(straight, reference, 1_200)
    assert len([s for s in reference.drops if s < 500]) >= 1 and len(reference.drops) > 5

    first = AdamProblem(seed=3, num_warmup_steps=12)
    autodrop = AutoDrop([first.x], config, first.scheduler, num_training_steps=1_200)
    lrs = _learning_rates(first, autodrop, 500)
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
    second = AdamProblem(seed=99, num_warmup_steps=12)
    second.x.data.copy_(saved["x"])
    second.optimizer.load_state_dict(saved["optimizer"])
    second.scheduler.load_state_dict(saved["scheduler"])
    resumed = AutoDrop([second.x], config, second.scheduler, num_training_steps=1_200)
    resumed.load_state_dict(saved["autodrop"])
    torch.set_rng_state(saved["rng"])
    lrs += _learning_rates(second, resumed, 700)

    assert resumed.drops == reference.drops
    assert resumed.angles == reference.angles and resumed.decisions == reference.decisions
    assert lrs == lrs_straight
    assert torch.equal(second.x, straight.x)


def test_state_dict_is_plain():
    problem = NoisyQuadratic()
    autodrop = AutoDrop([problem.x], AutoDropConfig(window_size=2, min_lr=[1e-4]), problem.scheduler)
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
    assert problem.scheduler.state_dict()["scales"] == autodrop.lr_scales


def test_a_new_detector_in_a_new_process_recovers_the_scale_from_the_schedulers_saved_state(tmp_path):
    constant = lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)  # noqa: E731
    for make in (None, constant):
        problem = NoisyQuadratic(scheduler=make)
        config = AutoDropConfig.paper(window_size=4, drop_factor=0.5)
        autodrop = AutoDrop([problem.x], config, problem.scheduler)
        run(problem, autodrop, 1_000)
        assert autodrop.drops and autodrop.scale < 0.5
        torch.save(
            {"optimizer": problem.optimizer.state_dict(), "scheduler": problem.scheduler.state_dict()},
            tmp_path / "saved.pt",
        )
        saved = torch.load(tmp_path / "saved.pt", weights_only=True)
        fresh = NoisyQuadratic(seed=5, scheduler=make)  # another optimizer and scheduler, as after a restart
        assert fresh.optimizer.param_groups[0]["lr"] == 0.06
        fresh.optimizer.load_state_dict(saved["optimizer"])
        fresh.scheduler.load_state_dict(saved["scheduler"])
        recovered = AutoDrop([fresh.x], config, fresh.scheduler)
        assert recovered.scale == pytest.approx(autodrop.scale, rel=1e-12)
        assert fresh.optimizer.param_groups[0]["lr"] == pytest.approx(0.06 * autodrop.scale)


def _trained(config=None, steps=300, seed=0):
    problem = AdamProblem(seed=seed, num_warmup_steps=10, start=0.0)
    autodrop = AutoDrop(
        [problem.x], config or AutoDropConfig(window_size=2, buffer_size=4), problem.scheduler, num_training_steps=1_000
    )
    for _ in range(steps):
        problem.train_step()
        autodrop.step()
    return problem, autodrop


def test_resuming_with_changed_settings():
    trained, before = _trained(AutoDropConfig(window_size=2, buffer_size=4, min_lr=1e-4))
    state = before.state_dict()
    assert before.drops and before.scale < 1

    # the current min_lr, drop_factor, drift_z win: the detector carries over
    problem = AdamProblem(seed=1, num_warmup_steps=10, start=0.0)
    problem.scheduler.load_state_dict(trained.scheduler.state_dict())
    changed = AutoDropConfig(window_size=2, buffer_size=4, min_lr=4e-3, drift_z=1.0, drop_factor=0.5)
    resumed = AutoDrop([problem.x], changed, problem.scheduler, num_training_steps=1_000)
    resumed.load_state_dict(state)
    assert resumed.floors == [pytest.approx(4e-3 / 0.03)] and resumed.config.drift_z == 1.0
    assert resumed.angles == before.angles and resumed.test.buffer == before.test.buffer
    assert problem.optimizer.param_groups[0]["lr"] == pytest.approx(0.03 * max(before.scale, 4e-3 / 0.03))

    # a buffer size or window size that cannot carry over: one warning, a fresh detector, the scale kept
    for other in (AutoDropConfig(window_size=2, buffer_size=3), AutoDropConfig(window_size=3, buffer_size=4)):
        problem = AdamProblem(seed=1, num_warmup_steps=10, start=0.0)
        fresh = AutoDrop([problem.x], other, problem.scheduler, num_training_steps=1_000)
        with pytest.warns(UserWarning, match="from a run with other settings") as record:
            fresh.load_state_dict(state)
        assert len(record) == 1
        assert fresh.angles == [] and fresh.test.buffer == [] and fresh.scale == before.scale
        assert fresh.num_steps == before.num_steps


def test_a_state_from_another_model_with_the_same_size_gives_a_fresh_detector():
    _, before = _trained()
    model = torch.nn.Linear(199, 1)  # 199 + 1 = 200 parameters, as the saved vector
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    other = AutoDrop(
        model, AutoDropConfig(window_size=2, buffer_size=4), AutoDropLR(optimizer), num_training_steps=1_000
    )
    with pytest.warns(UserWarning, match="the watched parameters"):
        other.load_state_dict(before.state_dict())
    assert other.angles == [] and other.scale == before.scale


def test_a_state_of_other_buffer_sizes_for_the_same_shapes_gives_a_fresh_detector():
    _, before = _trained()
    state = before.state_dict()
    meter = state["angular_velocity"]
    for name in ("reference", "window_sum", "previous"):  # as another version's memory-light sample would be
        meter[name] = [t[:-1].clone() for t in meter[name]]
    _, target = _trained(seed=4, steps=0)  # a new process's detector
    with pytest.warns(UserWarning, match="the watched elements"):
        target.load_state_dict(state)
    assert target.angles == [] and target.scale == before.scale and target.num_steps == before.num_steps


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("scale", float("nan"), "'scale' is invalid"),
        ("scale", -3.0, "'scale' is invalid .* a number in \\[0, 1\\]"),
        ("num_steps", -1, "'num_steps' is invalid"),
        ("angles", [[1, "x"]], "'angles' is invalid"),
        ("decisions", None, "'decisions' is invalid"),
        ("test", {"bufer": []}, "'test' is invalid .* 'buffer', a list of degrees"),
        ("test", {"buffer": [1.0, float("nan")]}, "'test' is invalid"),
        ("angular_velocity", {"steps_in_window": 0}, "'angular_velocity' is invalid .*window_size, steps_in_window"),
        ("angular_velocity", "nan reference", "'angular_velocity' is invalid"),
        ("angular_velocity", "steps past the window", "'angular_velocity' is invalid"),
        ("angular_velocity", "no tensors", "'angular_velocity' is invalid"),
        ("parameters", [[3, "x"]], "'parameters' is invalid"),
    ],
)
def test_a_state_with_invalid_values_is_refused_and_changes_nothing(field, value, message):
    _, before = _trained()
    state = copy.deepcopy(before.state_dict())
    meter = state["angular_velocity"]
    if value == "nan reference":  # a hand-made state: the detector would never give an angle again
        value = {**meter, "reference": [torch.full_like(t, float("nan")) for t in meter["reference"]]}
    elif value == "steps past the window":
        value = {**meter, "steps_in_window": meter["window_size"]}
    elif value == "no tensors":
        value = {**meter, "previous": [[0.0] * t.numel() for t in meter["previous"]]}
    _problem, target = _trained(seed=4)
    snapshot = (
        target.scale,
        list(target.angles),
        target.num_steps,
        float(target.angular_velocity.buffers[0].reference.sum()),
    )
    state[field] = value
    with pytest.raises(ValueError, match=message):
        target.load_state_dict(state)
    with pytest.raises(ValueError, match="an AutoDrop state is a dict"):
        target.load_state_dict([state])
    assert (
        target.scale,
        target.angles,
        target.num_steps,
        float(target.angular_velocity.buffers[0].reference.sum()),
    ) == snapshot


def test_the_memory_light_mode_says_when_the_model_is_too_small_for_its_fraction(recwarn):
    # 10,000 elements of one: median error ~27°/sqrt(10,000); 16,384 need a fraction of 0.016
    too_small = [torch.nn.Parameter(torch.zeros(1_000_000))]
    with pytest.warns(UserWarning, match=r"watches about 10,000 elements .*about 0\.27 degrees.*>= 0\.016\."):
        AutoDrop(too_small, AutoDropConfig(sample_fraction=0.01), momentum=0.9)
    with pytest.warns(UserWarning, match=r"too few .* Use sample_fraction=1 \(exact\)\."):
        AutoDrop([torch.nn.Parameter(torch.zeros(20_000))], AutoDropConfig(sample_fraction=0.5), momentum=0.9)
    recwarn.clear()
    AutoDrop([torch.nn.Parameter(torch.zeros(2_000_000))], AutoDropConfig(sample_fraction=0.01), momentum=0.9)
    AutoDrop(too_small, AutoDropConfig(sample_fraction=0.02), momentum=0.9)
    assert not recwarn.list


@pytest.mark.parametrize("make", ["LambdaLR", "SequentialLR", "StepLR"])
def test_a_changed_min_lr_applies_on_resume_whatever_the_scheduler(make):
    """The floor is the current configuration's: a resumed run with a lower min_lr goes below the old floor."""
    schedulers = {
        "LambdaLR": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1.0),
        "SequentialLR": lambda o: torch.optim.lr_scheduler.SequentialLR(
            o,
            [
                torch.optim.lr_scheduler.LinearLR(o, 0.5, 1.0, total_iters=4),
                torch.optim.lr_scheduler.ConstantLR(o, 1.0, total_iters=1),
            ],
            milestones=[4],
        ),
        "StepLR": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1000, gamma=0.5),
    }
    config = AutoDropConfig.paper(window_size=1, buffer_size=2, threshold=1e9, drop_factor=0.5)  # drops every 3 windows

    def build(min_lr, seed=0):
        problem = NoisyQuadratic(seed=seed, lr=0.1, scheduler=schedulers[make])
        return problem, AutoDrop([problem.x], config.replace(min_lr=min_lr), problem.scheduler)

    first, autodrop = build(0.05)
    run(first, autodrop, 40)
    assert autodrop.scale < 0.5 and first.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)  # at the floor
    states = copy.deepcopy(
        {
            "optimizer": first.optimizer.state_dict(),
            "scheduler": first.scheduler.state_dict(),
            "autodrop": autodrop.state_dict(),
        }
    )
    second, resumed = build(0.01, seed=1)
    second.optimizer.load_state_dict(states["optimizer"])  # a resume restores all three, the detector last
    second.scheduler.load_state_dict(states["scheduler"])
    resumed.load_state_dict(states["autodrop"])
    assert second.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * max(autodrop.scale, 0.1), rel=1e-12)
    run(second, resumed, 100)
    assert second.optimizer.param_groups[0]["lr"] == pytest.approx(0.01, rel=1e-12)  # the new floor


def test_the_default_mode_is_exact_for_a_small_model_and_memory_light_for_a_large_one_and_says_so(caplog):
    with caplog.at_level("INFO", logger="autodrop_hf"):
        small = AutoDrop([torch.nn.Parameter(torch.zeros(1_000))], momentum=0.9)
        large = AutoDrop([torch.nn.Parameter(torch.zeros(12_000_000))], momentum=0.9)
    assert small.angular_velocity.num_parameters == 1_000 and small.angular_velocity.sample_stride == 1
    watched = large.angular_velocity.num_parameters
    assert large.angular_velocity.sample_stride == 46 and 250_000 < watched < 270_000  # 3 MB of buffers, not 144
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("AutoDrop: ")]
    assert said[0] == "AutoDrop: watching all 1,000 trainable elements (exact mode, 12 bytes each)."
    assert said[1].startswith("AutoDrop: the memory-light mode watches every 46-th block of 8 of the 12,000,000")
    assert "sample_fraction=1: all" in said[1]


@pytest.mark.parametrize("kind", ["CyclicLR", "OneCycleLR"])
def test_a_resumed_detector_takes_min_lr_of_the_peak_before_the_drops(kind):
    """Drops scale CyclicLR's max_lrs and OneCycleLR's max_lr; a new detector's floor is still of the first peak."""

    def build():
        x = torch.nn.Parameter(torch.zeros(8))
        optimizer = torch.optim.SGD([x], lr=0.1, momentum=0.9)
        if kind == "CyclicLR":
            scheduler = torch.optim.lr_scheduler.CyclicLR(optimizer, base_lr=0.01, max_lr=0.1, step_size_up=10)
        else:
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=1_000)
        config = AutoDropConfig.paper(window_size=1, buffer_size=2, threshold=1e9, drop_factor=0.5, min_lr=0.02)
        return x, optimizer, scheduler, AutoDrop([x], config, scheduler)

    x, optimizer, scheduler, autodrop = build()
    assert autodrop.floors == [pytest.approx(0.2)]
    for _ in range(9):  # three decisions: two drops of 0.5
        x.grad = torch.randn(8)
        optimizer.step()
        scheduler.step()
        autodrop.step()
    assert autodrop.lr_scales == [pytest.approx(0.25)]
    states = copy.deepcopy((optimizer.state_dict(), scheduler.state_dict(), autodrop.state_dict()))
    _, optimizer2, scheduler2, _ = build()
    optimizer2.load_state_dict(states[0])
    scheduler2.load_state_dict(states[1])
    config = autodrop.config
    resumed = AutoDrop([optimizer2.param_groups[0]["params"][0]], config, scheduler2)
    assert resumed.floors == [pytest.approx(0.2)] and resumed.scale == pytest.approx(0.25)  # not 0.8, not 1.0
    lr_before = optimizer2.param_groups[0]["lr"]
    resumed.load_state_dict(states[2])
    assert optimizer2.param_groups[0]["lr"] == pytest.approx(lr_before, rel=1e-12)  # nothing raised back up


def test_a_state_of_the_previous_default_sample_fraction_resumes_its_detector():
    """States saved with sample_fraction=1.0 (the default before "auto") resume exactly on a small model."""
    _problem, before = _trained()
    state = copy.deepcopy(before.state_dict())
    state["config"]["sample_fraction"] = 1.0
    _, target = _trained(seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "state from a run with other settings"
        target.load_state_dict(state)
    assert target.angles == before.angles and target.num_steps == before.num_steps
