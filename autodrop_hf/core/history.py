"""The history file: one JSON line per AutoDrop window, the record :meth:`AutoDrop.step` returns.

Written by the Trainer callback (``output_dir/autodrop_history.jsonl``) or by ``AutoDrop(history_file=...)``
in a plain loop; read by ``autodrop-hf plot``, the examples and the benchmarks. Keys of a record:

- ``step``: optimizer step at which the window ended;
- ``angle``: the angular velocity in degrees (``null`` until three windows exist);
- ``noise_floor``: the angle pure gradient noise gives at this window size and momentum, in degrees;
- ``statistic``: at a decision, the test's statistic (``null`` between decisions);
- ``variance_ratio``: at a decision with ``drift_ratio``, the variance ratio of its displacements (``null`` otherwise);
- ``smoothed``: the Gaussian-smoothed angle of the paper's test (``null`` otherwise);
- ``lr``: the learning rate of the first parameter group from the next step on;
- ``lr_scale``: the product of the drops so far;
- ``dropped``: whether this window ended with a drop;
- ``done``: whether AutoDrop has said that training is done (from that window on);
- ``window``: the window size in optimizer steps (it grows with the horizon-free rule);
- ``boundary``: where the statistic turns a decision from hold to drop (``-drift_z``, or the paper's threshold).

A crash in the middle of a write leaves a partial last line: readers drop it with one warning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .user_warnings import warn

#: File name of the history in a Trainer's ``output_dir``.
HISTORY_FILE = "autodrop_history.jsonl"


def append_record(path: str | Path, record: dict[str, Any]) -> None:
    """Append one record as a JSON line (strict JSON: no NaN)."""
    with open(path, "a", encoding="utf-8") as history:
        history.write(json.dumps(record, allow_nan=False) + "\n")


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a history file. A blank or partial last line (a crash during a write) is left
    out with a warning; a bad line before it raises ``ValueError`` naming the file and line."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if any(rest.strip() for rest in lines[number:]):
                raise ValueError(f"{path}, line {number}: not a JSON record ({error}).") from None
            warn(
                f"{path}: the last line is incomplete (a run stopped while writing it); it is left out.",
                UserWarning,
            )
    return records


def truncate_history(path: str | Path, last_step: int) -> None:
    """Keep the records up to ``last_step`` (the step a resumed run starts from); none when it is 0."""
    path = Path(path)
    kept = [r for r in read_history(path) if r["step"] <= last_step] if last_step > 0 and path.exists() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in kept), encoding="utf-8")


def resume_history(path: str | Path, last_step: int) -> None:
    """:func:`truncate_history` for a resumed run. The file is a log, not state: one that cannot be read (not
    UTF-8, a damaged line) or cut is said, and a fresh log replaces it; it never stops the resume."""
    try:
        truncate_history(path, last_step)
    except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        warn(f"AutoDrop could not cut {path} at step {last_step} ({error}): starting a fresh history there.")
        Path(path).write_text("", encoding="utf-8")
