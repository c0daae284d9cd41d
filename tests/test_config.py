import numpy as np
import pytest
import torch

from autodrop_hf import AutoDropConfig


def test_defaults_are_the_library_rule_and_the_paper_preset_is_the_papers():
    config = AutoDropConfig()
    assert (config.saturation_test, config.window_size, config.drop_factor) == ("noise_floor", "auto", "auto")
    assert (config.buffer_size, config.drift_z, config.min_lr) == (10, 2.0, 0.0)
    paper = AutoDropConfig.paper()
    assert (paper.saturation_test, paper.window_size, paper.drop_factor) == ("smoothed_change", "auto", 0.95)
    assert (paper.buffer_size, paper.threshold, paper.min_lr) == (10, 0.1, 0.0)
    assert AutoDropConfig.paper(window_size=8).window_size == 8
    assert AutoDropConfig.preset("paper") == paper and AutoDropConfig.preset("default") == config
    anytime = AutoDropConfig.preset("anytime", buffer_size=6)
    assert (anytime.window_size, anytime.drop_factor, anytime.buffer_size) == ("growing", "power", 6)
    assert (config.done_scale, config.stop_when_done) == (0.1, False)
    with pytest.raises(ValueError, match=r"'fast': use one of \['anytime', 'anytime_average', 'default', 'paper'\]"):
        AutoDropConfig.preset("fast")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("drop_factor", 0.0, "0 < drop_factor < 1, or 'auto', 'linear' or 'power'"),
        ("drop_factor", 1.0, "0 < drop_factor < 1, or 'auto', 'linear' or 'power'"),
        ("drop_factor", "cosine", "0 < drop_factor < 1, or 'auto', 'linear' or 'power'"),
        ("drop_factor", float("nan"), "0 < drop_factor < 1"),
        ("drop_factor", "0.9", "must be a number with 0 < drop_factor < 1"),
        ("drop_factor", np.float32(1.5), "0 < drop_factor < 1"),
        ("window_size", 0, "window_size must be an integer from 1 to 2**31, 'auto' or 'growing'"),
        ("window_size", 2.5, "window_size must be an integer from 1 to 2**31, 'auto' or 'growing'"),
        ("window_size", "big", "window_size must be an integer from 1 to 2**31, 'auto' or 'growing'"),
        ("window_size", True, "window_size must be an integer from 1 to 2**31, 'auto' or 'growing'"),
        ("window_size", 10**120, "window_size must be an integer from 1 to 2**31, 'auto' or 'growing'"),
        ("done_scale", 0.0, "0 < done_scale <= 1"),
        ("done_scale", 1.5, "0 < done_scale <= 1"),
        ("stop_when_done", "yes", "stop_when_done must be True or False, got 'yes'"),
        ("stop_when_done", 1, "stop_when_done must be True or False, got 1"),
        ("buffer_size", 1, "buffer_size must be an integer from 2 to 2**31"),
        ("buffer_size", 4.0, "buffer_size must be an integer from 2 to 2**31"),
        ("threshold", 0.0, "threshold > 0"),
        ("threshold", -0.1, "threshold > 0"),
        ("threshold", float("inf"), "threshold > 0"),
        ("drift_z", -1.0, "drift_z >= 0"),
        ("drift_ratio", 0.0, "drift_ratio > 0, or None"),
        ("drift_ratio", "1", "drift_ratio must be a number"),
        ("min_lr", -1e-6, "min_lr >= 0"),
        ("min_lr", [1e-6, -1.0], "min_lr >= 0"),
        ("min_lr", [], "non-empty list"),
        ("saturation_test", "angle", "saturation_test must be one of ('noise_floor', 'smoothed_change')"),
    ],
)
def test_out_of_range_values_name_the_argument_and_range(name, value, message):
    with pytest.raises(ValueError, match=f"^{name}") as error:
        AutoDropConfig(**{name: value})
    assert message in str(error.value)


def test_a_setting_of_the_test_not_in_use_is_refused():
    unread = (
        r"threshold=0\.5 is read only by the paper's test \(preset 'paper'\), and this config uses saturation_test="
    )
    with pytest.raises(ValueError, match=unread + "'noise_floor'"):
        AutoDropConfig(threshold=0.5)
    with pytest.raises(ValueError, match=r"drift_z=1\.0 is read only by the noise-floor test"):
        AutoDropConfig.paper(drift_z=1.0)
    with pytest.raises(ValueError, match=r"drift_ratio=1\.0 is read only by the noise-floor test"):
        AutoDropConfig.paper(drift_ratio=1.0)
    assert AutoDropConfig.paper(threshold=0.5).threshold == 0.5 and AutoDropConfig(drift_z=1.0).drift_z == 1.0


