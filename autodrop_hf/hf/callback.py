"""AutoDrop on a stock ``transformers.Trainer``: ``Trainer(..., callbacks=[AutoDropCallback()])``."""

from __future__ import annotations

import json
import logging
import shutil
import weakref
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..core.autodrop import AutoDrop
from ..core.config import AutoDropConfig
from ..core.history import HISTORY_FILE, append_record, resume_history
from ..core.scheduler import AutoDropLR
from ..core.scheduler_adapters import unwrap_scheduler
from ..core.user_warnings import warn
from ..core.weight_average import WeightAverage
from .scheduler_kwargs import split_scheduler_kwargs
from .training_args import scheduler_name, uses_autodrop
from .transformers_internals import (
    current_log_entry,
    evaluations_per_evaluation,
    run_output_dir,
    running_resume_checkpoint,
    running_trainer,
)

#: Written into every checkpoint folder: :meth:`AutoDrop.state_dict`. When parameters are sharded
#: (FSDP2), every process writes its own ``autodrop_state_rank<N>.pt`` instead.
STATE_FILE = "autodrop_state.pt"
#: The Trainer's ``global_step`` at the save, next to the detector state in :data:`STATE_FILE`: the Trainer
#: counts the steps an fp16 scaler skipped, the detector (``num_steps``) does not observe them.
GLOBAL_STEP_KEY = "trainer_global_step"
#: The prefix of AutoDrop's log keys.
LOG_PREFIX = "autodrop/"

logger = logging.getLogger("autodrop_hf")


#: Where :func:`take_autodrop_kwargs` leaves what it took on the arguments (an attribute, not a field: not saved).
_TAKEN = "_autodrop_scheduler_kwargs"


def take_autodrop_kwargs(args: TrainingArguments) -> dict[str, Any]:
    """Take AutoDrop's hyper-parameters out of ``args.lr_scheduler_kwargs`` (the Hugging Face schedule the
    Trainer builds from them would refuse them) and return them. What was taken is remembered on ``args``, so
    that every Trainer built with the same arguments gets the same values."""
    taken, schedule_kwargs = split_scheduler_kwargs(scheduler_name(args), args.lr_scheduler_kwargs or {})
    values = {**args.__dict__.get(_TAKEN, {}), **taken}
    if values:
        args.lr_scheduler_kwargs = schedule_kwargs
        args.__dict__[_TAKEN] = values
    return dict(values)


