"""``TrainingArguments`` that accept ``lr_scheduler_type="autodrop"`` and AutoDrop's flags.

The ``autodrop_*`` fields are generated from :class:`~autodrop_hf.AutoDropConfig`'s fields: a new
hyper-parameter is one edit there. Every field defaults to ``None`` ("the preset's value"), so that
``--autodrop_preset paper --autodrop_window_size 8`` means the paper's rule with windows of 8 steps.
"""

from __future__ import annotations

import importlib
import inspect
import json
import typing
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any

from transformers import Seq2SeqTrainingArguments, TrainingArguments
from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION
from transformers.trainer_utils import SchedulerType

from ..core.config import AutoDropConfig

#: The scheduler name that selects AutoDrop (linear warm-up, then drops on saturation).
AUTODROP_SCHEDULER = "autodrop"
#: The presets ``--autodrop_preset`` accepts.
PRESETS = ("default", "anytime", "paper")


class AutoDropSchedulerName(str):
    """The string ``"autodrop"`` with the ``.value`` of a :class:`~transformers.SchedulerType` member, for the
    code of Transformers that reads ``args.lr_scheduler_type.value`` (the model card, ``push_to_hub``)."""

    @property
    def value(self) -> str:
        return str(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (AutoDropSchedulerName, (str(self),))


def schedule_value(name: Any) -> str:
    """A scheduler name as a plain string, whether it is a ``SchedulerType`` member or a string."""
    return getattr(name, "value", name)


def scheduler_name(args: Any) -> str:
    """``args.lr_scheduler_type`` as a plain string."""
    return schedule_value(getattr(args, "lr_scheduler_type", None))


def uses_autodrop(args: Any) -> bool:
    """Whether training arguments ask for the AutoDrop schedule."""
    return scheduler_name(args) == AUTODROP_SCHEDULER


def take_autodrop_scheduler_kwargs(args: Any) -> dict[str, Any]:
    """Take AutoDrop's hyper-parameters out of ``args.lr_scheduler_kwargs`` (for a Hugging Face schedule, which
    would refuse them) and return them by :class:`~autodrop_hf.AutoDropConfig` name, ``"preset"`` included.

    ``autodrop_<name>`` always means AutoDrop's ``<name>``; a bare ``<name>`` (and ``preset``) too, unless
    the configured schedule takes an argument of that name itself (``min_lr`` for ``cosine_with_min_lr``, or
    ``ReduceLROnPlateau``'s ``threshold``). What was taken is remembered on ``args``, so that every Trainer
    built with the same arguments gets the same values.
    """
    kwargs = dict(args.lr_scheduler_kwargs or {})
    schedule_takes = _schedule_arguments(scheduler_name(args))
    names = set(AutoDropConfig.field_names()) | {"preset"}
    values = dict(args.__dict__.get(_TAKEN, {}))
    for key in list(kwargs):
        name = key.removeprefix("autodrop_")
        if name in names and (key != name or (schedule_takes is not None and key not in schedule_takes)):
            values[name] = kwargs.pop(key)
    if values:
        args.lr_scheduler_kwargs = kwargs
        args.__dict__[_TAKEN] = values
    return dict(values)


#: Where :func:`take_autodrop_scheduler_kwargs` leaves what it took (an attribute, not a field: not serialised).
_TAKEN = "_autodrop_scheduler_kwargs"
#: The classes the Hugging Face schedules declared with ``**kwargs`` pass those keywords to.
_KEYWORD_SCHEDULES = {"reduce_lr_on_plateau": "torch.optim.lr_scheduler.ReduceLROnPlateau",
                      "greedy": "transformers.optimization.GreedyLR"}  # fmt: skip


def _schedule_arguments(name: str) -> set[str] | None:
    """The keyword arguments a Hugging Face schedule takes; ``None``: any name (``**kwargs`` passed on to a
    class this module does not know)."""
    try:
        function = TYPE_TO_SCHEDULER_FUNCTION[SchedulerType(name)]
    except (ValueError, KeyError):
        return set()
    parameters = inspect.signature(function).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return set(parameters)
    if name not in _KEYWORD_SCHEDULES:
        return None
    module, _, cls = _KEYWORD_SCHEDULES[name].rpartition(".")
    return set(parameters) | set(inspect.signature(getattr(importlib.import_module(module), cls)).parameters)


def _command_line_type(annotation: str) -> type:
    """The type a flag is parsed as: unions ("auto" or a number, one or several floors) are strings."""
    resolved = typing.get_type_hints(AutoDropConfig)[annotation]
    return resolved if resolved in (int, float, bool) else str


def _flag(config_field: Any) -> tuple[str, Any, Any]:
    default = getattr(AutoDropConfig(), config_field.name)
    if isinstance(default, tuple):
        default = list(default)
    help_text = f"AutoDrop: {config_field.metadata['help']} Default: {default} (the paper preset may differ)."
    flag_type = _command_line_type(config_field.name)
    metadata = {"help": help_text}
    if config_field.name == "saturation_test":
        metadata["choices"] = ["noise_floor", "smoothed_change"]
    if flag_type is bool:  # --autodrop_stop_when_done alone means true, as Hugging Face's own switches
        metadata.update(nargs="?", const=True)
    return f"autodrop_{config_field.name}", flag_type | None, field(default=None, metadata=metadata)


def _parse_flag(name: str, value: Any) -> Any:
    """A flag's value as :class:`AutoDropConfig` takes it: numbers from strings, lists from JSON or commas."""
    if not isinstance(value, str) or name == "saturation_test":
        return value
    text = value.strip()
    if text in ("auto", "growing", "linear", "power"):
        return text
    if name == "min_lr" and ("," in text or text.startswith("[")):
        parts = json.loads(text) if text.startswith("[") else text.split(",")
        return [_parse_number(name, part) for part in parts]
    return _parse_number(name, text)


def _parse_number(name: str, text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        number = float(text)
    except ValueError:
        return text  # AutoDropConfig names the field and what it accepts
    return int(number) if number.is_integer() and name == "window_size" else number


@dataclass
class _AutoDropArgumentsBase:
    """The fields AutoDrop adds to Hugging Face's training arguments.

    ``lr_scheduler_type`` is redeclared because the stock field is a closed enum: it accepts
    ``"autodrop"`` besides every :class:`~transformers.SchedulerType` name. ``autodrop_preset`` picks
    the defaults (``"default"``: the library's rule; ``"paper"``: the paper's), and the ``autodrop_*``
    fields, :class:`~autodrop_hf.AutoDropConfig`'s hyper-parameters, override single values; with
    ``lr_scheduler_type="autodrop"``, keys of ``lr_scheduler_kwargs`` named like them
    (``{"drop_factor": 0.9}``, or ``{"preset": "paper"}``) override them too, as for any Hugging Face schedule;
    with another schedule (for :class:`~autodrop_hf.AutoDropCallback`), its AutoDrop keys
    (:func:`take_autodrop_scheduler_kwargs`) move into these fields at construction and the rest stays for it.
    """

    lr_scheduler_type: str = field(
        default="linear",
        metadata={
            "help": "The learning rate scheduler: 'autodrop' (linear warm-up, then AutoDrop) or any "
            "Hugging Face scheduler name.",
            "choices": [AUTODROP_SCHEDULER, *(s.value for s in SchedulerType)],
        },
    )
    autodrop_preset: str = field(
        default="default",
        metadata={
            "help": "AutoDrop: 'default' (the library's rule), 'anytime' (the horizon-free rule: growing windows, "
            "inverse-square-root stairs) or 'paper' (the paper's).",
            "choices": PRESETS,
        },
    )


_AutoDropFields = make_dataclass(
    "_AutoDropFields", [_flag(f) for f in fields(AutoDropConfig)], bases=(_AutoDropArgumentsBase,)
)


@dataclass
class AutoDropArgumentsMixin(_AutoDropFields):
    __doc__ = _AutoDropArgumentsBase.__doc__

    def __post_init__(self) -> None:
        requested = scheduler_name(self)
        if requested == AUTODROP_SCHEDULER:
            # The parent validates the name against its enum: let it see a valid one.
            self.lr_scheduler_type = SchedulerType.CONSTANT_WITH_WARMUP
        super().__post_init__()
        if requested == AUTODROP_SCHEDULER:
            self.lr_scheduler_type = AutoDropSchedulerName(AUTODROP_SCHEDULER)
        else:  # another schedule: its lr_scheduler_kwargs may hold AutoDrop's values for AutoDropCallback
            for name, value in take_autodrop_scheduler_kwargs(self).items():
                setattr(self, f"autodrop_{name}", value)
        self.autodrop_config()  # fail now, with AutoDropConfig's message, not at train()

    def set_lr_scheduler(self, name: str = "linear", **kwargs: Any) -> Any:
        if schedule_value(name) != AUTODROP_SCHEDULER:
            return super().set_lr_scheduler(name=name, **kwargs)
        super().set_lr_scheduler(name=SchedulerType.CONSTANT_WITH_WARMUP, **kwargs)
        self.lr_scheduler_type = AutoDropSchedulerName(AUTODROP_SCHEDULER)
        return self

    def autodrop_config(self) -> AutoDropConfig:
        """The :class:`~autodrop_hf.AutoDropConfig` these arguments describe."""
        values = {
            name: _parse_flag(name, getattr(self, f"autodrop_{name}"))
            for name in AutoDropConfig.field_names()
            if getattr(self, f"autodrop_{name}") is not None
        }
        preset = self.autodrop_preset
        if uses_autodrop(self) and self.lr_scheduler_kwargs:
            overrides = dict(self.lr_scheduler_kwargs)
            preset = overrides.pop("preset", preset)
            unknown = sorted(set(overrides) - set(AutoDropConfig.field_names()))
            if unknown:
                raise ValueError(
                    f"lr_scheduler_kwargs {unknown} are not AutoDrop hyper-parameters; "
                    f"use {AutoDropConfig.field_names()} or 'preset'."
                )
            values.update(overrides)
        return AutoDropConfig.preset(preset, **values)


@dataclass
class AutoDropTrainingArguments(AutoDropArgumentsMixin, TrainingArguments):
    """:class:`~transformers.TrainingArguments` with ``lr_scheduler_type="autodrop"`` and the
    ``autodrop_*`` hyper-parameters (see :class:`AutoDropArgumentsMixin`)."""


@dataclass
class AutoDropSeq2SeqTrainingArguments(AutoDropArgumentsMixin, Seq2SeqTrainingArguments):
    """:class:`~transformers.Seq2SeqTrainingArguments` with AutoDrop (see :class:`AutoDropArgumentsMixin`)."""
