"""The AutoDrop learning-rate schedule, and how a drop reaches any scheduler."""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Sequence
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    LRScheduler,
    OneCycleLR,
)


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


#: The parameter-group key where :func:`apply_lr_scales` keeps ``OneCycleLR``'s ``max_lr`` before the first drop.
ONE_CYCLE_PEAK = "autodrop_peak_max_lr"


def unwrap_scheduler(scheduler: Any) -> Any:
    """The scheduler inside wrappers such as Accelerate's ``AcceleratedScheduler``."""
    while not isinstance(scheduler, LRScheduler) and hasattr(scheduler, "scheduler"):
        scheduler = scheduler.scheduler
    return scheduler


def check_scheduler(scheduler: Any) -> None:
    """Refuse, with what to use instead, a scheduler a drop cannot act on exactly.

    Every scheduler of ``torch.optim.lr_scheduler`` and every Hugging Face schedule carries drops
    (:func:`apply_lr_scales`), except the cosine schedules of PyTorch with ``eta_min > 0``: their value is
    not proportional to their base learning rate.
    """
    inner = unwrap_scheduler(scheduler)
    if not hasattr(inner, "optimizer"):
        raise TypeError(
            f"scheduler must be a learning-rate scheduler (with an .optimizer), got {type(scheduler).__name__}: "
            "pass an AutoDropLR, a torch.optim.lr_scheduler scheduler, or None."
        )
    for child in _children(inner):
        if isinstance(child, CosineAnnealingLR | CosineAnnealingWarmRestarts) and child.eta_min != 0:
            raise ValueError(
                f"AutoDrop cannot scale {type(child).__name__} with eta_min={child.eta_min}: its learning rate is "
                "not proportional to its base. Use eta_min=0 and AutoDropConfig(min_lr=...) as the floor."
            )


def _children(scheduler: Any) -> list[Any]:
    """The scheduler and, for ``SequentialLR`` / ``ChainedScheduler``, the schedulers it runs."""
    return [scheduler, *(c for child in getattr(scheduler, "_schedulers", ()) for c in _children(child))]


def apply_lr_scales(scheduler: Any, old_scales: Sequence[float], new_scales: Sequence[float]) -> None:
    """Make a scheduler produce ``new / old`` times the learning rate of each group, from now on.

    :class:`AutoDropLR` (or anything with ``set_lr_scale``) is told the scales. Any other scheduler has its
    optimizer's current learning rates multiplied (what the chainable schedules of PyTorch and
    ``ReduceLROnPlateau`` compute from) and every value it computes learning rates from: ``base_lrs`` (set to
    ``initial_lr · new_scale`` where they were ``initial_lr`` times the old scale: closed-form schedules such as
    ``LambdaLR``, which every Hugging Face schedule but ``reduce_lr_on_plateau`` and ``greedy`` is; multiplied
    where they are the scheduler's own, as ``CyclicLR``'s), ``max_lrs`` (``CyclicLR``), the ``initial_lr``,
    ``max_lr`` and ``min_lr`` of each group (``OneCycleLR``), the floors and ceilings of ``ReduceLROnPlateau``
    and ``GreedyLR``; ``SequentialLR`` and ``ChainedScheduler`` pass it to the schedulers they run. The
    scales are then recoverable from a ``base_lrs`` schedule's own state: ``base_lrs[i] / initial_lr``.
    """
    scheduler = unwrap_scheduler(scheduler)
    if hasattr(scheduler, "set_lr_scale"):
        scheduler.set_lr_scale(list(new_scales))
        return
    groups = scheduler.optimizer.param_groups
    factors = [new / old if old > 0 else 0.0 for old, new in zip(old_scales, new_scales, strict=True)]
    one_cycle = any(isinstance(child, OneCycleLR) for child in _children(scheduler))
    for group, factor in zip(groups, factors, strict=True):
        group["lr"] = group["lr"] * factor
        if one_cycle:
            group.setdefault(ONE_CYCLE_PEAK, group["max_lr"])  # the peak before any drop, saved with the optimizer
            for key in ("initial_lr", "max_lr", "min_lr"):
                group[key] = group[key] * factor
    for child in _children(scheduler):
        _scale_values(child, groups, old_scales, new_scales, factors, one_cycle)