def test_a_sample_fraction_too_small_to_invert_is_refused():
    with pytest.raises(
        ValueError, match=r"sample_fraction must satisfy 1e-9 <= sample_fraction <= 1, or 'auto', got 1e-310"
    ):
        AutoDropConfig(sample_fraction=1e-310)
    assert AutoDropConfig(sample_fraction=1e-9).sample_stride(5) == 10**9


def test_numpy_scalars_and_0d_tensors_are_numbers():
    config = AutoDropConfig.paper(drop_factor=np.float32(0.5), buffer_size=np.int64(5), threshold=torch.tensor(0.2))
    assert (config.drop_factor, config.buffer_size, config.threshold) == (0.5, 5, pytest.approx(0.2))
    assert type(config.drop_factor) is float and type(config.buffer_size) is int
    with pytest.raises(ValueError, match=r"threshold must be a number with threshold > 0 \(degrees\), got tensor"):
        AutoDropConfig.paper(threshold=torch.tensor([0.2, 0.3]))


def test_min_lr_per_group():
    assert AutoDropConfig(min_lr=[1e-5, 1e-6]).min_lrs(2) == [1e-5, 1e-6]
    assert AutoDropConfig(min_lr=1e-5).min_lrs(3) == [1e-5] * 3
    with pytest.raises(ValueError, match="min_lr has 2 values, the optimizer has 3 parameter groups"):
        AutoDropConfig(min_lr=[1e-5, 1e-6]).min_lrs(3)
    assert AutoDropConfig(min_lr=[1e-5]).to_dict()["min_lr"] == [1e-5]


@pytest.mark.parametrize(
    ("total_steps", "expected"),
    [(1, 1), (499, 1), (1_500, 2), (78_000, 78), (500_000, 500)],
)
def test_auto_window_size(total_steps, expected):
    assert AutoDropConfig().resolve_window_size(total_steps) == expected
    assert not AutoDropConfig().window_grows(total_steps)
    assert AutoDropConfig().resolve_drop_factor(total_steps) == "linear"


def test_without_a_horizon_auto_is_the_anytime_rule_and_the_papers_test_keeps_windows_of_64():
    for unknown in (None, 0):
        assert AutoDropConfig().window_grows(unknown) and AutoDropConfig().resolve_drop_factor(unknown) == "power"
        assert AutoDropConfig.paper().resolve_window_size(unknown) == 64
        assert not AutoDropConfig.paper().window_grows(unknown)
    assert AutoDropConfig.anytime().window_grows(10_000) and AutoDropConfig.anytime().resolve_drop_factor(10) == "power"
    with pytest.raises(ValueError, match="drop_factor='linear' decays to 0 at the last step and needs num_training"):
        AutoDropConfig(drop_factor="linear").resolve_drop_factor(None)
    with pytest.raises(ValueError, match="window_size='growing' needs saturation_test='noise_floor'"):
        AutoDropConfig.paper(window_size="growing")


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 1), (99, 1), (100, 2), (199, 2), (200, 4), (399, 4), (400, 8), (3_199, 32), (3_200, 64), (10**9, 2**24)],
)
def test_growing_windows_are_the_largest_power_of_two_at_most_a_fiftieth_of_the_steps(step, expected):
    assert AutoDropConfig.anytime().resolve_window_size(None, step) == expected
    assert expected <= max(1, step / 50) < 2 * expected


def test_explicit_window_size_ignores_the_step_count():
    assert AutoDropConfig(window_size=7).resolve_window_size(1_000_000) == 7


@pytest.mark.parametrize(
    ("elements", "stride"),
    [(1, 1), (10_000_000, 1), (10_000_001, 38), (22_713_986, 87), (7_000_000_000, 26_703)],
)
def test_auto_sample_fraction_is_exact_for_small_models_and_a_fixed_sample_above(elements, stride):
    config = AutoDropConfig()
    assert config.sample_fraction == "auto" and config.sample_stride(elements) == stride
    if stride > 1:  # about 262,144 watched elements (32,768 blocks of 8), whatever the model
        assert 0.9 * 262_144 < elements / stride < 1.1 * 262_144
    assert AutoDropConfig(sample_fraction=1).sample_stride(elements) == 1
