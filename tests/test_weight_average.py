import io
from fractions import Fraction

import pytest
import torch

from autodrop_hf import AutoDrop, AutoDropConfig
from autodrop_hf.core.weight_average import AVERAGE_GAMMA, retained_weight

WARMUP = 10


@pytest.mark.parametrize(("start", "end"), [(0, 1), (0, 40), (1, 2), (11, 12), (16, 48), (1000, 1064)])
def test_the_retained_weight_is_the_product_of_the_per_step_factors(start, end):
    product = Fraction(1)
    for t in range(start + 1, end + 1):
        product *= 1 - Fraction(AVERAGE_GAMMA + 1, t + AVERAGE_GAMMA)
    assert retained_weight(start, end) == pytest.approx(float(product), rel=1e-13, abs=0)


def start(config, dtype=torch.float64):
    """A parameter far from the optimum of a noisy quadratic, its Adam, and the AutoDrop watching it."""
    torch.manual_seed(0)
    x = torch.nn.Parameter(torch.randn(50, dtype=dtype) * 3)
    return x, torch.optim.Adam([x], lr=0.05), AutoDrop([x], config, num_warmup_steps=WARMUP, momentum=0.9)


def descend(x, optimizer, autodrop, steps):
    """``steps`` optimizer steps on fresh noise; the parameter after each (float64)."""
    trajectory = []
    for _ in range(steps):
        loss = 0.5 * ((x - torch.randn_like(x)) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        autodrop.step()
        trajectory.append(x.detach().double().clone())
    return trajectory


def noisy_descent(config, steps, dtype=torch.float64):
    x, optimizer, autodrop = start(config, dtype)
    return x, autodrop, descend(x, optimizer, autodrop, steps)


def averaged_value(autodrop, x):
    with autodrop.averaged():
        return x.detach().double().clone()


def test_windows_of_one_step_give_the_per_step_polynomial_average():
    x, autodrop, trajectory = noisy_descent(AutoDropConfig(window_size=1, drop_factor=0.5, average=True), 300)
    average = trajectory[WARMUP]  # the first step observed, step WARMUP + 1
    for t in range(WARMUP + 2, 301):
        average = average + (AVERAGE_GAMMA + 1) / (t + AVERAGE_GAMMA) * (trajectory[t - 1] - average)
    torch.testing.assert_close(averaged_value(autodrop, x), average, rtol=1e-12, atol=1e-12)


def test_windows_of_several_steps_weigh_each_mean_as_all_of_its_steps():
    k = 8
    x, autodrop, trajectory = noisy_descent(AutoDropConfig(window_size=k, drop_factor=0.5, average=True), 410)
    ends = range(WARMUP + k, 411, k)  # the observed windows' last steps
    means = [torch.stack(trajectory[end - k : end]).mean(0) for end in ends]
    weights = [1.0] + [1 - retained_weight(end - k, end) for end in ends[1:]]
    average = torch.zeros(50, dtype=torch.float64)
    for mean, weight in zip(means, weights, strict=True):
        average = average + weight * (mean - average)
    torch.testing.assert_close(averaged_value(autodrop, x), average, rtol=1e-12, atol=1e-12)
    assert autodrop.weight_average.step == ends[-1]
    assert not torch.equal(averaged_value(autodrop, x), x.detach().double())


def test_swapping_the_average_in_and_out_gives_the_weights_back_bit_for_bit():
    x, autodrop, _ = noisy_descent(AutoDropConfig(window_size=4, drop_factor=0.5, average=True), 200, torch.bfloat16)
    live = x.detach().clone()
    with autodrop.averaged():
        inside = x.detach().clone()
    assert torch.equal(x, live)
    assert torch.equal(inside, autodrop.weight_average.average[0].to(torch.bfloat16)) and not torch.equal(inside, live)
    autodrop.load_average()
    assert torch.equal(x, inside)


def test_before_the_first_window_mean_the_weights_are_left_as_they_are():
    x, autodrop, _ = noisy_descent(AutoDropConfig(window_size=4, average=True), WARMUP + 3)
    live = x.detach().clone()
    with autodrop.averaged():
        assert torch.equal(x, live)
    autodrop.load_average()
    assert torch.equal(x, live)


def test_the_average_resumes_bit_for_bit_from_a_saved_state():
    config = AutoDropConfig.anytime_average()
    x, straight, _ = noisy_descent(config, 700)
    y, optimizer, first = start(config)
    descend(y, optimizer, first, 437)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = AutoDrop([y], config, num_warmup_steps=WARMUP, momentum=0.9)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    descend(y, optimizer, resumed, 263)
    assert torch.equal(y, x) and resumed.decisions == straight.decisions
    assert torch.equal(averaged_value(resumed, y), averaged_value(straight, x))


@pytest.mark.parametrize(
    ("damaged", "message"),
    [
        ({"step": 96, "average": [torch.full((50,), float("nan"), dtype=torch.float64)]}, "average is not finite"),
        ({"step": 96, "average": [torch.zeros(49, dtype=torch.float64)]}, "does not fit the watched parameters"),
        ({"average": []}, "field 'average' is invalid"),
        ({"step": -1, "average": []}, "field 'average' is invalid"),
        ([0.0], "field 'average' is invalid"),
        ({"step": 96, "average": [0.0]}, "holds something not a tensor"),
    ],
    ids=["nan", "shape", "no-step", "negative-step", "not-a-dict", "not-tensors"],
)
def test_a_state_with_a_damaged_average_is_refused_and_changes_nothing(damaged, message):
    config = AutoDropConfig(window_size=4, drop_factor=0.5, average=True)
    x, autodrop, _ = noisy_descent(config, 100)
    state = autodrop.state_dict()
    state["average"] = damaged
    before = averaged_value(autodrop, x)
    with pytest.raises(ValueError, match=message):
        autodrop.load_state_dict(state)
    torch.testing.assert_close(averaged_value(autodrop, x), before, rtol=0, atol=0)


def test_a_state_without_the_average_or_from_other_settings_starts_it_afresh_and_says_so():
    config = AutoDropConfig(window_size=4, drop_factor=0.5)
    _, plain, _ = noisy_descent(config, 100)
    _, averaged, _ = noisy_descent(config.replace(average=True), 100)
    with pytest.warns(UserWarning, match="saved without a weight average .* starts afresh at step 100"):
        averaged.load_state_dict(plain.state_dict())
    assert averaged.weight_average.average == [] and averaged.num_steps == 100
    _, other, _ = noisy_descent(config.replace(window_size=8, average=True), 100)
    assert other.weight_average.average
    with pytest.warns(UserWarning, match="fresh detector and a fresh weight average"):
        other.load_state_dict(noisy_descent(config.replace(average=True), 60)[1].state_dict())
    assert other.weight_average.average == [] and other.num_steps == 60  # nothing of its own steps 1-100 is kept


def test_a_run_with_the_average_trains_exactly_as_one_without():
    config = AutoDropConfig(window_size=4, drop_factor=0.5)
    x, plain, _ = noisy_descent(config, 300)
    y, averaged, _ = noisy_descent(config.replace(average=True), 300)
    assert torch.equal(x, y) and plain.decisions == averaged.decisions and plain.drops


def test_the_average_is_refused_where_it_cannot_be_kept():
    x = torch.nn.Parameter(torch.zeros(10_000))
    with pytest.raises(ValueError, match="sample_fraction=1"):
        AutoDrop([x], AutoDropConfig(sample_fraction=0.1, average=True), momentum=0.9)
    with pytest.raises(RuntimeError, match="average=True"):
        AutoDrop([x], AutoDropConfig(), momentum=0.9).averaged()
    with pytest.raises(ValueError, match="average must be True or False"):
        AutoDropConfig(average="yes")
    with pytest.raises(ValueError, match="0 < power_exponent <= 2"):
        AutoDropConfig(power_exponent=0)
    with pytest.raises(ValueError, match="read only by drop_factor='power'"):
        AutoDropConfig(drop_factor=0.5, power_exponent=0.25)


def test_the_averaged_preset_is_the_anytime_windows_with_the_average_a_drift_hold_and_halving():
    preset = AutoDropConfig.preset("anytime_average")
    assert preset == AutoDropConfig.anytime(average=True, drop_factor=0.5, drift_ratio=1.0)
    assert (preset.window_size, preset.power_exponent, preset.done_scale) == ("growing", 0.5, 0.1)


def test_the_averaged_preset_takes_overrides_of_its_own_values():
    config = AutoDropConfig.anytime_average(drop_factor="power", drift_ratio=2.0)
    assert (config.drop_factor, config.drift_ratio, config.average) == ("power", 2.0, True)
    assert AutoDropConfig.anytime_average(drift_ratio=None).drift_ratio is None


def test_tensors_frozen_and_unfrozen_start_the_average_afresh_even_of_the_same_shape():
    torch.manual_seed(0)
    first, second = torch.nn.Parameter(torch.full((4,), 100.0)), torch.nn.Parameter(torch.full((4,), -1.0))
    second.requires_grad_(False)
    optimizer = torch.optim.SGD([first, second], lr=0.1)
    autodrop = AutoDrop([first, second], AutoDropConfig(window_size=4, drop_factor=0.5, average=True), momentum=0.0)
    for step in range(80):
        if step == 40:  # the next phase trains the other tensor, of the same shape
            first.requires_grad_(False)
            second.requires_grad_(True)
        trained = second if step >= 40 else first
        loss = 0.5 * ((trained - trained.detach().round() - 0.01 * torch.randn(4)) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        autodrop.step()
    assert autodrop.weight_average.params == [second]
    with autodrop.averaged():
        assert (second - -1.0).abs().max() < 0.1  # its own average, nothing of the first tensor's 100
    assert float(first[0]) == pytest.approx(100.0, abs=0.1)


def test_with_the_average_automatic_sampling_watches_every_element():
    assert AutoDropConfig(average=True).sample_stride(100_000_000) == 1
    assert AutoDropConfig().sample_stride(100_000_000) > 1


def test_parameters_given_new_memory_take_their_average_with_them():
    torch.manual_seed(0)
    model = torch.nn.Linear(20, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    autodrop = AutoDrop(model, AutoDropConfig(window_size=4, drop_factor=0.5, average=True), momentum=0.9)
    for step in range(200):
        if step == 100:
            model.double()  # new memory, another dtype: the windows start afresh, the average follows
            before = autodrop.weight_average.average[0].clone()
        inputs = torch.randn(8, 20, dtype=model.weight.dtype)
        loss = (model(inputs).squeeze(1) - inputs.sum(1)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        autodrop.step()
    average = autodrop.weight_average
    assert average.average[0].dtype == torch.float64 and average.params[0] is model.weight
    assert 0 < (average.average[0] - before.double()).abs().max() < 0.5  # moved on from where it was
    live = model.weight.detach().clone()
    with autodrop.averaged():
        assert torch.equal(model.weight, average.average[0])
    assert torch.equal(model.weight, live)