def _scale_values(
    scheduler: Any,
    groups: list[dict],
    old_scales: Sequence[float],
    new_scales: Sequence[float],
    factors: list[float],
    one_cycle: bool,
) -> None:
    """Scale what one scheduler computes learning rates from (not the optimizer's current values). A base
    that is the group's ``initial_lr`` times the old scale becomes ``initial_lr`` times the new one (no
    rounding drift over many drops); any other base (``CyclicLR``'s own ``base_lr``) is multiplied."""

    def scaled(group: dict, base: float, old: float, new: float, factor: float) -> float:
        initial = group.get("initial_lr")
        if initial is not None and not one_cycle and math.isclose(base, initial * old, rel_tol=1e-9):
            return initial * new
        return base * factor

    if hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [
            scaled(*values) for values in zip(groups, scheduler.base_lrs, old_scales, new_scales, factors, strict=True)
        ]
    for name in ("max_lrs", "min_lrs", "_init_lrs"):  # CyclicLR; ReduceLROnPlateau, GreedyLR
        values = getattr(scheduler, name, None)
        if isinstance(values, list) and len(values) == len(factors):
            setattr(scheduler, name, [value * factor for value, factor in zip(values, factors, strict=True)])
    if hasattr(scheduler, "_last_lr"):
        scheduler._last_lr = [group["lr"] for group in groups]


def peak_lrs(scheduler: Any) -> list[float] | None:
    """The peak learning rate of each parameter group under ``scheduler`` before any drop (what ``min_lr`` is a
    fraction of): ``CyclicLR``'s ``max_lrs`` (the top of its cycle) over the scale its state carries,
    ``OneCycleLR``'s ``max_lr`` as it was before the first drop (its ``initial_lr`` is the peak over
    ``div_factor``), else the schedule's base, ``initial_lr``; ``None`` without a scheduler."""
    scheduler = unwrap_scheduler(scheduler)
    if scheduler is None:
        return None
    groups = scheduler.optimizer.param_groups
    cyclic = next((child for child in _children(scheduler) if isinstance(child, CyclicLR)), None)
    if cyclic is not None:
        scales = carried_lr_scales(scheduler) or [1.0] * len(groups)
        return [
            float(top) / scale if scale > 0 else float(top) for top, scale in zip(cyclic.max_lrs, scales, strict=True)
        ]
    return [float(g.get(ONE_CYCLE_PEAK, g.get("max_lr", g.get("initial_lr", g["lr"])))) for g in groups]


def lr_scales_of(scheduler: Any) -> list[float] | None:
    """The drop scale of each group that a scheduler's state carries (1.0 for a fresh one, and where the state
    cannot tell: :func:`carried_lr_scales`); ``None`` without a scheduler."""
    scheduler = unwrap_scheduler(scheduler)
    if scheduler is None:
        return None
    carried = carried_lr_scales(scheduler)
    return [1.0] * len(scheduler.optimizer.param_groups) if carried is None else carried


def carried_lr_scales(scheduler: Any) -> list[float] | None:
    """The drop scale of each group a scheduler's state holds: ``scales`` (:class:`AutoDropLR`), or
    ``base_lrs[i] / initial_lr`` (what :func:`apply_lr_scales` leaves in a closed-form schedule, or in the first
    schedule a ``SequentialLR`` / ``ChainedScheduler`` runs); ``None`` where
    the state cannot tell (``ReduceLROnPlateau`` and ``GreedyLR`` keep a drop in the optimizer's learning rates).
    ``OneCycleLR``'s drops are ``max_lr`` over its value before the first drop, which :func:`apply_lr_scales`
    keeps in each parameter group (saved with the optimizer's state)."""
    scheduler = unwrap_scheduler(scheduler)
    if hasattr(scheduler, "scales"):
        return [float(s) for s in scheduler.scales]
    groups = scheduler.optimizer.param_groups
    if any(isinstance(child, OneCycleLR) for child in _children(scheduler)):
        return [float(g["max_lr"]) / float(g.get(ONE_CYCLE_PEAK, g["max_lr"])) for g in groups]
    base_lrs = next((child.base_lrs for child in _children(scheduler) if getattr(child, "base_lrs", None)), None)
    if base_lrs and all(group.get("initial_lr") for group in groups):
        return [float(base) / float(group["initial_lr"]) for base, group in zip(base_lrs, groups, strict=True)]
    return None
