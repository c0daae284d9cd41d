import math

import numpy as np
import pytest
from reference import drop_indices

from autodrop_hf.core.saturation import (
    NoiseFloorTest,
    SaturationResult,
    SmoothedChangeTest,
    gaussian_smooth,
    hold_while_drifting,
)


def test_filter_value_by_hand():
    # mean 10.75, population variance 1.6875 (std 1.299 < cap 2), centre B[2] = 10; 13 gets weight
    # exp(-9 / 3.375) = 0.0695: C = (30 + 13 · 0.0695) / 3.0695 = 10.06791
    assert gaussian_smooth([10.0, 10.0, 10.0, 13.0], sigma_cap=2.0) == pytest.approx(10.0679106, abs=1e-7)


def test_sigma_is_capped_at_half_the_buffer():
    # std = 2.487 > m/2 = 2, so sigma = 2; centre B[2] = 3, both neighbours 3 away with weight exp(-9/8):
    # C = 2.50660 (with the uncapped sigma it would be 2.40822)
    assert gaussian_smooth([0.0, 0.0, 3.0, 6.0], sigma_cap=2.0) == pytest.approx(2.5065965, abs=1e-7)
    assert gaussian_smooth([0.0, 0.0, 3.0, 6.0], sigma_cap=3.0) == pytest.approx(2.4082174, abs=1e-7)


def test_zero_sigma_returns_the_centre():
    assert gaussian_smooth([91.5] * 10, sigma_cap=5.0) == 91.5


def test_centre_is_the_middle_element_not_the_mean():
    # Weights are centred on B[len // 2]: an outlier far from it barely counts.
    assert gaussian_smooth([100.0, 50.0, 50.0], sigma_cap=1.0) == pytest.approx(50.0, abs=1e-100)


def test_empty_buffer_is_an_error():
    with pytest.raises(ValueError):
        gaussian_smooth([], sigma_cap=1.0)


def test_paper_test_needs_a_full_buffer_then_two_smoothed_values():
    test = SmoothedChangeTest(buffer_size=3, threshold=0.1)
    assert test.update(90.0) == SaturationResult()
    assert test.update(90.0) == SaturationResult()
    assert test.update(90.0) == SaturationResult(smoothed=90.0)  # first C: nothing to compare with
    assert test.buffer == [90.0, 90.0]  # oldest angle left the buffer
    assert test.update(90.0) == SaturationResult(decided=True, saturated=True, statistic=0.0, smoothed=90.0)


def test_paper_threshold_is_on_the_absolute_change():
    # Two angles 10 and 9 in the buffer: population std 0.5 = sigma (cap 1), the centre is the second
    # (9), and 10 gets weight exp(-1/(2·0.25)) = e^-2: C = 9 + e^-2 / (1 + e^-2) = 9.1192.
    test = SmoothedChangeTest(buffer_size=2, threshold=0.1)
    test.update(10.0)
    assert test.update(10.0).smoothed == 10.0
    result = test.update(9.0)
    assert result.smoothed == pytest.approx(9.119202922, rel=1e-9)
    assert result.decided and not result.saturated  # ΔC = -0.88: a signed test (C_i - C_{i-1} < θ) would drop
    result = test.update(9.0)
    assert (result.smoothed, result.saturated) == (9.0, False)  # |ΔC| = 0.119 >= 0.1
    assert result.statistic == pytest.approx(0.119202922, rel=1e-8)
    assert test.update(9.0).saturated  # |ΔC| = 0 < 0.1


def test_paper_reset_forgets_buffer_and_previous_value():
    test = SmoothedChangeTest(buffer_size=2, threshold=0.1)
    results = [test.update(5.0) for _ in range(3)]
    assert results[-1].saturated
    test.reset()
    assert test.buffer == [] and test.previous_smoothed is None
    assert test.update(5.0) == SaturationResult()
    assert test.update(5.0) == SaturationResult(smoothed=5.0)


def test_paper_test_matches_the_reference_on_a_long_noisy_sequence():
    rng = np.random.default_rng(0)
    steps = np.arange(3000)
    angles = 90 + 25 * (1 - np.exp(-(steps % 400) / 60)) + rng.normal(0, 0.3, steps.size)
    test = SmoothedChangeTest(buffer_size=10, threshold=0.1)
    drops = []
    for i, angle in enumerate(angles):
        if test.update(angle).saturated:
            drops.append(i)
            test.reset()
    expected = drop_indices(angles, buffer_size=10, threshold=0.1)
    assert drops == expected
    assert len(expected) > 5
    assert min(np.diff(expected)) >= 11  # m + 1 angles between drops


