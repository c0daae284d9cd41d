"""``Trainer`` subclasses whose ``lr_scheduler_type="autodrop"`` means linear warm-up × AutoDrop."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Seq2SeqTrainer, Trainer

from ..core.scheduler import AutoDropLR
from .callback import AutoDropCallback
from .training_args import uses_autodrop


class AutoDropTrainerMixin:
    """Builds :class:`~autodrop_hf.AutoDropLR` in ``create_scheduler`` and adds one
    :class:`~autodrop_hf.AutoDropCallback` when ``args.lr_scheduler_type == "autodrop"``.
    Every other scheduler name behaves exactly as in the parent Trainer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        callback = self.pop_callback(AutoDropCallback)
        if callback is None and uses_autodrop(self.args):
            callback = AutoDropCallback()
        if callback is not None:
            # First in line, so that the reporters (TensorBoard, W&B, ...) see its log keys.
            self.callback_handler.callbacks.insert(0, callback)

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        if self.lr_scheduler is None and uses_autodrop(self.args):
            self.lr_scheduler = AutoDropLR(
                self.optimizer if optimizer is None else optimizer,
                num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
            )
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)


class AutoDropTrainer(AutoDropTrainerMixin, Trainer):
    """:class:`~transformers.Trainer` with ``lr_scheduler_type="autodrop"`` (use
    :class:`~autodrop_hf.AutoDropTrainingArguments`)."""


class AutoDropSeq2SeqTrainer(AutoDropTrainerMixin, Seq2SeqTrainer):
    """:class:`~transformers.Seq2SeqTrainer` with ``lr_scheduler_type="autodrop"`` (use
    :class:`~autodrop_hf.AutoDropSeq2SeqTrainingArguments`)."""
