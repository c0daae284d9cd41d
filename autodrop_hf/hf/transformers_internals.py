"""Every reliance of the adapters on a private behaviour of Transformers, one small function each.

Each is pinned by a focused test in ``tests/test_transformers_internals.py`` that fails loudly the day
Transformers changes it (checked against transformers 5.24).
"""

from __future__ import annotations

import sys
from typing import Any

from transformers import Trainer, TrainerState


def running_resume_checkpoint() -> str | None:
    """The checkpoint folder the running ``Trainer.train()`` resumes from, or ``None``.

    ``Trainer.train(resume_from_checkpoint=...)`` does not tell callbacks where it resumes from (the
    folder may be outside ``output_dir``). ``Trainer._inner_training_loop`` takes it as its argument
    ``resume_from_checkpoint`` (already resolved when ``True`` was passed), and it is on the call stack
    of every callback event of that loop: this reads it from there.
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "_inner_training_loop" and isinstance(frame.f_locals.get("self"), Trainer):
            checkpoint = frame.f_locals.get("resume_from_checkpoint")
            return None if checkpoint is None else str(checkpoint)
        frame = frame.f_back
    return None


def mark_scheduler_created_by_trainer(trainer: Trainer) -> None:
    """Tell the Trainer that it built ``trainer.lr_scheduler`` itself (``_created_lr_scheduler``), so that
    it discards and rebuilds it at the next ``train()`` call, as it does with its own schedules."""
    trainer._created_lr_scheduler = True


def current_log_entry(state: TrainerState, logs: dict[str, Any]) -> dict[str, Any] | None:
    """The ``state.log_history`` entry of the ``on_log`` event being handled, or ``None``.

    ``Trainer.log`` appends a copy ``{**logs, "step": global_step}`` to ``log_history`` before it calls
    ``on_log``: keys a callback adds to ``logs`` reach the reporters, not the history, so they are added
    to this entry too. ``logs`` itself is the dict ``evaluate()`` and ``train()`` return.
    """
    if not state.log_history:
        return None
    entry = state.log_history[-1]
    if entry.get("step") != state.global_step or any(entry.get(k) != v for k, v in logs.items()):
        return None
    return entry


def running_trainer() -> Trainer | None:
    """The ``Trainer`` whose callback event is being handled, or ``None``.

    Callbacks are not given the Trainer; every event is dispatched from one of its methods (``__init__``
    for ``on_init_end``), whose ``self`` is on the call stack.
    """
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Trainer):
            return candidate
        frame = frame.f_back
    return None


def run_output_dir(trainer: Trainer) -> str:
    """The folder where ``trainer`` saves this run's checkpoints: ``args.output_dir``, or under
    ``hyperparameter_search`` the trial's ``output_dir/run-<id>``. That is ``Trainer._get_output_dir`` of the
    trial that ``train()`` keeps in ``_trial``."""
    return trainer._get_output_dir(trial=getattr(trainer, "_trial", None))


def evaluations_per_evaluation(trainer: Trainer | None) -> int:
    """How many ``on_evaluate`` events one evaluation of ``trainer`` gives: one per evaluation dataset.

    When a step's or an epoch's end sets ``control.should_evaluate``, the Trainer evaluates before it saves a
    checkpoint (``_maybe_log_save_evaluate``); with ``eval_on_start`` it evaluates right after ``on_train_begin``;
    ``Trainer.evaluate`` calls itself once per dataset of a dict ``eval_dataset``, and each call ends with
    ``on_evaluate``.
    """
    datasets = getattr(trainer, "eval_dataset", None)
    return len(datasets) if isinstance(datasets, dict) else 1
