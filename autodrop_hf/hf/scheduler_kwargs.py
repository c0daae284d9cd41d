"""Which keys of ``lr_scheduler_kwargs`` are AutoDrop's, and which belong to the Hugging Face schedule."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION
from transformers.trainer_utils import SchedulerType

from ..core.config import AutoDropConfig

#: The Hugging Face schedules declared with ``**kwargs``, and the class each passes those keywords to. A test
#: fails when Transformers declares another one.
KEYWORD_SCHEDULES = {
    "reduce_lr_on_plateau": "torch.optim.lr_scheduler.ReduceLROnPlateau",
    "greedy": "transformers.optimization.GreedyLR",
}


def schedule_arguments(schedule: str) -> set[str] | None:
    """The keyword arguments the Hugging Face schedule named ``schedule`` takes: an empty set for a name
    Transformers does not know, ``None`` for any name (``**kwargs`` passed on to a class not listed in
    :data:`KEYWORD_SCHEDULES`)."""
    try:
        function = TYPE_TO_SCHEDULER_FUNCTION[SchedulerType(schedule)]
    except (ValueError, KeyError):
        return set()
    parameters = inspect.signature(function).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return set(parameters)
    if schedule not in KEYWORD_SCHEDULES:
        return None
    module, _, cls = KEYWORD_SCHEDULES[schedule].rpartition(".")
    return set(parameters) | set(inspect.signature(getattr(importlib.import_module(module), cls)).parameters)


def split_scheduler_kwargs(schedule: str, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a Hugging Face schedule's ``lr_scheduler_kwargs`` into AutoDrop's hyper-parameters (by
    :class:`~autodrop_hf.AutoDropConfig` name, ``"preset"`` included) and the schedule's own keywords.

    ``autodrop_<name>`` always means AutoDrop's ``<name>``; a bare ``<name>`` (and ``preset``) too, unless the
    schedule takes an argument of that name itself (``min_lr`` for ``cosine_with_min_lr``, or
    ``ReduceLROnPlateau``'s ``threshold``). Neither argument is changed.
    """
    schedule_takes = schedule_arguments(schedule)
    names = {*AutoDropConfig.field_names(), "preset"}
    autodrop: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in kwargs.items():
        name = key.removeprefix("autodrop_")
        if name in names and (key != name or (schedule_takes is not None and key not in schedule_takes)):
            autodrop[name] = value
        else:
            rest[key] = value
    return autodrop, rest
