"""The benchmark tooling (run files, tables, paired statistics, ranks) and smoke runs of every benchmark
script and of the quick-start example on tiny inputs, so that none of them can rot."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import aggregate  # noqa: E402
import collect_run  # noqa: E402

TIMEOUT = 300


def _write_run(
    folder: Path, name: str, accuracy: float, learning_rates: list[float], drops: int = 0, final_lr: float | None = None
) -> None:
    trace = {"train": {"step": list(range(len(learning_rates))), "learning_rate": learning_rates, "loss": []}}
    final_lr = learning_rates[-1] if final_lr is None else final_lr
    run = {"eval_accuracy": accuracy, "final_lr": final_lr, "drops": drops, "seconds": 60.0, "trace": trace}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(run))


def _run(command: list[str], cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", **env)
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=environment, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(map(str, command[:3]))} did not finish within {TIMEOUT} s")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def test_drops_are_counted_and_files_must_be_named(tmp_path: Path) -> None:
    _write_run(tmp_path, "rte_autodrop_seed1", 0.50, [5e-5, 2.5e-5], drops=1)
    _write_run(tmp_path, "rte_linear_seed1", 0.55, [5e-5, 4e-5, 3e-5])
    _write_run(tmp_path, "rte_reduce_lr_on_plateau_seed1", 0.58, [5e-5, 2.5e-5, 2.5e-5, 1.25e-5], final_lr=6.25e-6)
    runs = {(r["variant"], r["seed"]): r for r in aggregate.load_runs(tmp_path)}
    assert runs[("reduce_lr_on_plateau", 1)]["drops"] == 3  # two logged decreases, one after the last log
    assert runs[("autodrop", 1)]["drops"] == 1 and "drops" not in runs[("linear", 1)]  # linear decays, never drops
    (tmp_path / "rte_autodrop.json").write_text("{}")
    with pytest.raises(ValueError, match="<data>_<variant>_seed<N>"):
        aggregate.load_runs(tmp_path)


def test_paired_differences_ranks_and_headline_by_hand(tmp_path: Path) -> None:
    scores = {  # seed: (autodrop, linear, constant_with_warmup, cosine, reduce_lr_on_plateau)
        1: (0.60, 0.55, 0.50, 0.58, 0.52),
        2: (0.62, 0.60, 0.61, 0.59, 0.57),
        3: (0.58, 0.58, 0.55, 0.60, 0.56),
        4: (0.65, 0.61, 0.60, 0.62, 0.63),
    }
    for seed, values in scores.items():
        for variant, value in zip(aggregate.RANKED, values, strict=True):
            _write_run(tmp_path, f"rte_{variant}_seed{seed}", value, [5e-5])
    runs = aggregate.load_runs(tmp_path)
    result = aggregate.paired(runs, "rte", "autodrop")
    # differences 0.05, 0.02, 0.00, 0.04: mean 0.0275, sd 0.0222, t = 2.477 with 3 dof: p = 0.0895;
    # sign test on 3 wins, 0 losses (one tie): p = 0.25
    assert (result["n"], result["wins"], result["ties"], result["losses"]) == (4, 3, 1, 0)
    assert result["mean"] == pytest.approx(0.0275)
    assert result["t_p"] == pytest.approx(0.0895, abs=5e-4) and result["sign_p"] == pytest.approx(0.25)
    ranks = aggregate.mean_ranks(runs)
    # seed 1: 1,3,5,2,4; seed 2: 1,3,2,4,5; seed 3: 2.5 (tie with linear),2.5,5,1,4; seed 4: 1,4,5,3,2
    assert ranks["autodrop"] == (pytest.approx((1 + 1 + 2.5 + 1) / 4), 4)
    assert ranks["linear"][0] == pytest.approx((3 + 3 + 2.5 + 4) / 4)
    headline = aggregate.headline_table(runs).splitlines()
    assert headline[0] == "| schedule | rte eval_accuracy |"
    assert headline[2] == "| autodrop | 0.6125 ± 0.03 (4) |"
    assert aggregate.compute_line(runs) == "20 runs, 0.3 hours of run time in all (one CPU thread per run)."


def test_the_signal_table_counts_holds_against_chance(tmp_path: Path) -> None:
    _write_run(tmp_path, "rte_autodrop_seed1", 0.6, [1e-5, 5e-6], drops=3)
    run = json.loads((tmp_path / "rte_autodrop_seed1.json").read_text())
    run["trace"]["autodrop"] = {
        "step": [3, 4, 5],
        "angle": [20.0, 25.0, 30.0],
        "noise_floor": 25.84,
        "drop_steps": [10, 20, 30],
        "decisions": {
            "step": [10, 20, 30, 40],
            "statistic": [-3.0, 0.5, 1.0, -0.5],
            "dropped": [False, True, True, True],
        },
    }
    (tmp_path / "rte_autodrop_seed1.json").write_text(json.dumps(run))
    rows = aggregate.signal_table(aggregate.load_runs(tmp_path)).splitlines()
    # window 1, mean angle 25°, 4 decisions with mean z −0.5, 1 hold where noise gives 4 × 2.28% = 0.09
    assert rows[2] == "| rte | autodrop | 1 | 1 | 25.84° | 25.00° | 4 | -0.50 | 1 | 0.1 | 3 |"


def test_collect_run_keeps_results_and_traces(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"eval_accuracy": 0.7, "drops": 1}))
    log = [
        {"step": 10, "learning_rate": 5e-5, "loss": 0.69},
        {"step": 10, "eval_loss": 0.6, "eval_accuracy": 0.7, "eval_runtime": 1.5, "eval_samples_per_second": 9.0},
        {"step": 20, "learning_rate": 2.5e-5, "loss": 0.5},
        {"step": 20, "eval_loss": 0.5, "eval_accuracy": 0.75},
    ]
    (out / "trainer_state.json").write_text(json.dumps({"log_history": log, "max_steps": 20}))
    history = [
        {"step": 8, "angle": None, "noise_floor": 25.8, "statistic": None, "smoothed": None, "dropped": False},
        {"step": 12, "angle": 20.0, "noise_floor": 25.8, "statistic": -3.1, "smoothed": None, "dropped": False},
        {"step": 16, "angle": 26.0, "noise_floor": 25.8, "statistic": 0.4, "smoothed": None, "dropped": True},
        {"step": 20, "angle": 80.0, "statistic": 3.0, "variance_ratio": 1.5, "smoothed": None, "dropped": False},
    ]
    (out / "autodrop_history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    trace = collect_run.trace_of(out)
    assert trace["train"] == {"step": [10, 20], "learning_rate": [5e-5, 2.5e-5], "loss": [0.69, 0.5]}
    assert trace["eval"] == {"step": [10, 20], "eval_accuracy": [0.7, 0.75], "eval_loss": [0.6, 0.5]}
    assert trace["max_steps"] == 20
    assert trace["autodrop"] == {
        "step": [12, 16, 20],
        "angle": [20.0, 26.0, 80.0],
        "noise_floor": 25.8,
        "smoothed": [None, None, None],
        "drop_steps": [16],
        "done": None,
        "decisions": {  # the drift hold's ratio where a decision has one
            "step": [12, 16, 20],
            "statistic": [-3.1, 0.4, 3.0],
            "variance_ratio": [None, None, 1.5],
            "dropped": [False, True, False],
        },
    }


def test_the_quick_start_example_runs(tmp_path: Path) -> None:
    result = _run([sys.executable, "examples/quickstart.py", "--steps", "400"])
    summary = result.stdout.strip().splitlines()[-1]
    # window 1 after 100 warm-up steps: the first angle at step 103, then a decision every 10 angles
    assert summary.startswith("400 steps in") and ": 298 angles, 29 decisions," in summary


def _tiny_glue_grid(tmp_path: Path, schedules: str, results: Path) -> dict[str, str]:
    """The environment of benchmarks/glue_quality.sh for a tiny MRPC, one seed of 2 epochs, one job."""
    from test_glue_example import WORDS, write_glue_task
    from tiny import save_tiny_model_dir

    model = save_tiny_model_dir(tmp_path / "model", WORDS)
    write_glue_task(tmp_path / "glue", "mrpc")
    outputs = str(tmp_path / "glue_outputs")
    return {
        "GLUE_DIR": str(tmp_path / "glue"),
        "TASKS": "mrpc",
        "SCHEDULES": schedules,
        "SEEDS": "42",
        "EPOCHS": "2",
        "MODEL": model,
        "RESULTS": str(results),
        "OUTPUTS": outputs,
        "PY": sys.executable,
        "JOBS": "1",
    }


def test_the_glue_benchmark_script_and_aggregate_run_on_a_tiny_task(tmp_path: Path) -> None:
    results = tmp_path / "results" / "glue"
    env = _tiny_glue_grid(tmp_path, "autodrop linear", results)
    output = _run(["bash", "benchmarks/glue_quality.sh"], **env).stdout
    assert output.count("done: mrpc") == 2 and "FAILED" not in output
    assert "have:" in _run(["bash", "benchmarks/glue_quality.sh"], **env).stdout  # finished runs are kept
    run = json.loads((results / "mrpc_autodrop_seed42.json").read_text())
    assert run["trace"]["autodrop"]["noise_floor"] == pytest.approx(25.84, abs=0.01)  # AdamW's β1 = 0.9
    tables = _run([sys.executable, "benchmarks/aggregate.py", "--results", str(tmp_path / "results")]).stdout
    assert "| mrpc | autodrop | 1 |" in tables and "Mean rank" in tables
    assert (results / "mrpc.png").stat().st_size > 10_000 and (tmp_path / "results/glue_quality.png").exists()


def test_the_cost_and_rule_selection_benchmarks_run(tmp_path: Path) -> None:
    _run(
        [
            sys.executable,
            "benchmarks/step_overhead.py",
            *("--model", "tiny", "--steps", "20", "--window_size", "4", "--average", "--output", str(tmp_path)),
        ]
    )
    (cost,) = tmp_path.glob("step_overhead_*_window4_average_cpu.json")
    measured = json.loads(cost.read_text())
    assert measured["bytes_per_trainable_parameter"] == pytest.approx(16, abs=0.5)  # 12 for the angle, 4 the average
    assert measured["angles"] == 5  # 7 windows of 4 in the 30 steps run; an angle needs 3 window means
    _run(
        [
            sys.executable,
            "benchmarks/gather_floor.py",
            "--parameters",
            "400000",
            "--sample_block",
            "8",
            "--repeats",
            "2",
            "--output",
            str(tmp_path),
        ]
    )
    floor = json.loads((tmp_path / "gather_floor_threads1_cpu.json").read_text())["patterns"]
    assert floor["blocks_of_8"]["blocks"] == floor["one_element_per_block_of_8"]["elements"] == 400_000 // 800
    assert floor["blocks_of_16"]["elements"] == floor["contiguous"]["elements"] == 8 * (400_000 // 800)
    assert "memory-light floor" in aggregate.cost_table(tmp_path)
    _run(
        [
            sys.executable,
            "benchmarks/trainer_overhead.py",
            "--model",
            "tiny",
            "--steps",
            "8",
            "--repeats",
            "1",
            "--output",
            str(tmp_path),
        ]
    )
    assert len(list(tmp_path.glob("trainer_overhead_*.json"))) == 1
    _run(
        [sys.executable, "benchmarks/rule_selection.py", "--budgets", "100", "--seeds", "1", "--output", str(tmp_path)]
    )
    table = (tmp_path / "rule_selection.md").read_text()
    assert table.count("| nqm-adam | 100 |") == 1 and "autodrop (default)" in table


def test_the_sampling_error_benchmark_runs_and_is_tabulated(tmp_path: Path) -> None:
    from test_translation_example import write_parallel

    text = write_parallel(tmp_path / "text", sizes=(("train", 500),))  # 15 steps of 64 need two epochs
    _run(
        [
            sys.executable,
            "benchmarks/sampling_error.py",
            "translation",
            "--text_dir",
            str(text),
            "--steps",
            "15",
            "--warmup_steps",
            "0",
            "--output",
            str(tmp_path),
        ]
    )
    result = json.loads((tmp_path / "sampling_error_multi30k.json").read_text())
    # window 1: angles from step 3; the first decision (10 angles) drops to 0, ending the observation
    assert result["exact"] == {"angles": 10, "decisions": 1, "drops": 1}
    light = result["sample_0.01"]
    assert light["bytes_per_parameter"] < 0.15
    # compared at every step both measured: all 10 angles and the one decision
    assert light["compared_angles"] == 10 and light["compared_decisions"] == 1
    errors = [light[f"angle_error_{q}_degrees"] for q in ("median", "p95", "max")]
    assert 0 <= errors[0] <= errors[1] <= errors[2] < 90
    assert light["same_decisions"] == 1 - len(light["decisions_differing_at"])
    assert f"| {light['watched_parameters']:,} of " in aggregate.sampling_table(tmp_path)


def test_the_horizon_free_tables_by_hand(tmp_path: Path) -> None:
    folder = tmp_path / "lm"
    folder.mkdir()

    def write(schedule, budget, seed, evals, **extra):
        run = {
            "family": "lm",
            "schedule": schedule,
            "budget": budget,
            "seed": seed,
            "learning_rate": 1e-3,
            "train_seconds": 60.0,
            "evals": [{"step": s, "dev_loss": v} for s, v in evals],
            "train_log": [{"step": budget, "lr": 5e-4, "loss": 1.0}],
            "autodrop": {"drops": [3], "done": None},
            **extra,
        }
        (folder / f"{schedule}_b{budget}_seed{seed}.json").write_text(json.dumps(run))

    for seed, oracle in ((0, (2.0, 1.0, 0.5, 0.25)), (1, (2.0, 1.0, 0.5, 0.5))):
        for budget, loss in zip((500, 1000, 2000, 4000), oracle, strict=True):
            write("linear", budget, seed, [(budget // 2, 9.0), (budget, loss)])  # only its end counts
        write("autodrop_anytime", 4000, seed, [(500, 2.2), (1000, 0.9), (2000, 0.5), (4000, 0.3)])
        write("wsd", 500, seed, [(500, 2.5)])  # a competitor run at one budget only
    # a third seed that the oracle ran at 500 steps only, and no competitor
    write("linear", 500, 2, [(500, 2.5)])
    write("autodrop_anytime", 4000, 2, [(500, 2.75), (1000, 0.9), (2000, 0.5), (4000, 0.3)])
    tables = _run([sys.executable, "benchmarks/anytime_tables.py", "--results", str(tmp_path)]).stdout
    # regret per seed: +10% and +10%; -10% and -10%; 0 and 0; +20% and -40%
    assert (
        "| autodrop_anytime | +10.00 ± 0.00 (3) | -10.00 ± 0.00 (2) | +0.00 ± 0.00 (2) | -10.00 ± 42.43 (2) |" in tables
    )
    assert "seed 0: 1 drops, done not said, final LR 0.0005 (0.50 of the peak), 1.0 min" in tables
    assert "by competitor: linear 2 of 4, wsd 1 of 1" in tables  # counted on the seeds both ran (not seed 2)


def test_the_horizon_free_benchmarks_run_on_tiny_inputs(tmp_path: Path) -> None:
    from test_translation_example import write_parallel

    text = write_parallel(tmp_path / "text", sizes=(("train", 400), ("valid", 24)))
    results = tmp_path / "results"
    env = {
        "TEXT_DIR": str(text),
        "B0": "8",
        "WARMUP": "2",
        "SEEDS": "0",
        "PY": sys.executable,
        "OUTPUTS": str(tmp_path / "outputs"),
    }
    lm = _run(
        ["bash", "benchmarks/anytime_quality.sh"],
        FAMILY="lm",
        SCHEDULES="constant wsd constant_average",
        BUDGETS="8 16",
        RESULTS=str(results / "lm"),
        **env,
    ).stdout
    assert lm.count("done: ") == 4 and "FAILED" not in lm  # 1 constant run, 2 cool-downs branched from it
    constant = json.loads((results / "lm" / "constant_b16_seed0.json").read_text())
    wsd = json.loads((results / "lm" / "wsd_b16_seed0.json").read_text())
    assert wsd["steps_run"] == 16 and [e["step"] for e in constant["evals"]] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert wsd["evals"][:6] == constant["evals"][:6]  # the same run up to the branch point, step 13
    # the same training, read on the averaged weights: other losses at every evaluation but the first steps'
    averaged = json.loads((results / "lm" / "constant_average_b16_seed0.json").read_text())
    assert averaged["train_log"] == constant["train_log"] and len(averaged["evals"]) == 8
    assert averaged["last_iterate_evals"] == constant["evals"]
    assert all(a["dev_loss"] != c["dev_loss"] for a, c in zip(averaged["evals"], constant["evals"], strict=True))
    translation = _run(
        ["bash", "benchmarks/anytime_quality.sh"],
        FAMILY="translation",
        SCHEDULES="autodrop_averaged autodrop_averaged_stairs",  # the preset, and its former rule
        RESULTS=str(results / "translation"),
        **env,
    ).stdout
    assert translation.count("done: ") == 2
    library = json.loads((results / "translation" / "autodrop_averaged_b16_seed0.json").read_text())
    assert "dev_bleu" in library["evals"][0] and len(library["evals"]) == 8 and library["autodrop"]["decisions"]

    env = _tiny_glue_grid(tmp_path, "autodrop_anytime_average", results / "glue")
    assert "done: mrpc autodrop_anytime_average" in _run(["bash", "benchmarks/glue_quality.sh"], **env).stdout
    tables = _run([sys.executable, "benchmarks/anytime_tables.py", "--results", str(results)]).stdout
    assert "| mrpc | autodrop_anytime_average |" in tables

    _run(
        [
            sys.executable,
            "benchmarks/anytime_selection.py",
            "--b0",
            "40",
            "--seeds",
            "1",
            "--jobs",
            "1",
            "--output",
            str(tmp_path),
            "--rules",
            "drift",
        ]
    )
    table = (tmp_path / "anytime_selection_drift.md").read_text()
    assert "| drift hold, halve + average |" in table and "Mean rank" in table


def test_the_iterate_average_is_the_polynomial_decay_average() -> None:
    """Against the direct float64 sum: x̄_t = Σ_s w_s x_s, w_s = c_s Π_(r>s) (1 - c_r), c_s = (γ+1)/(s+γ)."""
    import torch
    from anytime import IterateAverage
    from transformers import TrainerState

    model = torch.nn.Linear(1, 1, bias=False).double()
    average, state, trajectory = IterateAverage(), TrainerState(), []
    for step in range(1, 41):
        with torch.no_grad():
            model.weight.fill_(step**0.5 + (-1) ** step)
        trajectory.append(model.weight.item())
        state.global_step = step
        average.on_step_end(None, state, None, model=model)
    gamma = IterateAverage.gamma
    rates = [(gamma + 1) / (s + gamma) for s in range(1, 41)]
    expected = sum(
        x * c * math.prod(1 - r for r in rates[s:]) for s, (x, c) in enumerate(zip(trajectory, rates, strict=True), 1)
    )
    assert float(average.average[0]) == pytest.approx(expected, rel=1e-12)
