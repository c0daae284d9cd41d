import json
import math

import pytest
import torch

from autodrop_hf.paper import convergence, nqm
from autodrop_hf.tools.cli import main

STEPS = 3000  # the step budget of the AutoDrop-vs-fixed comparison


def test_theorem_formulas_by_hand():
    # a = (1, 2), lr 0.1: weights a²/(2 - lr·a) = 1/1.9 and 4/1.8; their a-weighted mean is 1.808511
    cosines = nqm.theorem_cosine(0.1, torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert cosines["eq5_main_text"] == pytest.approx(-0.18085106, abs=1e-8)
    assert cosines["eq23_supplement"] == pytest.approx(-0.09042553, abs=1e-8)
    assert cosines["eq6_bound"] == pytest.approx(-0.1, abs=1e-12)


def test_simulation_supports_the_supplement_not_the_main_text():
    table = nqm.theorem_table(steps=8000, seed=1)
    for row in table:
        # Eq. 23 is an approximation (ratio of expectations); it holds to 0.005 in cosine
        assert row["cosine"] == pytest.approx(row["eq23_supplement"], abs=0.005), row
        assert 90 <= row["angle"] <= 120  # P2 and the theorem's range
        assert row["eq6_bound"] <= row["cosine"] <= 0.01
    for row in table[:3]:  # where the two forms differ by far more than the noise
        assert abs(row["cosine"] - row["eq5_main_text"]) > 20 * abs(row["cosine"] - row["eq23_supplement"])


def test_autodrop_beats_every_fixed_learning_rate_at_equal_steps():
    assert nqm.section3_config().saturation_test == "smoothed_change"  # Section 3's rule: the smoothed angle
    x0 = torch.randn(200, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 10
    adaptive = nqm.run_autodrop(STEPS, x0, torch.Generator().manual_seed(1))
    assert adaptive.drops and adaptive.learning_rates[0] == 0.06
    assert adaptive.learning_rates[-1] == pytest.approx(0.001)  # down to the floor, halving each time
    rates = sorted(set(adaptive.learning_rates), reverse=True)
    assert all(r == pytest.approx(max(0.001, 0.06 * 0.5**i)) for i, r in enumerate(rates))
    for lr in nqm.PAPER_LEARNING_RATES:
        fixed = nqm.run_gd(lr, STEPS, x0, torch.Generator().manual_seed(1))
        assert adaptive.losses[-1] < fixed.losses[-1], lr
        # average over the last 200 steps too, so one lucky step cannot decide
        assert sum(adaptive.losses[-200:]) < sum(fixed.losses[-200:]), lr


def test_runs_are_deterministic_for_a_seed():
    x0 = torch.randn(200, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    first = nqm.run_autodrop(400, x0, torch.Generator().manual_seed(2))
    second = nqm.run_autodrop(400, x0, torch.Generator().manual_seed(2))
    assert first.losses == second.losses and first.drops == second.drops
    angles = nqm.run_gd(0.03, 50, x0, torch.Generator().manual_seed(3)).angles
    assert len(angles) == 50 and math.isnan(angles[0]) and not any(math.isnan(a) for a in angles[1:])


def test_algorithm2_gaps_match_the_proofs_closed_form_and_eq38():
    rates = convergence.learning_rates(25, "lemma")
    gaps = convergence.simulate(rates, epsilon=1 / (6 * rates[0]), gamma=1.0, tau0=0.3)
    assert [g.gap for g in gaps] == [math.ceil(g.crossing) for g in gaps]
    for g in gaps:
        assert convergence.velocity_derivative(g.crossing, g.lr, 1 / (6 * rates[0]), 1.0) == pytest.approx(g.tau)
        assert g.lower <= g.crossing <= g.upper and g.lower <= g.gap
    assert gaps[-1].gap > gaps[0].gap  # smaller learning rates saturate more slowly (P2 iii)
    v = convergence.velocity(1e9, 0.5, 0.4, 1.0)
    assert v == pytest.approx(math.pi / 2 * (1 + 0.4 * 0.5), rel=1e-6)  # saturation level


def test_eq38_upper_bound_fails_only_outside_the_proofs_hidden_condition():
    for row in convergence.check_grid():
        assert row["below_lower"] == 0
        assert row["crossing_above_upper_gamma_lr_le_1"] == 0
        assert row["max_steps_above_upper"] < 1


def test_algorithm2_refuses_parameters_outside_the_theorem():
    rates = convergence.learning_rates(3)
    with pytest.raises(ValueError, match="0 < tau0 < 2"):
        convergence.simulate(rates, 0.1, 1.0, 2.5)
    with pytest.raises(ValueError, match="epsilon"):
        convergence.simulate(rates, 1.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="schedule"):
        convergence.learning_rates(3, "cosine")


def test_nqm_command_writes_figures_and_results(tmp_path, capsys):
    main(["nqm", "--output", str(tmp_path), "--steps", "600", "--theorem_steps", "2000"])
    out = capsys.readouterr().out
    assert "The simulation supports Eq. 23 (supplement)" in out
    assert "Eq. 38 over 720 gaps: 0 below the lower bound" in out
    results = json.loads((tmp_path / "nqm_results.json").read_text())
    assert results["steps"] == 600 and len(results["theorem_3_2"]) == 4
    for name in ("figure1.png", "figure2.png"):
        assert (tmp_path / name).stat().st_size > 20_000
