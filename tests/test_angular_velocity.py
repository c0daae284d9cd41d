import warnings

import numpy as np
import pytest
import torch
from reference import window_angles

from autodrop_hf import AutoDrop, AutoDropConfig, AutoDropLR
from autodrop_hf.core.angular_velocity import (
    SAMPLE_BLOCK,
    SAMPLE_SEED,
    TARGET_SAMPLED_BLOCKS,
    WindowedAngularVelocity,
    angle_degrees,
    sample_block_size,
    sampled_blocks,
    trainable_parameters,
)


def measure(trajectory, window_size, dtype=torch.float32):
    """Feed a trajectory through the meter; return its angles and the values it really saw."""
    param = torch.nn.Parameter(torch.as_tensor(trajectory[0], dtype=dtype))
    meter = WindowedAngularVelocity([param], window_size)
    angles, seen = [], []
    for x in trajectory:
        with torch.no_grad():
            param.copy_(torch.as_tensor(x))
        seen.append(param.detach().double().numpy().copy())
        angle = meter.observe()
        if angle is not None:
            angles.append(angle)
    return np.array(angles), np.array(seen)


def slow_drift_trajectory(steps=2_000, size=10_000, seed=0):
    """Parameters of magnitude 0.05, per-step updates of 1e-5 whose direction turns slowly."""
    rng = np.random.default_rng(seed)
    x = 0.05 * rng.choice([-1.0, 1.0], size) * (1 + 0.1 * rng.random(size))
    direction_a, direction_b = rng.normal(size=(2, size))
    out = []
    for t in range(steps):
        turn = np.cos(t / 300) * direction_a + np.sin(t / 300) * direction_b + 0.7 * rng.normal(size=size)
        x = x + 1e-5 * turn / np.abs(turn).mean()
        out.append(x)
    return np.array(out)


def test_small_updates_on_large_parameters_match_float64():
    """docs/algorithm.md, numerics: |x| ≈ 0.05, updates 1e-5, float32 parameters: error < 0.01°."""
    trajectory = slow_drift_trajectory()
    angles, seen = measure(trajectory, window_size=20)
    expected = window_angles(seen, window_size=20)
    assert len(angles) == len(expected) == 2_000 // 20 - 2
    error = np.abs(angles - expected).max()
    assert error < 0.01, error


def test_noisy_quadratic_model_matches_float64():
    """The paper's NQM: x ∈ R^200, A = diag(1..200)/10, c ~ N(0, I), GD at lr 0.03."""
    torch.manual_seed(0)
    curvature = torch.arange(1, 201, dtype=torch.float32) / 10
    x = torch.nn.Parameter(torch.randn(200))
    optimizer = torch.optim.SGD([x], lr=0.03)
    meter = WindowedAngularVelocity([x], window_size=10)
    angles, trajectory = [], []
    for _ in range(3_000):
        c = torch.randn(200)
        loss = 0.5 * ((x - c) ** 2 * curvature).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        trajectory.append(x.detach().double().numpy().copy())
        angle = meter.observe()
        if angle is not None:
            angles.append(angle)
    expected = window_angles(np.array(trajectory), window_size=10)
    assert len(angles) == 298
    assert np.abs(np.array(angles) - expected).max() < 1e-3
    assert 90 < np.mean(angles[-100:]) < 120  # P2: saturation between 90° and 120°


def test_bfloat16_parameters_accumulate_in_float32():
    trajectory = slow_drift_trajectory(steps=600, size=2_000, seed=1) * 20  # |x| ≈ 1: bf16 can move
    angles, seen = measure(trajectory, window_size=30, dtype=torch.bfloat16)
    expected = window_angles(seen, window_size=30)
    assert np.abs(angles - expected).max() < 0.01


def test_first_angle_needs_three_windows():
    trajectory = slow_drift_trajectory(steps=12, size=50)
    param = torch.nn.Parameter(torch.tensor(trajectory[0], dtype=torch.float32))
    meter = WindowedAngularVelocity([param], window_size=4)
    results = []
    for x in trajectory:
        param.data.copy_(torch.as_tensor(x))
        results.append(meter.observe())
    assert [r is not None for r in results] == [False] * 11 + [True]


