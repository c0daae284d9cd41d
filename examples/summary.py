"""The end-of-run summary the examples print: one Markdown row, ``results.json`` and the plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autodrop_hf.core.history import HISTORY_FILE, read_history


def summarize_run(output_dir: str | Path, row: dict[str, Any], autodrop_ran: bool) -> dict[str, Any]:
    """Add ``drops`` (counted in the AutoDrop history when AutoDrop ran, else 0) to ``row``, print it as a
    Markdown table, write it to ``output_dir/results.json``, and plot the run when AutoDrop ran. (A history
    left in ``output_dir`` by an earlier AutoDrop run is not this run's.)"""
    history = Path(output_dir) / HISTORY_FILE
    autodrop_ran = autodrop_ran and history.exists()
    drops = sum(record["dropped"] for record in read_history(history)) if autodrop_ran else 0
    row = {**row, "drops": drops}
    values = " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values())
    print(f"\n| {' | '.join(row)} |\n|{'---|' * len(row)}\n| {values} |")
    Path(output_dir, "results.json").write_text(json.dumps(row, indent=2) + "\n")
    if autodrop_ran:
        from autodrop_hf.tools.plot import plot_run

        print(f"plot: {plot_run(output_dir)}")
    return row