def test_paper_state_round_trip():
    test = SmoothedChangeTest(buffer_size=4, threshold=0.1)
    for angle in (1.0, 2.0, 3.0, 4.0, 5.0):
        test.update(angle)
    clone = SmoothedChangeTest(buffer_size=4, threshold=0.1)
    clone.load_state_dict(test.state_dict())
    assert clone.update(6.0) == test.update(6.0)


def test_noise_floor_statistic_by_hand():
    # angles 24, 26, 25, 27: mean 25.5, deviations -1.5, 0.5, -0.5, 1.5, sum of squares 5,
    # lag-1 sum (-0.75 - 0.25 - 0.75) / 5 = -0.35 -> clamped to 0: SE = sqrt(5/3 / 4) = 0.6455
    z = NoiseFloorTest.statistic([24.0, 26.0, 25.0, 27.0], noise_floor=25.84193)
    assert z == pytest.approx((25.5 - 25.84193) / math.sqrt(5 / 12), rel=1e-12)
    # angles 20, 21, 22, 23: lag-1 sum (0.75 - 0.25 + 0.75) / 5 = 0.25: SE = sqrt(5/3 · 1.25 / (0.75 · 4))
    z = NoiseFloorTest.statistic([20.0, 21.0, 22.0, 23.0], noise_floor=25.0)
    assert z == pytest.approx(-3.5 / math.sqrt(5 / 3 * 1.25 / 0.75 / 4), rel=1e-12)
    assert NoiseFloorTest.statistic([25.0] * 4, 25.0) == 0.0
    assert NoiseFloorTest.statistic([20.0] * 4, 25.0) == -math.inf


def test_noise_floor_test_holds_on_progress_and_drops_at_the_floor():
    test = NoiseFloorTest(buffer_size=4, noise_floor=25.0, drift_z=2.0)
    assert [test.update(a) for a in (20.0, 21.0, 22.0)] == [SaturationResult()] * 3
    held = test.update(23.0)  # z = -4.7: far below the floor, training still moves one way
    assert held.decided and not held.saturated and held.statistic < -2
    assert test.buffer == []  # every decision starts a new buffer
    for angle in (24.0, 26.0, 25.0):
        test.update(angle)
    dropped = test.update(27.0)  # z = 0.77: at the floor
    assert dropped.decided and dropped.saturated
    above = [test.update(a) for a in (40.0, 41.0, 39.0, 40.0)][-1]  # above the floor (curvature): saturated
    assert above.saturated and above.statistic > 10


def test_noise_floor_test_false_hold_rate_under_pure_noise():
    # Angles at the floor with momentum-correlated noise (AR(1), 0.4): the test holds about as often
    # as a one-sided test at 2 standard errors should (t with 9 degrees of freedom: 4%), not never.
    rng = np.random.default_rng(1)
    test = NoiseFloorTest(buffer_size=10, noise_floor=25.84, drift_z=2.0)
    noise, holds, decisions = 0.0, 0, 0
    for _ in range(50_000):
        noise = 0.4 * noise + rng.normal(0, 2.5 * math.sqrt(1 - 0.16))
        result = test.update(25.84 + noise)
        decisions += result.decided
        holds += result.decided and not result.saturated
    assert decisions == 5_000
    assert 0.02 < holds / decisions < 0.09


def test_noise_floor_state_round_trip():
    test = NoiseFloorTest(buffer_size=3, noise_floor=25.0, drift_z=2.0)
    test.update(20.0)
    clone = NoiseFloorTest(buffer_size=3, noise_floor=25.0, drift_z=2.0)
    clone.load_state_dict(test.state_dict())
    assert [clone.update(a) for a in (21.0, 22.0)] == [test.update(a) for a in (21.0, 22.0)]


def test_a_drop_is_held_while_the_variance_ratio_reaches_the_drift_ratio():
    drop = SaturationResult(decided=True, saturated=True, statistic=0.5)
    hold = SaturationResult(decided=True, saturated=False, statistic=-3.0)
    assert hold_while_drifting(drop, 1.0, 1.0) == SaturationResult(True, False, 0.5, None, 1.0)  # at the boundary
    assert hold_while_drifting(drop, 0.99, 1.0) == SaturationResult(True, True, 0.5, None, 0.99)
    assert hold_while_drifting(drop, None, 1.0) == drop  # no displacement: the angle decides
    assert hold_while_drifting(hold, 0.1, 1.0).saturated is False  # progress by the angle is kept