def test_several_tensors_equal_one_concatenated_vector():
    trajectory = slow_drift_trajectory(steps=200, size=300, seed=2)
    parts = [torch.nn.Parameter(torch.zeros(100)), torch.nn.Parameter(torch.zeros(10, 20))]
    meter = WindowedAngularVelocity(parts, window_size=10)
    angles = []
    for x in trajectory:
        parts[0].data.copy_(torch.as_tensor(x[:100]))
        parts[1].data.copy_(torch.as_tensor(x[100:]).view(10, 20))
        angle = meter.observe()
        if angle is not None:
            angles.append(angle)
    single, _ = measure(trajectory, window_size=10)
    np.testing.assert_allclose(angles, single, atol=1e-9)


def test_zero_displacement_gives_no_angle_and_warns_once():
    param = torch.nn.Parameter(torch.ones(5))
    meter = WindowedAngularVelocity([param], window_size=2)
    with pytest.warns(RuntimeWarning, match="did not move") as record:
        results = [meter.observe() for _ in range(20)]
    assert results == [None] * 20
    assert len(record) == 1


def test_nan_window_is_skipped_and_previous_displacement_kept():
    trajectory = slow_drift_trajectory(steps=80, size=40, seed=3)
    param = torch.nn.Parameter(torch.zeros(40))
    meter = WindowedAngularVelocity([param], window_size=4)
    angles = {}
    with pytest.warns(RuntimeWarning, match="not finite") as record:
        for t, x in enumerate(trajectory):
            param.data.copy_(torch.as_tensor(x))
            if t == 21:  # inside window 5 (steps 20..23)
                param.data[3] = float("nan")
            angle = meter.observe()
            if angle is not None:
                angles[t] = angle
    assert len(record) == 1
    assert all(np.isfinite(list(angles.values())))
    # Windows: means y0..y19 with y5 missing; the angle after it pairs (y6 - y4) with (y4 - y3).
    means = trajectory.reshape(20, 4, 40).mean(axis=1)
    a, b = means[6] - means[4], means[4] - means[3]
    expected = np.degrees(np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    assert 23 not in angles
    assert angles[27] == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("window_size", [1, 3])
def test_a_window_overwrites_what_its_sums_held(window_size):
    # between windows the accumulator holds the last window's sums (nothing zeroes it): the next window's first
    # step must overwrite, not add to, them
    trajectory = slow_drift_trajectory(steps=30, size=40, seed=5)
    params = [torch.nn.Parameter(torch.zeros(40)) for _ in range(2)]
    clean, stale = WindowedAngularVelocity([params[0]], window_size), WindowedAngularVelocity([params[1]], window_size)
    angles = []
    for x in trajectory:
        for p in params:
            p.data.copy_(torch.as_tensor(x))
        if stale.steps_in_window == 0:
            stale.buffers[0].window_sum.fill_(float("nan"))
        angle = clean.observe()
        assert stale.observe() == angle
        angles += [angle] if angle is not None else []
    assert len(angles) == 30 // window_size - 2  # every window from the third gives an angle


def test_nan_forever_never_crashes_and_warns_once():
    param = torch.nn.Parameter(torch.full((8,), float("inf")))
    meter = WindowedAngularVelocity([param], window_size=3)
    with pytest.warns(RuntimeWarning) as record:
        results = [meter.observe() for _ in range(30)]
    assert results == [None] * 30 and len(record) == 1


def test_bad_first_snapshot_is_retaken():
    trajectory = slow_drift_trajectory(steps=40, size=20, seed=4)
    param = torch.nn.Parameter(torch.zeros(20))
    meter = WindowedAngularVelocity([param], window_size=4)
    angle_steps = []
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        for t, x in enumerate(trajectory):
            param.data.copy_(torch.as_tensor(x))
            if t == 0:
                param.data[0] = float("nan")
            if meter.observe() is not None:
                angle_steps.append(t)
    assert angle_steps[0] == 4 + 3 * 4 - 1  # the first window was discarded, then three windows


def test_angle_formula_limits():
    assert angle_degrees(1.0, 1.0, 1.0) == 0.0
    assert angle_degrees(-2.0, 1.0, 4.0) == 180.0
    assert angle_degrees(0.0, 3.0, 5.0) == 90.0
    assert angle_degrees(1.0 + 1e-12, 1.0, 1.0) == 0.0  # clamped, never NaN


def test_only_trainable_floating_parameters_count():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model[0].requires_grad_(False)  # frozen base, as with PEFT
    params = trainable_parameters(model)
    assert [p.shape for p in params] == [torch.Size([2, 3]), torch.Size([2])]
    groups = [{"params": [model[1].weight]}, {"params": [model[1].bias, model[1].weight]}]
    assert len(trainable_parameters(groups)) == 2


def test_no_trainable_parameters_is_an_error():
    model = torch.nn.Linear(3, 3).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        trainable_parameters(model)
    with pytest.raises(TypeError, match="got str"):
        trainable_parameters(["weight"])


def test_state_round_trip_mid_window(tmp_path):
    trajectory = slow_drift_trajectory(steps=100, size=30, seed=5)
    full, _ = measure(trajectory, window_size=6)
    param = torch.nn.Parameter(torch.zeros(30))
    meter = WindowedAngularVelocity([param], window_size=6)
    angles = []
    for x in trajectory[:41]:
        param.data.copy_(torch.as_tensor(x))
        if (angle := meter.observe()) is not None:
            angles.append(angle)
    torch.save(meter.state_dict(), tmp_path / "meter.pt")
    param = torch.nn.Parameter(torch.zeros(30))
    meter = WindowedAngularVelocity([param], window_size=6)
    meter.load_state_dict(torch.load(tmp_path / "meter.pt", weights_only=True))
    for x in trajectory[41:]:
        param.data.copy_(torch.as_tensor(x))
        if (angle := meter.observe()) is not None:
            angles.append(angle)
    assert angles == list(full)


def test_state_from_another_model_or_window_is_refused():
    meter = WindowedAngularVelocity([torch.nn.Parameter(torch.zeros(3))], window_size=2)
    with pytest.raises(ValueError, match="different model"):
        WindowedAngularVelocity([torch.nn.Parameter(torch.zeros(4))], window_size=2).load_state_dict(meter.state_dict())
    with pytest.raises(ValueError, match="same window_size"):
        WindowedAngularVelocity([torch.nn.Parameter(torch.zeros(3))], window_size=3).load_state_dict(meter.state_dict())


def test_window_of_one_step_is_the_per_iteration_angle():
    """k = 1 is Definition 1.1: the angle between consecutive parameter updates."""
    trajectory = slow_drift_trajectory(steps=50, size=30, seed=6)
    angles, seen = measure(trajectory, window_size=1)
    updates = np.diff(seen, axis=0)
    a, b = updates[1:], updates[:-1]
    expected = np.degrees(np.arccos((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))
    assert len(angles) == 48
    np.testing.assert_allclose(angles, expected, atol=1e-3)


def test_fsdp1_flat_parameters_are_refused():
    from torch.distributed.fsdp import FullyShardedDataParallel

    wrapper = FullyShardedDataParallel.__new__(FullyShardedDataParallel)
    torch.nn.Module.__init__(wrapper)  # an FSDP1 module without a process group, enough for isinstance
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), wrapper)
    with pytest.raises(ValueError, match="does not support FSDP1"):
        trainable_parameters(model)


