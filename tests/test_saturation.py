import math

import numpy as np
import pytest
from reference import drop_indices

from autodrop_hf.core.saturation import SaturationDetector, gaussian_smooth


def test_filter_value_by_hand():
    # mean 10.75, population variance 1.6875 (std 1.299 < cap 2), centre B[2] = 10
    weight = math.exp(-9 / (2 * 1.6875))
    expected = (3 * 10 + 13 * weight) / (3 + weight)
    assert gaussian_smooth([10.0, 10.0, 10.0, 13.0], sigma_cap=2.0) == pytest.approx(expected, rel=1e-14)
    assert expected == pytest.approx(10.06791, abs=1e-5)


def test_sigma_is_capped_at_half_the_buffer():
    # std = 2.487 > m/2 = 2, so sigma = 2; centre B[2] = 3 and both neighbours are 3 away.
    weight = math.exp(-9 / (2 * 2.0**2))
    capped = (3 + 6 * weight) / (1 + 3 * weight)
    assert gaussian_smooth([0.0, 0.0, 3.0, 6.0], sigma_cap=2.0) == pytest.approx(capped, rel=1e-14)
    uncapped_weight = math.exp(-9 / (2 * 24.75 / 4))
    uncapped = (3 + 6 * uncapped_weight) / (1 + 3 * uncapped_weight)
    assert abs(capped - uncapped) > 0.05  # the cap changes the value


def test_zero_sigma_returns_the_centre():
    assert gaussian_smooth([91.5] * 10, sigma_cap=5.0) == 91.5


def test_centre_is_the_middle_element_not_the_mean():
    # Weights are centred on B[len // 2]: an outlier far from it barely counts.
    assert gaussian_smooth([100.0, 50.0, 50.0], sigma_cap=1.0) == pytest.approx(50.0, abs=1e-100)


def test_empty_buffer_is_an_error():
    with pytest.raises(ValueError):
        gaussian_smooth([], sigma_cap=1.0)


def test_needs_a_full_buffer_then_two_smoothed_values():
    detector = SaturationDetector(buffer_size=3, threshold=0.1)
    assert detector.update(90.0) == (None, False)
    assert detector.update(90.0) == (None, False)
    assert detector.update(90.0) == (90.0, False)  # first C: nothing to compare with
    assert detector.buffer == [90.0, 90.0]  # oldest angle left the buffer
    assert detector.update(90.0) == (90.0, True)  # |C - C_prev| = 0 < 0.1


def test_threshold_is_on_the_absolute_change():
    # With two angles 0 < |a - b| <= 2 (= cap m/2), sigma = |a - b| / 2 and the weight of a is
    # exp(-2), so C = b + (a - b)·w with w = e^-2 / (1 + e^-2).
    w = math.exp(-2) / (1 + math.exp(-2))
    detector = SaturationDetector(buffer_size=2, threshold=0.1)
    detector.update(10.0)
    assert detector.update(10.0) == (10.0, False)
    smoothed, saturated = detector.update(9.0)
    assert smoothed == pytest.approx(9.0 + w, rel=1e-14)
    assert not saturated  # ΔC = -0.88: a signed test (C_i - C_{i-1} < θ) would drop here
    assert detector.update(9.0) == (9.0, False)  # |ΔC| = w = 0.119 >= 0.1
    assert detector.update(9.0) == (9.0, True)  # |ΔC| = 0 < 0.1


def test_reset_forgets_buffer_and_previous_value():
    detector = SaturationDetector(buffer_size=2, threshold=0.1)
    for angle in (5.0, 5.0, 5.0):
        _, saturated = detector.update(angle)
    assert saturated
    detector.reset()
    assert detector.buffer == [] and detector.previous_smoothed is None
    assert detector.update(5.0) == (None, False)
    assert detector.update(5.0) == (5.0, False)


def test_matches_the_reference_on_a_long_noisy_sequence():
    rng = np.random.default_rng(0)
    steps = np.arange(3000)
    angles = 90 + 25 * (1 - np.exp(-(steps % 400) / 60)) + rng.normal(0, 0.3, steps.size)
    detector = SaturationDetector(buffer_size=10, threshold=0.1)
    drops = []
    for i, angle in enumerate(angles):
        if detector.update(angle)[1]:
            drops.append(i)
            detector.reset()
    expected = drop_indices(angles, buffer_size=10, threshold=0.1)
    assert drops == expected
    assert len(expected) > 5
    assert min(np.diff(expected)) >= 11  # m + 1 angles between drops


def test_state_round_trip():
    detector = SaturationDetector(buffer_size=4, threshold=0.1)
    for angle in (1.0, 2.0, 3.0, 4.0, 5.0):
        detector.update(angle)
    clone = SaturationDetector(buffer_size=4, threshold=0.1)
    clone.load_state_dict(detector.state_dict())
    assert clone.update(6.0) == detector.update(6.0)
