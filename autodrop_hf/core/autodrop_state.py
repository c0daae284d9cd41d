"""The checks an :meth:`~autodrop_hf.AutoDrop.state_dict` passes before a load changes anything."""

from __future__ import annotations

import math
import reprlib
from typing import Any, NamedTuple

import torch

from .angular_velocity import WindowPhase


class AngleRecord(NamedTuple):
    """One angle of :attr:`AutoDrop.angles` (or a smoothed angle of :attr:`AutoDrop.smoothed`)."""

    step: int  #: the optimizer step whose window end gave it
    degrees: float


class Decision(NamedTuple):
    """One decision of :attr:`AutoDrop.decisions`."""

    step: int  #: the optimizer step it was taken at
    statistic: float  #: the noise-floor test's z (standard errors); the paper's test: the smoothed angle's change
    saturated: bool  #: no progress found: a drop, unless the learning rate is at its floor


def validated_state(state: dict[str, Any]) -> dict[str, Any]:
    """The plain values of an :meth:`AutoDrop.state_dict`, checked; ``ValueError`` names a bad field."""

    if not isinstance(state, dict):
        raise ValueError(f"an AutoDrop state is a dict (AutoDrop.state_dict()), got {type(state).__name__}.")

    def field(name: str, check, message: str) -> Any:
        if name not in state:
            raise ValueError(f"AutoDrop state has no {name!r}: it is not an AutoDrop.state_dict().")
        try:
            value = check(state[name])
        except (TypeError, ValueError, KeyError, AttributeError):
            value = None
        if value is None:
            raise ValueError(f"AutoDrop state field {name!r} is invalid ({reprlib.repr(state[name])}): {message}.")
        return value

    def count(value: Any) -> int | None:
        return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    def scale(value: Any) -> float | None:
        value = float(value)
        return value if math.isfinite(value) and 0 <= value <= 1 else None

    def records(value: Any) -> list[AngleRecord] | None:
        pairs = [AngleRecord(int(s), float(a)) for s, a in value]
        return pairs if all(0.0 <= a <= 180.0 for _, a in pairs) else None  # degrees

    def decisions(value: Any) -> list[Decision] | None:
        return [Decision(int(s), float(z), bool(d)) for s, z, d in value]

    values = {
        "config": field("config", lambda v: v if isinstance(v, dict) else None, "a dict of hyper-parameters"),
        "num_steps": field("num_steps", count, "an integer >= 0"),
        "scale": field("scale", scale, "a number in [0, 1]"),
        "angles": field("angles", records, "a list of (step, degrees in [0, 180])"),
        "smoothed": field("smoothed", records, "a list of (step, degrees in [0, 180])"),
        "decisions": field("decisions", decisions, "a list of (step, statistic, saturated)"),
        "drops": field("drops", lambda v: [int(s) for s in v], "a list of steps"),
    }
    warmup = state.get("num_warmup_steps")
    values["num_warmup_steps"] = None if warmup is None else field("num_warmup_steps", count, "an integer >= 0")
    done = state.get("done_step")  # states from before the done signal have none
    values["done_step"] = None if done is None else field("done_step", count, "None or an integer >= 0")
    field("parameters", lambda v: [list(map(int, shape)) for shape in v], "a list of tensor shapes")
    field("test", _test_state, "the test's state: 'buffer', a list of degrees (and 'previous_smoothed')")
    field("angular_velocity", _meter_state, "the windows' state (window_size, steps_in_window, phase, buffers)")
    return values


def _test_state(value: Any) -> dict[str, Any] | None:
    """A saturation test's state: angles in ``buffer`` (degrees, in [0, 180]); ``previous_smoothed`` one or ``None``."""
    previous = value.get("previous_smoothed")
    degrees = [float(a) for a in value["buffer"]] + ([] if previous is None else [float(previous)])
    return value if all(0.0 <= a <= 180.0 for a in degrees) else None


def _meter_state(value: Any) -> dict[str, Any] | None:
    """A window meter's state: counts, a known phase, and finite float tensors where they are read."""
    window, steps = value["window_size"], value["steps_in_window"]
    if not (isinstance(window, int) and isinstance(steps, int) and window >= 1 and 0 <= steps < window):
        return None
    phase = WindowPhase(value["phase"])
    buffers = {name: list(value[name]) for name in ("reference", "window_sum", "previous")}
    if not all(isinstance(t, torch.Tensor) and t.is_floating_point() for ts in buffers.values() for t in ts):
        return None
    versions = value.get("buffer_versions")  # states from before it have none
    count = sum(len(ts) for ts in buffers.values())
    if versions is not None and not (isinstance(versions, list) and len(versions) == count):
        return None
    if not isinstance(value["warned_skip"], bool):
        return None
    read = {"reference": phase is not WindowPhase.EMPTY, "previous": phase is WindowPhase.MEASURING}
    if any(not bool(torch.isfinite(t).all()) for name, needed in read.items() if needed for t in buffers[name]):
        return None  # NaN where the next window reads: the detector would never give an angle again
    return value
