"""``TrainingArguments`` that accept ``lr_scheduler_type="autodrop"`` and AutoDrop's flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import Seq2SeqTrainingArguments, TrainingArguments
from transformers.trainer_utils import SchedulerType

from ..core.config import AutoDropConfig

#: The scheduler name that selects AutoDrop (linear warm-up, then drops on saturation).
AUTODROP_SCHEDULER = "autodrop"
_DEFAULTS = AutoDropConfig()


def uses_autodrop(args: Any) -> bool:
    """Whether training arguments ask for the AutoDrop schedule."""
    return getattr(args, "lr_scheduler_type", None) == AUTODROP_SCHEDULER


def _flag(name: str, default: Any) -> Any:
    return field(default=default, metadata={"help": f"AutoDrop: {AutoDropConfig.help(name)}"})


@dataclass
class AutoDropArgumentsMixin:
    """The fields AutoDrop adds to Hugging Face's training arguments.

    ``lr_scheduler_type`` is redeclared because the stock field is a closed enum: it accepts
    ``"autodrop"`` besides every :class:`~transformers.SchedulerType` name. The ``autodrop_*``
    fields are :class:`~autodrop_hf.AutoDropConfig`'s hyper-parameters; with
    ``lr_scheduler_type="autodrop"``, keys of ``lr_scheduler_kwargs`` named like them
    (``{"drop_factor": 0.9}``) override them, as for any Hugging Face schedule.
    """

    lr_scheduler_type: str = field(
        default="linear",
        metadata={
            "help": "The learning rate scheduler: 'autodrop' (linear warm-up, then AutoDrop) or any "
            "Hugging Face scheduler name.",
            "choices": [AUTODROP_SCHEDULER, *(s.value for s in SchedulerType)],
        },
    )
    autodrop_window_size: str = _flag("window_size", str(_DEFAULTS.window_size))
    autodrop_drop_factor: float = _flag("drop_factor", _DEFAULTS.drop_factor)
    autodrop_buffer_size: int = _flag("buffer_size", _DEFAULTS.buffer_size)
    autodrop_threshold: float = _flag("threshold", _DEFAULTS.threshold)
    autodrop_min_lr: float = _flag("min_lr", _DEFAULTS.min_lr)

    def __post_init__(self) -> None:
        requested = getattr(self.lr_scheduler_type, "value", self.lr_scheduler_type)
        if requested == AUTODROP_SCHEDULER:
            # The parent validates the name against its enum: let it see a valid one.
            self.lr_scheduler_type = SchedulerType.CONSTANT_WITH_WARMUP
        super().__post_init__()
        if requested == AUTODROP_SCHEDULER:
            self.lr_scheduler_type = AUTODROP_SCHEDULER
        self.autodrop_config()  # fail now, with AutoDropConfig's message, not at train()

    def set_lr_scheduler(self, name: str = "linear", **kwargs: Any) -> Any:
        if name != AUTODROP_SCHEDULER:
            return super().set_lr_scheduler(name=name, **kwargs)
        super().set_lr_scheduler(name=SchedulerType.CONSTANT_WITH_WARMUP, **kwargs)
        self.lr_scheduler_type = AUTODROP_SCHEDULER
        return self

    def autodrop_config(self) -> AutoDropConfig:
        """The :class:`~autodrop_hf.AutoDropConfig` these arguments describe."""
        window = self.autodrop_window_size
        if isinstance(window, str) and window.strip().isdigit():
            window = int(window)
        values: dict[str, Any] = {
            "window_size": window,
            "drop_factor": self.autodrop_drop_factor,
            "buffer_size": self.autodrop_buffer_size,
            "threshold": self.autodrop_threshold,
            "min_lr": self.autodrop_min_lr,
        }
        if uses_autodrop(self) and self.lr_scheduler_kwargs:
            unknown = sorted(set(self.lr_scheduler_kwargs) - set(values))
            if unknown:
                raise ValueError(
                    f"lr_scheduler_kwargs {unknown} are not AutoDrop hyper-parameters; "
                    f"use {AutoDropConfig.field_names()}."
                )
            values.update(self.lr_scheduler_kwargs)
        return AutoDropConfig(**values)


@dataclass
class AutoDropTrainingArguments(AutoDropArgumentsMixin, TrainingArguments):
    """:class:`~transformers.TrainingArguments` with ``lr_scheduler_type="autodrop"`` and the
    ``autodrop_*`` hyper-parameters (see :class:`AutoDropArgumentsMixin`)."""


@dataclass
class AutoDropSeq2SeqTrainingArguments(AutoDropArgumentsMixin, Seq2SeqTrainingArguments):
    """:class:`~transformers.Seq2SeqTrainingArguments` with AutoDrop (see :class:`AutoDropArgumentsMixin`)."""