@pytest.mark.parametrize("block", [4, 5, SAMPLE_BLOCK])
def test_sampled_blocks_are_every_strideth_block_as_live_views(block):
    # element ids across the tensors: the sample must be exactly the blocks numbered offset, offset + 3, ...
    big, small = torch.arange(10 * block + 3, dtype=torch.float64), torch.arange(7.0, dtype=torch.float64) + 1e6
    in_memory = torch.arange(24.0, dtype=torch.float64) + 2e6
    transposed = in_memory.view(6, 4).t()  # not contiguous, but dense: cut in the order of its memory
    gapped = (torch.arange(48.0, dtype=torch.float64) + 3e6).view(6, 8)[:, ::2]  # gaps in memory: one block
    pieces = [t[s : s + block] for t in (big, small, in_memory) for s in range(0, t.numel(), block)]
    pieces.append(gapped.reshape(-1))
    expected = torch.cat(pieces[SAMPLE_SEED % 3 :: 3])
    views = sampled_blocks([big, small, transposed, gapped], stride=3, block=block)
    assert torch.equal(torch.cat([v.reshape(-1) for v in views]).sort().values, expected.sort().values)
    on_big = [v for v in views if v.untyped_storage().data_ptr() == big.untyped_storage().data_ptr()]
    assert len(on_big) <= 2 and on_big[0].shape == (4, block)  # a tensor's full blocks: one view (+ its tail)
    views[0].fill_(-1.0)
    assert (big == -1).sum() == views[0].numel()  # live: what the optimizer writes, the meter reads
    assert sampled_blocks([big, small], stride=1) == [big, small]
    again = sampled_blocks([big, small, transposed, gapped], stride=3, block=block)
    assert [(v.data_ptr(), v.shape, v.stride()) for v in again] == [(v.data_ptr(), v.shape, v.stride()) for v in views]