class AutoDropCallback(TrainerCallback):
    """Runs :class:`~autodrop_hf.AutoDrop` inside a stock ``Trainer``::

        Trainer(..., args=TrainingArguments(..., lr_scheduler_type="constant_with_warmup"),
                callbacks=[AutoDropCallback()])

    The detector is built at ``on_train_begin`` (``window_size`` and ``drop_factor`` from ``state.max_steps``,
    the warm-up from the arguments, its state from the checkpoint the Trainer resumes from), observes each
    optimizer step at ``on_step_end`` (not a step an fp16 scaler skipped) so a drop acts from the next step,
    writes ``output_dir/autodrop_history.jsonl``, logs the ``autodrop/*`` values into the training logs and
    the reporters (never into evaluations or the metrics ``train()`` and ``evaluate()`` return), and saves its
    state into every checkpoint (one file per process under FSDP2). With ``stop_when_done`` the run stops where
    AutoDrop says done, evaluated and saved as at its end. With ``average=True`` every evaluation during training
    reads the weight average, checkpoints hold the live weights (and the average in the AutoDrop state, to resume),
    and at the end of training the model holds the average. A drop multiplies whatever schedule the Trainer runs:
    ``constant_with_warmup`` (or :class:`~autodrop_hf.AutoDropTrainer` with ``lr_scheduler_type="autodrop"``)
    means AutoDrop alone. One per Trainer; added with ``trainer.add_callback``, give it its ``config`` (the
    Trainer has built its schedule by then, from ``lr_scheduler_kwargs`` as they were).

    Args:
        config: the hyper-parameters. Default: ``args.autodrop_config()`` for
            :class:`~autodrop_hf.AutoDropTrainingArguments`, else AutoDrop's keys of ``lr_scheduler_kwargs``
            (``{"drop_factor": 0.9}``; ``{"autodrop_min_lr": 1e-6}`` for a name the schedule takes itself).
        momentum: β of an optimizer AutoDrop does not know (it says so), for the noise floor.
        **hyperparameters: instead of ``config``, its values by name (``AutoDropCallback(preset="anytime")``).
    """

    def __init__(self, config: AutoDropConfig | None = None, momentum: float | None = None, **hyperparameters: Any):
        if config is not None and not isinstance(config, AutoDropConfig):
            raise TypeError(f"config must be an AutoDropConfig, got {type(config).__name__}.")
        if hyperparameters:
            if config is not None:
                raise ValueError(
                    f"AutoDropCallback was given a config and {sorted(hyperparameters)}: give one of them "
                    "(config.replace(...) changes single values)."
                )
            config = AutoDropConfig.preset(hyperparameters.pop("preset", "default"), **hyperparameters)
        self.config = config
        self.momentum = momentum
        self.autodrop: AutoDrop | None = None
        self._attached_to: weakref.ref[Trainer] | None = None
        self._taken: dict[str, Any] = {}  # AutoDrop's keys this callback took from another schedule's kwargs
        self._run_dir: Path | None = None  # where this run's checkpoints and history go, from on_train_begin
        self._logged_at: int | None = None  # the step whose log carries AutoDrop's values
        self._evaluate_on_average = _EvaluateOnAverage(self)  # its place among the callbacks is set by attach

    # ------------------------------------------------------------------------------ set-up
    def attach(self, trainer: Trainer) -> None:
        """Take this callback's place in ``trainer``: first, with the log clean-up last, alone of its kind.
        Called at ``on_init_end``; :class:`~autodrop_hf.AutoDropTrainer` calls it for the callback it adds."""
        callbacks = trainer.callback_handler.callbacks
        others = [cb for cb in callbacks if isinstance(cb, AutoDropCallback) and cb is not self]
        if others:
            raise ValueError(
                "this Trainer has two AutoDropCallbacks: each would drop the learning rate and write every "
                "history line; keep one."
            )
        self._take_place(callbacks)
        if uses_autodrop(trainer.args) and not getattr(trainer, "builds_autodrop_scheduler", False):
            raise ValueError(
                "lr_scheduler_type='autodrop' needs AutoDropTrainer (or AutoDropSeq2SeqTrainer), or a script "
                "run with `autodrop-hf run`: a stock Trainer cannot build that schedule. With a stock Trainer, "
                "use lr_scheduler_type='constant_with_warmup' and this callback."
            )
        if self.config is None and not uses_autodrop(trainer.args):
            self._taken = take_autodrop_kwargs(trainer.args)
        if self._config(trainer.args).average and trainer.args.load_best_model_at_end:  # bad values refused now
            raise ValueError(
                "AutoDrop's average=True evaluates the weight average, and load_best_model_at_end would load a "
                "checkpoint's live weights for the best average's metric: drop one of the two."
            )
        self._attached_to = weakref.ref(trainer)

    def _take_place(self, callbacks: list[TrainerCallback]) -> None:
        """First among ``callbacks``, the average's swap and the log clean-up last: after every other callback,
        those added with ``trainer.add_callback`` too (this runs again at every ``on_train_begin``)."""
        if self in callbacks:
            callbacks.remove(self)
        callbacks.insert(0, self)
        tails = [self._evaluate_on_average, _RemoveLogKeys()]
        callbacks[:] = [cb for cb in callbacks if not isinstance(cb, _EvaluateOnAverage | _RemoveLogKeys)] + tails

    def on_init_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        trainer = running_trainer()
        if trainer is not None:
            self.attach(trainer)

    def _config(self, args: TrainingArguments) -> AutoDropConfig:
        if self.config is not None:
            return self.config
        if hasattr(args, "autodrop_config"):
            return args.autodrop_config(self._taken)
        values = dict(self._taken)
        return AutoDropConfig.preset(values.pop("preset", "default"), **values)

    def _build(self, args: TrainingArguments, state: TrainerState, model: Any, lr_scheduler: Any) -> AutoDrop:
        autodrop = AutoDrop(
            model,
            self._config(args),
            lr_scheduler,
            momentum=self.momentum,
            num_training_steps=state.max_steps,
            num_warmup_steps=args.get_warmup_steps(state.max_steps),
        )
        autodrop.num_steps = state.global_step
        return autodrop

    # ------------------------------------------------------------------------------ training
    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        lr_scheduler: Any = None,
        **kwargs: Any,
    ) -> None:
        check_deepspeed(args)
        trainer = running_trainer()
        if trainer is not None and (self._attached_to is None or self._attached_to() is not trainer):
            self.attach(trainer)  # added with trainer.add_callback after __init__, or to another Trainer
        elif trainer is not None:
            self._take_place(trainer.callback_handler.callbacks)  # callbacks added since
        self.autodrop = self._build(args, state, model, lr_scheduler)
        self._logged_at = None
        schedule = scheduler_name(args)
        if not isinstance(unwrap_scheduler(lr_scheduler), AutoDropLR) and schedule != "constant_with_warmup":
            warn(
                f"AutoDrop drops multiply the '{schedule}' schedule. For AutoDrop alone use "
                "lr_scheduler_type='constant_with_warmup', or AutoDropTrainer with lr_scheduler_type='autodrop'."
            )
        self._run_dir = Path(args.output_dir if trainer is None else run_output_dir(trainer))
        history = self._run_dir / HISTORY_FILE
        checkpoint = None
        if state.global_step > 0:
            checkpoint = self._restore(args, state, model, lr_scheduler)
        if state.is_world_process_zero:
            saved_history = None if checkpoint is None else checkpoint / HISTORY_FILE
            if saved_history is not None and saved_history.exists() and saved_history != history:
                history.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(saved_history, history)
            resume_history(history, self.autodrop.num_steps)  # its steps: the scaler's skipped steps not counted

    def _checkpoint_folder(self, args: TrainingArguments, state: TrainerState) -> Path:
        """The checkpoint the Trainer resumes from: the one it was given, wherever it is (or, if the call
        stack does not tell, ``checkpoint-<step>`` of the run's folder)."""
        resumed = running_resume_checkpoint()
        if resumed is not None:
            return Path(resumed)
        return self._run_dir / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"

    def _state_file(self, folder: Path, args: TrainingArguments) -> Path:
        if self.autodrop.angular_velocity.is_sharded:
            return folder / f"autodrop_state_rank{args.process_index}.pt"
        return folder / STATE_FILE

    def _restore(self, args: TrainingArguments, state: TrainerState, model: Any, lr_scheduler: Any) -> Path:
        folder = self._checkpoint_folder(args, state)
        path = self._state_file(folder, args)
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            saved_at = saved.pop(GLOBAL_STEP_KEY, saved.get("num_steps"))  # older checkpoints: the detector's
            if saved_at != state.global_step:
                raise ValueError(f"it is from step {saved_at}, the Trainer resumes at step {state.global_step}")
            self.autodrop.load_state_dict(saved)
            return folder
        except FileNotFoundError:
            problem = "not found"
        except Exception as error:  # corrupt or from another run: any failure means start afresh
            problem = f"unusable ({type(error).__name__}: {error})"
            self.autodrop = self._build(args, state, model, lr_scheduler)
        warn(
            f"AutoDrop state {path} {problem}: resuming at step {state.global_step} with a fresh "
            f"detector; the learning-rate scale {self.autodrop.scale:.6g} comes from the scheduler's state."
        )
        return folder

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
            append_record(self._run_dir / HISTORY_FILE, self.autodrop.last_record)
        if self.autodrop.done and self.autodrop.config.stop_when_done:  # a run resumed after done stops at once
            stop_as_at_the_end(args, control)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        if self.autodrop is None or self.autodrop.weight_average is None:
            return
        self._evaluate_on_average.close()
        self.autodrop.load_average()
        logger.info("AutoDrop: the model now holds the weight average (average=True); save it with save_model().")

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.autodrop is None or logs is None or not _is_training_log(logs) or self._logged_at == state.global_step:
            return  # evaluations are the Trainer's own (the model card tabulates them); one point per step
        self._logged_at = state.global_step
        values = self.autodrop.log_dict()
        entry = current_log_entry(state, logs)
        if entry is not None:
            entry.update(values)
        logs.update(values)  # for the reporters after this callback; _RemoveLogKeys takes them out again

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.autodrop is None:
            return
        if not (args.should_save or self.autodrop.angular_velocity.is_sharded):
            return  # replicated state: one copy, written by the process that saves checkpoints
        folder = self._run_dir / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        state_dict = {**self.autodrop.state_dict(), GLOBAL_STEP_KEY: state.global_step}
        torch.save(state_dict, self._state_file(folder, args))
        history = self._run_dir / HISTORY_FILE
        if args.should_save and history.exists():
            shutil.copyfile(history, folder / HISTORY_FILE)


