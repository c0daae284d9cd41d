"""The one-object form for plain loops: one scheduler, one ``step()``, as PyTorch users expect."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from torch import nn
from torch.optim import Optimizer

from .autodrop import AutoDrop
from .config import AutoDropConfig
from .scheduler import AutoDropLR


class AutoDropScheduler(AutoDropLR):
    """:class:`~autodrop_hf.AutoDropLR` (linear warm-up × drop scale) that runs its own
    :class:`~autodrop_hf.AutoDrop`: call ``scheduler.step()`` after every ``optimizer.step()``, nothing else::

        scheduler = AutoDropScheduler(optimizer, model, num_training_steps=T, num_warmup_steps=W)
        for batch in data:
            loss(batch).backward(); optimizer.step(); optimizer.zero_grad(); scheduler.step()

    ``state_dict()`` holds the detector too, so saving the scheduler (``torch.save``, or
    ``accelerator.save_state`` for a prepared scheduler) saves everything. The parameters are observed once
    per optimizer step however often ``step()`` runs (Accelerate steps a prepared scheduler once per
    process): a ``step()`` with no optimizer step since the last one moves the warm-up only. To compose
    AutoDrop with another schedule, use :class:`~autodrop_hf.AutoDrop` with that scheduler instead.

    Args:
        optimizer: the optimizer whose learning rates this schedule sets.
        model_or_params: what AutoDrop watches; by default the optimizer's parameters.
        config: AutoDrop's hyper-parameters.
        num_training_steps: planned scheduler steps (``window_size`` and ``drop_factor`` ``"auto"``); ``None``:
            unknown (the horizon-free rule).
        num_warmup_steps: linear warm-up, in scheduler steps.
        **autodrop_kwargs: passed to :class:`~autodrop_hf.AutoDrop` (``min_lr`` floors, ``momentum``,
            ``process_group``, ``history_file``, ...).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        model_or_params: nn.Module | Iterable[Any] | None = None,
        config: AutoDropConfig | None = None,
        *,
        num_training_steps: int | None = None,
        num_warmup_steps: int = 0,
        last_epoch: int = -1,
        **autodrop_kwargs: Any,
    ) -> None:
        self.autodrop = None
        super().__init__(optimizer, num_warmup_steps=num_warmup_steps, last_epoch=last_epoch)
        params = optimizer.param_groups if model_or_params is None else model_or_params
        self.autodrop = AutoDrop(params, config, self, num_training_steps=num_training_steps, **autodrop_kwargs)
        self.num_training_steps = self.autodrop.num_training_steps  # validated, in scheduler steps
        self.steps_per_optimizer_step: int | None = None  # scheduler steps per optimizer step, once seen
        self._observed_at = self.autodrop.optimizer_steps.count
        self._calls: int | None = None  # step() calls since the last optimizer step was observed (None: none yet)
        self._previous_calls: int | None = None  # the same for the optimizer step before

    def step(self, epoch: int | None = None) -> None:
        super().step() if epoch is None else super().step(epoch)
        if self.autodrop is None:  # the step LRScheduler's constructor makes
            return
        if self.autodrop.optimizer_steps.count == self._observed_at:
            self._calls = None if self._calls is None else self._calls + 1
            return
        if self._calls is not None and self.steps_per_optimizer_step is None:
            if self._calls == self._previous_calls:  # two intervals agree (a step an fp16 scaler skipped does not)
                self._plan_steps(self._calls)
            self._previous_calls = self._calls
        self._observed_at, self._calls = self.autodrop.optimizer_steps.count, 1
        self.autodrop.step()

    def _plan_steps(self, steps_per_optimizer_step: int) -> None:
        """Give the detector its horizon in optimizer steps, once the scheduler steps per optimizer step are known."""
        self.steps_per_optimizer_step = steps_per_optimizer_step
        if steps_per_optimizer_step > 1 and self.num_training_steps is not None:
            self.autodrop.set_horizon(math.ceil(self.num_training_steps / steps_per_optimizer_step))

    def _schedule_state(self) -> dict[str, Any]:
        """The schedule's own state (``AutoDropLR``'s), without the detector."""
        private = ("autodrop", "_observed_at", "_calls", "_previous_calls", "num_training_steps")
        return {key: value for key, value in super().state_dict().items() if key not in private}

    def state_dict(self) -> dict[str, Any]:
        return {**self._schedule_state(), "autodrop": self.autodrop.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`: the schedule, then the detector (which re-synchronises the learning
        rate); if the detector's state is refused, the schedule is put back too, so a failed load changes
        nothing."""
        if not isinstance(state_dict, dict) or "autodrop" not in state_dict:
            raise ValueError(
                "AutoDropScheduler state has no 'autodrop': it is not an AutoDropScheduler.state_dict() (an AutoDropLR "
                "state goes into an AutoDropLR, AutoDrop.state_dict() into scheduler.autodrop.load_state_dict)."
            )
        state = dict(state_dict)
        detector = state.pop("autodrop")
        state.pop("num_training_steps", None)  # the horizon this scheduler was built with stands
        schedule = self._schedule_state()
        horizon = self.autodrop.num_training_steps
        super().load_state_dict(state)
        try:
            if self.steps_per_optimizer_step is not None:  # the saved run's horizon in optimizer steps
                self._plan_steps(self.steps_per_optimizer_step)
            self.autodrop.load_state_dict(detector)
        except Exception:
            super().load_state_dict(schedule)
            self.autodrop.set_horizon(horizon)
            raise
        self._observed_at, self._calls, self._previous_calls = self.autodrop.optimizer_steps.count, None, None
