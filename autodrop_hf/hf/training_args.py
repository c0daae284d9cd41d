"""``TrainingArguments`` that accept ``lr_scheduler_type="autodrop"`` and AutoDrop's flags.

The ``autodrop_*`` fields are generated from :class:`~autodrop_hf.AutoDropConfig`'s fields: a new
hyper-parameter is one edit there. Every field defaults to ``None`` ("the preset's value"), so that
``--autodrop_preset paper --autodrop_window_size 8`` means the paper's rule with windows of 8 steps.
"""

from __future__ import annotations

import argparse
import json
import typing
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any

from transformers import Seq2SeqTrainingArguments, TrainingArguments
from transformers.trainer_utils import SchedulerType

from ..core.config import AutoDropConfig

#: The scheduler name that selects AutoDrop (linear warm-up, then drops on saturation).
AUTODROP_SCHEDULER = "autodrop"
#: The presets ``--autodrop_preset`` accepts.
PRESETS = ("default", "anytime", "anytime_average", "paper")


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


def _command_line_type(name: str) -> type:
    """What argparse parses a flag with: ``bool`` for a switch, ``str`` for the test's name (a choice), else a
    type that parses the value as :class:`AutoDropConfig` takes it and checks it, so that a bad value stops the
    command line with argparse's message naming the flag (``argument --autodrop_window_size: ...``)."""
    resolved = typing.get_type_hints(AutoDropConfig)[name]
    if resolved is bool or name == "saturation_test":
        return resolved if resolved is bool else str

    def parse(cls: type, text: str) -> Any:
        try:
            value = _parse_flag(name, text)
            (AutoDropConfig.paper if name == "threshold" else AutoDropConfig)(**{name: value})
        except (TypeError, ValueError) as error:  # a JSON list that does not parse is a ValueError too
            raise argparse.ArgumentTypeError(str(error)) from None
        return value

    return type(f"autodrop_{name}", (str,), {"__new__": parse, "__doc__": f"A value of AutoDrop's {name}."})


def _flag(config_field: Any) -> tuple[str, Any, Any]:
    default = getattr(AutoDropConfig(), config_field.name)
    if isinstance(default, tuple):
        default = list(default)
    # One default in --help: argparse's "(default: None)" would name the field's None ("the preset's value");
    # a help text that formats %(default) (here to nothing) is left as it is.
    help_text = f"AutoDrop: {config_field.metadata['help']} Default: {default} (a preset may differ).%(default).0s"
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
        refused = f"min_lr must be a number, or a list of them such as [1e-6, 1e-5], got {text!r}."
        try:
            parts = json.loads(text) if text.startswith("[") else text.split(",")
        except json.JSONDecodeError:
            raise ValueError(refused) from None
        if not isinstance(parts, list):
            raise ValueError(refused)
        return [_parse_number(name, part) for part in parts]
    return _parse_number(name, text)


def _parse_number(name: str, text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        number = float(text)
    except ValueError:
        return text  # AutoDropConfig names the field and what it accepts
    whole = typing.get_type_hints(AutoDropConfig)[name] in (int, int | typing.Literal["auto", "growing"])
    return int(number) if whole and number.is_integer() else number


@dataclass
class _AutoDropArgumentsBase:
    """The fields AutoDrop adds to Hugging Face's training arguments.

    ``lr_scheduler_type`` is redeclared because the stock field is a closed enum: it accepts
    ``"autodrop"`` besides every :class:`~transformers.SchedulerType` name. ``autodrop_preset`` picks
    the defaults (``"default"``: the library's rule; ``"anytime"``: the horizon-free rule; ``"paper"``: the
    paper's), and the ``autodrop_*`` fields, :class:`~autodrop_hf.AutoDropConfig`'s hyper-parameters, override
    single values; with ``lr_scheduler_type="autodrop"``, keys of ``lr_scheduler_kwargs`` named like them
    (``{"drop_factor": 0.9}``, or ``{"preset": "paper"}``) give them too, as for any Hugging Face schedule (the
    same value twice is refused unless it agrees). With another schedule ``lr_scheduler_kwargs`` stays as a stock
    Trainer has it, unless an :class:`~autodrop_hf.AutoDropCallback` joins the Trainer and takes AutoDrop's keys
    (:func:`~autodrop_hf.hf.scheduler_kwargs.split_scheduler_kwargs`).
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
        # another schedule keeps its lr_scheduler_kwargs as a stock Trainer would: an AutoDropCallback, if one
        # is added, takes AutoDrop's keys out of them when it joins the Trainer
        self.autodrop_config()  # fail now, with AutoDropConfig's message, not at train()

    def set_lr_scheduler(self, name: str = "linear", **kwargs: Any) -> Any:
        if schedule_value(name) != AUTODROP_SCHEDULER:
            return super().set_lr_scheduler(name=name, **kwargs)
        super().set_lr_scheduler(name=SchedulerType.CONSTANT_WITH_WARMUP, **kwargs)
        self.lr_scheduler_type = AutoDropSchedulerName(AUTODROP_SCHEDULER)
        return self

    def autodrop_config(self, scheduler_kwargs: dict[str, Any] | None = None) -> AutoDropConfig:
        """The :class:`~autodrop_hf.AutoDropConfig` these arguments describe: the preset, the ``autodrop_*``
        fields, and AutoDrop's keys of ``lr_scheduler_kwargs`` (with ``lr_scheduler_type="autodrop"`` all of
        them; with another schedule ``scheduler_kwargs``, the keys :class:`~autodrop_hf.AutoDropCallback` took).
        A value given both as a flag and as a key is refused unless they agree."""
        values = {
            name: _parse_flag(name, getattr(self, f"autodrop_{name}"))
            for name in AutoDropConfig.field_names()
            if getattr(self, f"autodrop_{name}") is not None
        }
        overrides = dict(self.lr_scheduler_kwargs or {}) if uses_autodrop(self) else dict(scheduler_kwargs or {})
        unknown = sorted(set(overrides) - {*AutoDropConfig.field_names(), "preset"})
        if unknown:
            raise ValueError(
                f"lr_scheduler_kwargs {unknown} are not AutoDrop hyper-parameters; "
                f"use {AutoDropConfig.field_names()} or 'preset'."
            )
        preset = overrides.pop("preset", self.autodrop_preset)
        if preset != self.autodrop_preset and self.autodrop_preset != "default":
            raise ValueError(
                f"--autodrop_preset {self.autodrop_preset} and lr_scheduler_kwargs {{'preset': {preset!r}}} disagree: "
                "give the preset once."
            )
        for name, value in overrides.items():
            if name in values and values[name] != value:
                raise ValueError(
                    f"--autodrop_{name} {getattr(self, f'autodrop_{name}')} and lr_scheduler_kwargs "
                    f"{{{name!r}: {value!r}}} disagree: give AutoDrop's {name} once."
                )
        return AutoDropConfig.preset(preset, **{**values, **overrides})


@dataclass
class AutoDropTrainingArguments(AutoDropArgumentsMixin, TrainingArguments):
    """:class:`~transformers.TrainingArguments` with ``lr_scheduler_type="autodrop"`` and the
    ``autodrop_*`` hyper-parameters (see :class:`AutoDropArgumentsMixin`)."""


@dataclass
class AutoDropSeq2SeqTrainingArguments(AutoDropArgumentsMixin, Seq2SeqTrainingArguments):
    """:class:`~transformers.Seq2SeqTrainingArguments` with AutoDrop (see :class:`AutoDropArgumentsMixin`)."""
