"""How a drop reaches a scheduler AutoDrop does not own: every scheduler of ``torch.optim.lr_scheduler`` and
every Hugging Face schedule, through the values it computes learning rates from.

The private attributes written here are named once, in :data:`SCALED_LISTS`; the tests pin each on the real
scheduler class, so that a renamed attribute fails a test rather than a drop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    LRScheduler,
    OneCycleLR,
)

#: The per-group lists, besides ``base_lrs``, that schedulers compute learning rates from, and who keeps them:
#: a drop multiplies each.
SCALED_LISTS = {
    "max_lrs": "torch.optim.lr_scheduler.CyclicLR (the top of the cycle); transformers' GreedyLR (its ceilings)",
    "min_lrs": "torch.optim.lr_scheduler.ReduceLROnPlateau and transformers' GreedyLR (their floors)",
    "_init_lrs": "transformers' GreedyLR (the learning rates its reset returns to)",
}
#: The keys of each parameter group that ``OneCycleLR`` computes from: a drop multiplies each.
ONE_CYCLE_GROUP_KEYS = ("initial_lr", "max_lr", "min_lr")
#: The parameter-group key where :func:`apply_lr_scales` keeps ``OneCycleLR``'s ``max_lr`` before the first drop.
ONE_CYCLE_PEAK = "autodrop_peak_max_lr"


def unwrap_scheduler(scheduler: Any) -> Any:
    """The scheduler inside wrappers such as Accelerate's ``AcceleratedScheduler``."""
    while not isinstance(scheduler, LRScheduler) and hasattr(scheduler, "scheduler"):
        scheduler = scheduler.scheduler
    return scheduler


def unwrap_optimizer(optimizer: Any) -> Any:
    """The optimizer inside Accelerate's ``AcceleratedOptimizer`` (its ``.optimizer``); any other unchanged."""
    return getattr(optimizer, "optimizer", optimizer)


def optimizer_of(scheduler: Any) -> Any:
    """The innermost optimizer a scheduler (wrapped or not) steps; ``None`` without a scheduler."""
    return unwrap_optimizer(getattr(unwrap_scheduler(scheduler), "optimizer", None))


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
            for key in ONE_CYCLE_GROUP_KEYS:
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
    for name in SCALED_LISTS:
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
