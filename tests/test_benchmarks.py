"""The benchmark tooling: run files collected from an output folder, aggregated into tables."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import aggregate
import collect_run


def _write_run(
    folder: Path, name: str, accuracy: float, learning_rates: list[float], drops: int = 0, final_lr: float | None = None
) -> None:
    trace = {"train": {"step": list(range(len(learning_rates))), "learning_rate": learning_rates, "loss": []}}
    final_lr = learning_rates[-1] if final_lr is None else final_lr
    run = {"eval_accuracy": accuracy, "final_lr": final_lr, "drops": drops, "trace": trace}
    (folder / f"{name}.json").write_text(json.dumps(run))


def test_tables_average_over_seeds_and_count_lr_reductions(tmp_path: Path) -> None:
    _write_run(tmp_path, "rte_autodrop_seed1", 0.50, [5e-5, 2.5e-5], drops=1)
    _write_run(tmp_path, "rte_autodrop_seed2", 0.60, [5e-5, 5e-5], drops=0)
    _write_run(tmp_path, "rte_linear_seed1", 0.55, [5e-5, 4e-5, 3e-5])
    _write_run(tmp_path, "rte_reduce_lr_on_plateau_seed1", 0.58, [5e-5, 2.5e-5, 2.5e-5, 1.25e-5], final_lr=6.25e-6)
    runs = aggregate.load_runs(tmp_path)
    by_variant = {(r["variant"], r["seed"]): r for r in runs}
    assert by_variant[("reduce_lr_on_plateau", 1)]["drops"] == 3  # two logged decreases, one after the last log
    assert "drops" not in by_variant[("linear", 1)]  # a fixed schedule decays; it does not drop
    table = aggregate.quality_table(runs).splitlines()
    assert [row.split(" | ")[1] for row in table[2:]] == ["autodrop", "linear", "reduce_lr_on_plateau"]
    expected = f"{statistics.fmean([0.5, 0.6]):.4g} ± {statistics.stdev([0.5, 0.6]):.2g}"
    assert table[2].startswith(f"| rte | autodrop | 2 | {expected} |")
    assert len(aggregate.runs_table(runs).splitlines()) == 2 + 4
    headline = aggregate.headline_table(runs).splitlines()
    assert headline[0] == "| variant | rte eval_accuracy |"
    assert headline[2] == f"| autodrop | {expected} (2) |"


def test_run_files_must_be_named_data_variant_seed(tmp_path: Path) -> None:
    (tmp_path / "rte_autodrop.json").write_text("{}")
    with pytest.raises(ValueError, match="<data>_<variant>_seed<N>"):
        aggregate.load_runs(tmp_path)


def test_collect_run_keeps_results_and_traces(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"eval_accuracy": 0.7, "drops": 1}))
    log = [
        {"step": 10, "learning_rate": 5e-5, "loss": 0.69},
        {"step": 10, "eval_loss": 0.6, "eval_accuracy": 0.7},
        {"step": 20, "learning_rate": 2.5e-5, "loss": 0.5},
    ]
    (out / "trainer_state.json").write_text(json.dumps({"log_history": log}))
    history = [
        {"step": 8, "angle": None, "smoothed": None, "dropped": False},
        {"step": 12, "angle": 80.0, "smoothed": None, "dropped": False},
        {"step": 16, "angle": 85.0, "smoothed": 84.0, "dropped": True},
    ]
    (out / "autodrop_history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    trace = collect_run.trace_of(out)
    assert trace["train"] == {"step": [10, 20], "learning_rate": [5e-5, 2.5e-5], "loss": [0.69, 0.5]}
    assert trace["eval"] == {"step": [10], "eval_loss": [0.6]}
    assert trace["autodrop"] == {"step": [12, 16], "angle": [80.0, 85.0], "smoothed": [None, 84.0], "drop_steps": [16]}
