"""Copy one finished run into benchmarks/results/: its ``results.json`` plus the traces the plots need.

python benchmarks/collect_run.py OUTPUT_DIR benchmarks/results/glue/rte_autodrop_seed42.json

The written file is ``results.json`` with a ``trace`` entry: the logged learning rate and training
loss (``trainer_state.json``), the evaluation loss, and for AutoDrop runs the angular velocity in
degrees, its noise floor, the smoothed value (paper's test), the drop steps and every decision's
statistic (``autodrop_history.jsonl``). Output folders hold checkpoints and are not committed; these
files are.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from autodrop_hf.core.history import HISTORY_FILE, read_history


def _columns(entries: list[dict], keys: tuple[str, ...]) -> dict[str, list]:
    return {key: [entry.get(key) for entry in entries] for key in keys}


def trace_of(output_dir: Path) -> dict[str, dict[str, list]]:
    """Step-indexed series of one run (steps are optimizer steps)."""
    trace: dict[str, dict[str, list]] = {}
    state_file = output_dir / "trainer_state.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        log = state["log_history"]
        trace["max_steps"] = state.get("max_steps")
        trace["train"] = _columns([e for e in log if "learning_rate" in e], ("step", "learning_rate", "loss"))
        evals = [e for e in log if "eval_loss" in e]
        metrics = sorted(
            {k for e in evals for k in e if k.startswith("eval_") and not k.endswith(("_runtime", "_second"))}
        )
        trace["eval"] = _columns(evals, ("step", *metrics))
    history_file = output_dir / HISTORY_FILE
    if history_file.exists():
        history = read_history(history_file)
        measured = [h for h in history if h["angle"] is not None]
        trace["autodrop"] = _columns(measured, ("step", "angle"))
        trace["autodrop"]["noise_floor"] = next((h.get("noise_floor") for h in history), None)
        trace["autodrop"]["smoothed"] = [h.get("smoothed") for h in measured]
        trace["autodrop"]["drop_steps"] = [h["step"] for h in history if h["dropped"]]
        trace["autodrop"]["done"] = next((h["step"] for h in history if h.get("done")), None)
        trace["autodrop"]["decisions"] = _columns(
            [h for h in history if h.get("statistic") is not None], ("step", "statistic", "variance_ratio", "dropped")
        )
    return trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path, help="the run's --output_dir")
    parser.add_argument("destination", type=Path, help="the JSON file to write (its .png sibling gets the plot)")
    args = parser.parse_args()
    results = json.loads((args.output_dir / "results.json").read_text())
    args.destination.parent.mkdir(parents=True, exist_ok=True)
    args.destination.write_text(json.dumps({**results, "trace": trace_of(args.output_dir)}) + "\n")
    plot = args.output_dir / "autodrop.png"
    if plot.exists():
        shutil.copyfile(plot, args.destination.with_suffix(".png"))


if __name__ == "__main__":
    main()
