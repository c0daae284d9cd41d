"""Counting an optimizer's steps, so that the callers of :meth:`AutoDrop.step` can be checked."""

from __future__ import annotations

from typing import Any

import torch

from .scheduler_adapters import optimizer_of


class OptimizerStepCounter:
    """Counts an optimizer's steps through a step post-hook (``Optimizer.register_step_post_hook``), so that
    the callers of :meth:`AutoDrop.step` can be checked. One counter per optimizer, shared."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.count = 0
        self.handle = optimizer.register_step_post_hook(self._count)

    def _count(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.count += 1

    @classmethod
    def of(cls, scheduler: Any) -> OptimizerStepCounter | None:
        """The counter of the scheduler's optimizer (the innermost: not Accelerate's wrapper); ``None``
        without a scheduler or for an optimizer without step hooks."""
        optimizer = optimizer_of(scheduler)
        if not isinstance(optimizer, torch.optim.Optimizer):
            return None
        counter = getattr(optimizer, "_autodrop_step_counter", None)
        if counter is None:
            counter = cls(optimizer)
            optimizer._autodrop_step_counter = counter
        return counter