def test_a_channels_last_model_is_sampled_like_a_contiguous_one():
    """Cut in the order of its memory, a channels_last tensor gives the angles of the same elements laid out
    contiguously (it used to be watched whole, or not at all)."""
    generator = torch.Generator().manual_seed(0)
    in_memory = [torch.randn(64, 3, 3, 32, generator=generator, dtype=torch.float64) for _ in range(4)]
    channels_last = [q.clone().permute(0, 3, 1, 2) for q in in_memory]  # shape (64, 32, 3, 3)
    assert all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in channels_last)
    meters = [WindowedAngularVelocity(t, 1, sample_stride=100, sample_block=8) for t in (channels_last, in_memory)]
    assert meters[0].num_parameters == meters[1].num_parameters == pytest.approx(4 * 64 * 32 * 9 / 100, rel=0.02)
    angles = ([], [])
    for _ in range(5):
        for p, q in zip(channels_last, in_memory, strict=True):
            step = torch.randn(q.shape, generator=generator, dtype=torch.float64)
            q.add_(step)
            p.add_(step.permute(0, 3, 1, 2))
        for meter, record in zip(meters, angles, strict=True):
            record.append(meter.observe())
    assert angles[0] == angles[1] and angles[0][-1] is not None


def test_the_block_shrinks_while_the_sample_would_hold_too_few_blocks():
    stride = 100
    enough = TARGET_SAMPLED_BLOCKS * SAMPLE_BLOCK * stride  # just enough elements for blocks of 8
    sizes = [enough, enough - 1, enough // 2, enough // 2 - 1, enough // 8, enough // 8 - 1, 1_000]
    assert [sample_block_size(n, stride) for n in sizes] == [8, 4, 4, 2, 1, 1, 1]
    assert sample_block_size(enough, 1) == 8
    # plain tensors count as held by every process: each of two processes chooses as one process would
    meter = WindowedAngularVelocity([torch.zeros(enough // 2 + 5)], 1, world_size=2, sample_stride=stride)
    assert meter.sample_block == 4  # 1,638,402 blocks of 4 (the last partial): every 100th from block 0
    assert meter.num_blocks_in_all_processes == meter.num_blocks == TARGET_SAMPLED_BLOCKS + 1 and SAMPLE_SEED == 0
    assert WindowedAngularVelocity([torch.zeros(99)], 1, sample_stride=3, sample_block=5).sample_block == 5
    other = meter.with_block(2)  # the same parameters and settings, blocks of another size
    assert (other.sample_block, other.sample_stride, other.world_size, other.params) == (2, stride, 2, meter.params)
    assert other.num_parameters == pytest.approx(meter.num_parameters, rel=1e-3)


def test_the_sampled_angle_estimates_the_exact_one():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(n) * 0.05) for n in (2_000_000, 300_000, 4096, 384)]
    exact = WindowedAngularVelocity(params, 2)
    sampled = WindowedAngularVelocity(params, 2, sample_stride=50)
    assert sampled.num_parameters == pytest.approx(exact.num_parameters / 50, rel=0.05)
    assert sum(b.window_sum.numel() * 3 * 4 for b in sampled.buffers) / exact.num_parameters < 0.25  # bytes/param
    drift = [torch.randn_like(p) for p in params]
    errors = []
    for _ in range(200):
        with torch.no_grad():
            for p, d in zip(params, drift, strict=True):
                p.add_(1e-4 * (0.4 * d + torch.randn_like(p)))
        a, b = exact.observe(), sampled.observe()
        assert (a is None) == (b is None)
        if a is not None:
            errors.append(abs(a - b))
    assert len(errors) == 98 and np.median(errors) < 0.2 and max(errors) < 1.0


@pytest.mark.parametrize("sample_fraction", [1.0, 0.25])
@pytest.mark.filterwarnings("ignore:sample_fraction=0.25 watches about 1,040 elements")  # a tiny model: said so
def test_parameters_given_new_memory_after_construction_are_followed(sample_fraction, caplog):
    """model.double() (or .to(device), or a wrapper) after AutoDrop was built: the new memory is watched."""
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64)
    config = AutoDropConfig(window_size=1, buffer_size=3, sample_fraction=sample_fraction)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    autodrop = AutoDrop(model, config, AutoDropLR(optimizer))
    before = [p.data_ptr() for p in model.parameters()]
    model.double()
    assert [p.data_ptr() for p in model.parameters()] != before
    with caplog.at_level("INFO", logger="autodrop_hf"):
        for _ in range(40):
            loss = model(torch.randn(8, 64, dtype=torch.float64)).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            autodrop.scheduler.step()
            autodrop.step()
    assert len(autodrop.angles) == 40 - 2 and len(autodrop.decisions) >= 10  # every window from the first step
    assert sum("were given new memory" in r.getMessage() for r in caplog.records) == 1
    assert all(b.reference.dtype == torch.float64 for b in autodrop.angular_velocity.buffers)


def _ratio_after(points, window_size=2):
    """The variance ratio of a meter with ``track_span`` fed ``points`` (each held for a window)."""
    param = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    meter = WindowedAngularVelocity([param], window_size=window_size, track_span=True)
    for point in points:
        for _ in range(window_size):
            param.data.copy_(torch.as_tensor(point, dtype=torch.float64))
            meter.observe()
    return meter


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        # a straight line: 4 equal displacements give angles (the first displacement only opens the chain)
        ([[i, 2 * i, 0] for i in range(6)], 4.0),
        # back and forth: displacements +d, -d, +d, -d: they cancel
        ([[i % 2, 0, 0] for i in range(6)], 0.0),
        # back and forth, odd count: |d|² / (5 |d|²)
        ([[i % 2, 0, 0] for i in range(7)], 1 / 5),
        # a right-angle staircase: (1,0,0), (0,1,0), ... sums to (2,2,0) over 4 steps of length 1
        ([[(i + 1) // 2, i // 2, 0] for i in range(6)], 2.0),
    ],
    ids=["line", "back-and-forth-even", "back-and-forth-odd", "staircase"],
)
def test_the_variance_ratio_of_closed_form_paths(points, expected):
    meter = _ratio_after(points)
    assert meter.take_variance_ratio() == pytest.approx(expected, abs=1e-12)
    assert meter.take_variance_ratio() is None  # a new span: nothing in it yet


def test_the_span_resumes_from_a_state_and_starts_afresh_from_one_without_it():
    line = [[i, 2 * i, 0] for i in range(6)]
    meter = _ratio_after(line[:4])  # two displacements with angles so far
    state = meter.state_dict()
    param = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    for saved, expected in ((state, 4.0), ({k: v for k, v in state.items() if k not in ("span", "span_sum_sq")}, 2.0)):
        resumed = WindowedAngularVelocity([param], window_size=2, track_span=True)
        resumed.load_state_dict(saved)
        for point in line[4:]:
            for _ in range(2):
                param.data.copy_(torch.as_tensor(point, dtype=torch.float64))
                resumed.observe()
        assert resumed.take_variance_ratio() == pytest.approx(expected, abs=1e-12)
    with pytest.raises(RuntimeError, match="track_span=True"):
        WindowedAngularVelocity([param], window_size=2).take_variance_ratio()
