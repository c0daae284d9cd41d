"""The AutoDrop learning-rate schedule: linear warm-up, then the drops AutoDrop sets."""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Sequence
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


class AutoDropLR(LRScheduler):
    """``lr(t) = base_lr · warmup(t) · scale`` for every parameter group (``scale`` is per group).

    ``warmup(t) = min(1, t / num_warmup_steps)`` is the linear warm-up of Hugging Face's
    schedules (``t`` counts scheduler steps from 0); each group's ``scale`` starts at 1 and is lowered by
    :class:`~autodrop_hf.AutoDrop` at each drop through :meth:`set_lr_scale`. The state dict holds
    ``scales`` with the usual ``last_epoch``/``base_lrs``, so ``torch.load(..., weights_only=True)``
    restores the exact learning rate.

    Args:
        optimizer: the wrapped optimizer.
        num_warmup_steps: length of the linear warm-up, in scheduler steps.
        last_epoch: index of the last step, ``-1`` to start (PyTorch convention).
    """

    def __init__(self, optimizer: Optimizer, num_warmup_steps: int = 0, last_epoch: int = -1) -> None:
        if isinstance(num_warmup_steps, bool) or not isinstance(num_warmup_steps, int) or num_warmup_steps < 0:
            raise ValueError(f"num_warmup_steps must be an integer >= 0, got {num_warmup_steps!r}.")
        self.num_warmup_steps = num_warmup_steps
        self.scales = [1.0] * len(optimizer.param_groups)
        super().__init__(optimizer, last_epoch)

    def warmup_factor(self, step: int) -> float:
        """``min(1, step / num_warmup_steps)``; 1 without warm-up."""
        if step >= self.num_warmup_steps:
            return 1.0
        return max(step, 0) / self.num_warmup_steps

    def get_lr(self) -> list[float]:
        factor = self.warmup_factor(self.last_epoch)
        return [base_lr * factor * scale for base_lr, scale in zip(self.base_lrs, self.scales, strict=True)]

    _get_closed_form_lr = get_lr

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a state that does not fit this optimizer, or whose values are not of the
        kinds this scheduler keeps, is refused naming the field, and changes nothing."""
        count = len(self.optimizer.param_groups)
        own = AutoDropLR.state_dict(self)
        for name in ("base_lrs", "scales", "last_epoch"):
            if name not in state_dict:
                raise ValueError(f"{type(self).__name__} state has no {name!r}: it is not this scheduler's state.")
        for name, saved in state_dict.items():
            fits = _same_kind(own.get(name), saved)
            if name in ("base_lrs", "scales"):
                fits = fits and len(saved) == count and all(x >= 0 for x in saved)
            if name == "last_epoch":
                fits = fits and saved >= -1
            if not fits:
                raise ValueError(
                    f"{type(self).__name__} state field {name!r} does not fit this scheduler (the optimizer has "
                    f"{count} parameter groups): {reprlib.repr(saved)}."
                )
        super().load_state_dict(state_dict)

    def set_lr_scale(self, scales: float | Sequence[float]) -> None:
        """Set the drop scale of every group (one number >= 0, or one per group); the optimizer's learning
        rates change at once (next step)."""
        count = len(self.optimizer.param_groups)
        values = [scales] * count if isinstance(scales, numbers.Real) else list(scales)
        if len(values) != count:
            raise ValueError(f"set_lr_scale needs one scale per parameter group ({count}), got {len(values)}.")
        if not all(isinstance(v, numbers.Real) and math.isfinite(v) and v >= 0 for v in values):
            raise ValueError(f"set_lr_scale needs finite scales >= 0, got {scales!r}.")
        self.scales = [float(v) for v in values]
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def _same_kind(own: Any, saved: Any) -> bool:
    """Whether a saved state value is of the kind this scheduler keeps under its name: a finite number for a
    number, a bool for a bool, a list of such for a list; a field this scheduler holds as ``None`` (a count not
    known yet) takes ``None`` or an integer; a name it does not have is left to the scheduler."""
    if own is None:
        return saved is None or (isinstance(saved, int) and not isinstance(saved, bool) and saved >= 0)
    if isinstance(own, bool):
        return isinstance(saved, bool)
    if isinstance(own, numbers.Real):
        number = isinstance(saved, numbers.Real) and not isinstance(saved, bool) and math.isfinite(saved)
        return number and (isinstance(saved, int) or not isinstance(own, int))
    if isinstance(own, list):
        return isinstance(saved, list) and all(_same_kind(own[0] if own else 0.0, value) for value in saved)
    return True