def _is_training_log(logs: dict[str, Any]) -> bool:
    """A log of training steps (``learning_rate``) or the summary ``train()`` ends with (``train_runtime``),
    not an evaluation's metrics."""
    return "learning_rate" in logs or "train_runtime" in logs


def stop_as_at_the_end(args: TrainingArguments, control: TrainerControl) -> None:
    """Stop training now, with the evaluation and the save that the last step of a run gets."""
    control.should_training_stop = True
    control.should_evaluate = args.eval_strategy != "no"
    control.should_save = args.save_strategy != "no"


def check_deepspeed(args: TrainingArguments) -> None:
    """Refuse the DeepSpeed configuration AutoDrop cannot act in, with what to change.

    ZeRO stages 1 and 2 replicate the parameters: AutoDrop watches them as under DDP; stage 3 partitions
    them, and AutoDrop watches each process's partition (``ds_tensor``) as an FSDP2 shard. A ``scheduler``
    section makes DeepSpeed's scheduler replace the Trainer's, and AutoDrop's drops would not reach the
    learning rate: the two are refused together rather than composed.
    """
    parsed = getattr(getattr(args, "deepspeed_plugin", None), "hf_ds_config", None)
    if hasattr(parsed, "config"):  # read by Transformers or Accelerate: a file, a dict, base64, `accelerate launch`
        config = parsed.config
    elif args.deepspeed is None:
        return
    else:
        config = args.deepspeed if isinstance(args.deepspeed, dict) else json.loads(Path(args.deepspeed).read_text())
    if config.get("scheduler"):
        raise ValueError(
            "the DeepSpeed config has a 'scheduler' section, which replaces the Trainer's scheduler, so AutoDrop's "
            "drops would not reach the learning rate: remove that section and choose the schedule with "
            "lr_scheduler_type ('autodrop', or any other for AutoDrop to multiply)."
        )


