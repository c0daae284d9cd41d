"""``Trainer`` subclasses whose ``lr_scheduler_type="autodrop"`` means linear warm-up × AutoDrop."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Seq2SeqTrainer, Trainer

from ..core.scheduler import AutoDropLR
from .callback import AutoDropCallback
from .training_args import uses_autodrop
from .transformers_internals import mark_scheduler_created_by_trainer


class AutoDropTrainerMixin:
    """Builds :class:`~autodrop_hf.AutoDropLR` in ``create_scheduler`` and adds one
    :class:`~autodrop_hf.AutoDropCallback` when ``args.lr_scheduler_type == "autodrop"``.
    Every other scheduler name behaves exactly as in the parent Trainer."""

    #: Tells :class:`~autodrop_hf.AutoDropCallback` that this Trainer builds the ``autodrop`` schedule.
    builds_autodrop_scheduler = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        callback = next((cb for cb in self.callback_handler.callbacks if isinstance(cb, AutoDropCallback)), None)
        if callback is None and uses_autodrop(self.args):
            callback = AutoDropCallback()
        if callback is not None:
            callback.attach(self)  # first in line, so that the reporters (TensorBoard, W&B, ...) see its log keys

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        if self.lr_scheduler is None and uses_autodrop(self.args):
            self.lr_scheduler = AutoDropLR(
                self.optimizer if optimizer is None else optimizer,
                num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
            )
            mark_scheduler_created_by_trainer(self)
        return super().create_scheduler(num_training_steps, optimizer)


class AutoDropTrainer(AutoDropTrainerMixin, Trainer):
    """:class:`~transformers.Trainer` with ``lr_scheduler_type="autodrop"`` (use
    :class:`~autodrop_hf.AutoDropTrainingArguments`)."""


class AutoDropSeq2SeqTrainer(AutoDropTrainerMixin, Seq2SeqTrainer):
    """:class:`~transformers.Seq2SeqTrainer` with ``lr_scheduler_type="autodrop"`` (use
    :class:`~autodrop_hf.AutoDropSeq2SeqTrainingArguments`)."""
