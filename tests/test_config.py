import pytest

from autodrop_hf import AutoDropConfig


def test_defaults_are_the_papers():
    config = AutoDropConfig()
    assert (config.drop_factor, config.buffer_size, config.threshold, config.min_lr) == (0.95, 10, 0.1, 0.0)
    assert config.window_size == "auto"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("drop_factor", 0.0, "0 < drop_factor < 1"),
        ("drop_factor", 1.0, "0 < drop_factor < 1"),
        ("drop_factor", float("nan"), "0 < drop_factor < 1"),
        ("drop_factor", "0.9", "0 < drop_factor < 1"),
        ("window_size", 0, "window_size must be an integer >= 1 or 'auto'"),
        ("window_size", 2.5, "window_size must be an integer >= 1 or 'auto'"),
        ("window_size", "big", "window_size must be an integer >= 1 or 'auto'"),
        ("window_size", True, "window_size must be an integer >= 1 or 'auto'"),
        ("buffer_size", 1, "buffer_size must be an integer >= 2"),
        ("buffer_size", 4.0, "buffer_size must be an integer >= 2"),
        ("threshold", 0.0, "threshold > 0"),
        ("threshold", -0.1, "threshold > 0"),
        ("threshold", float("inf"), "threshold > 0"),
        ("min_lr", -1e-6, "min_lr >= 0"),
    ],
)
def test_out_of_range_values_name_the_argument_and_range(name, value, message):
    with pytest.raises(ValueError, match=f"^{name}") as error:
        AutoDropConfig(**{name: value})
    assert message in str(error.value)
    assert repr(value) in str(error.value)


@pytest.mark.parametrize(
    ("total_steps", "expected"),
    [(None, 64), (0, 64), (1, 1), (499, 1), (1_500, 2), (78_000, 78), (500_000, 500)],
)
def test_auto_window_size(total_steps, expected):
    assert AutoDropConfig().resolve_window_size(total_steps) == expected


def test_explicit_window_size_ignores_the_step_count():
    assert AutoDropConfig(window_size=7).resolve_window_size(1_000_000) == 7
