"""AutoDrop on a stock ``transformers.Trainer``: ``Trainer(..., callbacks=[AutoDropCallback()])``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..core.autodrop import AutoDrop
from ..core.config import AutoDropConfig
from ..core.history import HISTORY_FILE, append_record, truncate_history
from ..core.scheduler import AutoDropLR, unwrap_scheduler
from .training_args import scheduler_name

#: Written into every checkpoint folder: :meth:`AutoDrop.state_dict`. When parameters are sharded
#: (FSDP2), every process writes its own ``autodrop_state_rank<N>.pt`` instead.
STATE_FILE = "autodrop_state.pt"


class AutoDropCallback(TrainerCallback):
    """Runs :class:`~autodrop_hf.AutoDrop` inside a ``Trainer``.

    Hooks:

    - ``on_train_begin``: the model, optimizer and scheduler exist and any checkpoint is loaded;
      builds the detector (``window_size="auto"`` from ``state.max_steps``, warm-up from
      ``args.get_warmup_steps``) and restores its state from ``output_dir/checkpoint-<step>``.
    - ``on_step_end``: once per optimizer step, after ``lr_scheduler.step()``, so a drop changes
      the learning rate from the very next optimizer step; skipped when the optimizer skipped
      its step (fp16 overflow), as the scheduler does.
    - ``on_log``: adds ``autodrop/angular_velocity``, ``autodrop/smoothed``, ``autodrop/lr_scale``
      and ``autodrop/num_drops`` to every log entry (NaN before the first value) and to
      ``state.log_history``. The ``report_to`` integrations see them when this callback runs before
      theirs: :class:`~autodrop_hf.AutoDropTrainer` puts it first; with a stock ``Trainer`` do
      ``trainer.callback_handler.callbacks.insert(0, trainer.pop_callback(AutoDropCallback))``.
    - ``on_save``: writes the detector state (window buffers included) next to the checkpoint: one
      copy when every process holds the same state (DDP), one file per process when parameters are
      sharded (FSDP2).

    A drop multiplies whatever schedule the Trainer runs; ``constant_with_warmup`` (or
    :class:`~autodrop_hf.AutoDropTrainer` with ``lr_scheduler_type="autodrop"``) means AutoDrop alone.

    Args:
        config: hyper-parameters. Default: ``args.autodrop_config()`` for
            :class:`~autodrop_hf.AutoDropTrainingArguments`, else the paper's.
    """

    def __init__(self, config: AutoDropConfig | None = None) -> None:
        if config is not None and not isinstance(config, AutoDropConfig):
            raise TypeError(f"config must be an AutoDropConfig, got {type(config).__name__}.")
        self.config = config
        self.autodrop: AutoDrop | None = None

    def _build(self, args: TrainingArguments, state: TrainerState, model: Any, lr_scheduler: Any) -> AutoDrop:
        config = self.config
        if config is None:
            config = args.autodrop_config() if hasattr(args, "autodrop_config") else AutoDropConfig()
        autodrop = AutoDrop(
            model,
            config,
            lr_scheduler,
            num_training_steps=state.max_steps,
            num_warmup_steps=args.get_warmup_steps(state.max_steps),
        )
        autodrop.num_steps = state.global_step
        return autodrop

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        lr_scheduler: Any = None,
        **kwargs: Any,
    ) -> None:
        self.autodrop = self._build(args, state, model, lr_scheduler)
        schedule = scheduler_name(args)
        if not isinstance(unwrap_scheduler(lr_scheduler), AutoDropLR) and schedule != "constant_with_warmup":
            warnings.warn(
                f"AutoDrop drops multiply the '{schedule}' schedule. For AutoDrop alone use "
                "lr_scheduler_type='constant_with_warmup', or AutoDropTrainer with "
                "lr_scheduler_type='autodrop'.",
                UserWarning,
                stacklevel=2,
            )
        if state.global_step > 0:
            self._restore(args, state, model, lr_scheduler)
        if state.is_world_process_zero:
            truncate_history(Path(args.output_dir) / HISTORY_FILE, state.global_step)

    def _state_path(self, args: TrainingArguments, state: TrainerState) -> Path:
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if self.autodrop.angular_velocity.is_sharded:
            return folder / f"autodrop_state_rank{args.process_index}.pt"
        return folder / STATE_FILE

    def _restore(self, args: TrainingArguments, state: TrainerState, model: Any, lr_scheduler: Any) -> None:
        path = self._state_path(args, state)
        try:
            self.autodrop.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return
        except FileNotFoundError:
            problem = "not found"
        except Exception as error:  # corrupt or from another run: any failure means start afresh
            problem = f"unreadable ({type(error).__name__}: {error})"
            self.autodrop = self._build(args, state, model, lr_scheduler)
        warnings.warn(
            f"AutoDrop state {path} {problem}: resuming at step {state.global_step} with a fresh "
            f"detector; the learning-rate scale {self.autodrop.scale:.6g} comes from the scheduler's state.",
            UserWarning,
            stacklevel=3,
        )

    def on_step_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        optimizer: Any = None,
        **kwargs: Any,
    ) -> None:
        if self.autodrop is None or getattr(optimizer, "step_was_skipped", False):
            return
        self.autodrop.step()
        if self.autodrop.last_record is not None and state.is_world_process_zero:
            append_record(Path(args.output_dir) / HISTORY_FILE, self.autodrop.last_record)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.autodrop is None or logs is None:
            return
        logs.update(self.autodrop.log_dict())
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update({k: v for k, v in logs.items() if k.startswith("autodrop/")})

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.autodrop is None:
            return
        if not (args.should_save or self.autodrop.angular_velocity.is_sharded):
            return  # replicated state: one copy, written by the process that saves checkpoints
        path = self._state_path(args, state)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.autodrop.state_dict(), path)