class _EvaluateOnAverage(TrainerCallback):
    """After every other callback: with ``average=True``, swap the weight average into the model when an
    evaluation is due (``control.should_evaluate`` at a step's or an epoch's end, ``eval_on_start`` at the start:
    the Trainer evaluates next) and the live weights back at the last ``on_evaluate`` (one per evaluation
    dataset), before the checkpoint is saved; a swap still open at the next step (an evaluation that did not run)
    is closed there. One left open by an evaluation that raised is closed when training starts again, unless
    the model has been loaded since (a resumed checkpoint's weights stay)."""

    def __init__(self, owner: AutoDropCallback) -> None:
        self.owner = weakref.ref(owner)
        self._swapped: tuple[WeightAverage, list[torch.Tensor]] | None = None  # the average in, the live weights
        self._evaluations_left = 0

    def _enter(self, due: bool) -> None:
        owner = self.owner()
        autodrop = None if owner is None else owner.autodrop
        average = None if autodrop is None else autodrop.weight_average
        if due and average is not None and average.average:
            self.close()
            trainer = None if owner._attached_to is None else owner._attached_to()
            self._evaluations_left = evaluations_per_evaluation(trainer)
            self._swapped = (average, average.swap_in())

    def close(self, *args: Any, **kwargs: Any) -> None:
        """Put the live weights back, if the average is in."""
        self._evaluations_left = 0
        if self._swapped is not None:
            average, live = self._swapped
            self._swapped = None
            average.swap_out(live)

    def on_train_begin(self, args: Any, state: Any, control: TrainerControl, **kwargs: Any) -> None:
        if self._swapped is not None and not self._swapped[0].is_swapped_in():
            self._swapped = None  # the model was loaded since the evaluation that raised: keep what was loaded
        self.close()
        self._enter(args.eval_on_start)

    def on_step_end(self, args: Any, state: Any, control: TrainerControl, **kwargs: Any) -> None:
        self._enter(control.should_evaluate)

    def on_epoch_end(self, args: Any, state: Any, control: TrainerControl, **kwargs: Any) -> None:
        self._enter(control.should_evaluate)

    def on_evaluate(self, args: Any, state: Any, control: TrainerControl, **kwargs: Any) -> None:
        self._evaluations_left -= 1
        if self._evaluations_left <= 0:
            self.close()

    on_step_begin = close


class _RemoveLogKeys(TrainerCallback):
    """The last callback: takes AutoDrop's keys out of ``logs`` once every reporter has seen them, so that
    the metrics ``evaluate()`` and ``train()`` return (the same dict) are the Trainer's own."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        for key in [k for k in (logs or {}) if k.startswith(LOG_PREFIX)]:
            del logs[key]
