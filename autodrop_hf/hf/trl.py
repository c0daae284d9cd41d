"""AutoDrop for TRL's supervised fine-tuning: ``AutoDropSFTConfig`` and ``AutoDropSFTTrainer``.

``SFTConfig`` and ``SFTTrainer`` subclass Transformers' ``TrainingArguments`` and ``Trainer``; these add what
:class:`~autodrop_hf.AutoDropTrainingArguments` and :class:`~autodrop_hf.AutoDropTrainer` add:
``lr_scheduler_type="autodrop"`` and the ``autodrop_*`` fields. Other TRL trainers take the same two mixins::

    @dataclass
    class AutoDropDPOConfig(AutoDropArgumentsMixin, DPOConfig): ...
    class AutoDropDPOTrainer(AutoDropTrainerMixin, DPOTrainer): ...

TRL is optional: importing this module needs it, nothing else in the library does.
"""

from __future__ import annotations

from dataclasses import dataclass

from trl import SFTConfig, SFTTrainer

from .trainer import AutoDropTrainerMixin
from .training_args import AutoDropArgumentsMixin


@dataclass
class AutoDropSFTConfig(AutoDropArgumentsMixin, SFTConfig):
    """TRL's ``SFTConfig`` with ``lr_scheduler_type="autodrop"`` and the ``autodrop_*`` hyper-parameters."""


class AutoDropSFTTrainer(AutoDropTrainerMixin, SFTTrainer):
    """TRL's ``SFTTrainer`` that builds the ``autodrop`` schedule (use :class:`AutoDropSFTConfig`)."""
