"""AutoDrop: drop the learning rate whenever the angular velocity saturates.

This is the one place the algorithm is driven from; the Trainer callback and the loop API call it.
The readable float64 twin of the whole decision rule is :mod:`autodrop_hf.core.autodrop_reference`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .angular_velocity import (
    SAMPLED_ANGLE_ERROR_SCALE,
    TARGET_SAMPLED_BLOCKS,
    WindowedAngularVelocity,
    WindowPhase,
    candidate_parameters,
    global_numel,
    trainable_parameters,
)
from .autodrop_state import AngleRecord, Decision, validated_state
from .config import AutoDropConfig
from .history import HISTORY_FILE, append_record, resume_history
from .noise_floor import MomentumFilter, momentum_filter, noise_floor
from .optimizer_steps import OptimizerStepCounter
from .saturation import NoiseFloorTest, SaturationResult, SmoothedChangeTest, hold_while_drifting
from .scheduler_adapters import (
    apply_lr_scales,
    carried_lr_scales,
    check_scheduler,
    lr_scales_of,
    optimizer_of,
    peak_lrs,
    unwrap_scheduler,
)
from .user_warnings import warn
from .validation import number, optional_count
from .weight_average import WeightAverage

logger = logging.getLogger("autodrop_hf")


class AutoDrop:
    """Watches the trainable parameters and lowers the learning rate when the angular velocity saturates.

    Call :meth:`step` once after every optimizer step, after the scheduler's::

        autodrop = AutoDrop(model, AutoDropConfig(), scheduler, num_training_steps=T)
        ...  # loss.backward(); optimizer.step(); scheduler.step(); autodrop.step()

    After ``num_warmup_steps``, every ``window_size`` steps give an angle (degrees) and every ``buffer_size``
    angles a decision; a drop lowers :attr:`scale`, and each group's learning rate is its schedule's value times
    ``max(scale, min_lr / peak_lr)`` from the next step. :attr:`done` says when training is done. With
    ``config.average``, :meth:`averaged` swaps a weight average in (to evaluate) and :meth:`load_average` keeps it.

    Args:
        model_or_params: a module, tensors or parameter groups; those with ``requires_grad`` are watched (tensors
            made trainable later join at the next window).
        config: the hyper-parameters (:class:`~autodrop_hf.AutoDropConfig`).
        scheduler: the scheduler the drops act on (:class:`~autodrop_hf.AutoDropLR`, any PyTorch or Hugging
            Face scheduler), or ``None`` to keep :attr:`scale` and the records only.
        num_training_steps: planned optimizer steps ``T``; ``None``: unknown (the horizon-free rule).
        num_warmup_steps: optimizer steps not observed; by default the scheduler's warm-up, else 0.
        base_lr: the peak learning rate ``min_lr`` is compared with (one, or one per group); by default the
            scheduler's peak.
        momentum: β of the optimizer (or a :class:`~autodrop_hf.MomentumFilter`) for the noise floor; by default
            read from the scheduler's optimizer.
        process_group: the group that shares the model under ``torch.distributed`` (by default the default
            group; ``"local"``: no communication); every member must call :meth:`step`.
        accelerator: an Accelerate ``Accelerator``: one process means a single-process run.
        history_file: one JSON line per window goes here (first process only); ``autodrop-hf plot`` draws it.
    """

    def __init__(
        self,
        model_or_params: nn.Module | Iterable[Any],
        config: AutoDropConfig | None = None,
        scheduler: Any = None,
        *,
        num_training_steps: int | None = None,
        num_warmup_steps: int | None = None,
        base_lr: float | Sequence[float] | None = None,
        momentum: float | MomentumFilter | None = None,
        process_group: Any | Literal["local"] = None,
        accelerator: Any = None,
        history_file: str | Path | None = None,
    ) -> None:
        self.config = config if config is not None else AutoDropConfig()
        if not isinstance(self.config, AutoDropConfig):
            raise TypeError(f"config must be an AutoDropConfig, got {type(self.config).__name__}.")
        if scheduler is not None:
            check_scheduler(scheduler)
        self.scheduler = scheduler
        self.num_training_steps = optional_count("num_training_steps", num_training_steps, minimum=1)
        self.num_warmup_steps = optional_count("num_warmup_steps", num_warmup_steps, minimum=0)
        self.window_grows = self.config.window_grows(self.num_training_steps)
        self.window_size = self.config.resolve_window_size(self.num_training_steps)
        self.drop_rule = self.config.resolve_drop_factor(self.num_training_steps)
        self._momentum_of_the_optimizer = momentum is None  # re-read at each window end
        self.momentum = self._momentum(momentum)
        self.noise_floor = None if self.momentum is None else noise_floor(self.window_size, self.momentum)
        self.floors = self._floors(base_lr)
        self.process_group, world_size = _process_group(process_group, accelerator)
        self._candidates = candidate_parameters(model_or_params)
        self.angular_velocity = self._watch(trainable_parameters(self._candidates), world_size)
        self.weight_average = WeightAverage() if self.config.average else None
        self.test = self._new_test()
        scales = lr_scales_of(scheduler)  # 1.0, or the drops a restored scheduler carries
        self.scale = 1.0 if scales is None else min(scales)
        self.history_file = None if history_file is None else self._writable(Path(history_file))
        self.optimizer_steps = OptimizerStepCounter.of(self.scheduler)
        self._counted = None if self.optimizer_steps is None else self.optimizer_steps.count
        self._warned_order = False
        self.num_steps = 0
        self.angles: list[AngleRecord] = []
        self.smoothed: list[AngleRecord] = []
        self.decisions: list[Decision] = []
        self.drops: list[int] = []
        self.last_record: dict[str, Any] | None = None
        self.done_step: int | None = None
        self._said_no_signal = False
        self._warned_past_horizon = False
        self._warn_short_run()

    # ----------------------------------------------------------------------------------- set-up
    def _momentum(self, momentum: float | MomentumFilter | None) -> MomentumFilter | None:
        if isinstance(momentum, MomentumFilter):
            return momentum
        if momentum is not None:
            return MomentumFilter.heavy_ball(number("momentum", momentum), "momentum=")
        optimizer = optimizer_of(self.scheduler)
        if optimizer is not None:
            return momentum_filter(optimizer)
        if self.config.saturation_test == "noise_floor":
            raise ValueError(
                "the noise-floor test needs the optimizer's momentum: pass scheduler= (its optimizer tells) or "
                "momentum= (Adam's β1, SGD's momentum, 0 for plain SGD)."
            )
        return None

    def _update_momentum(self) -> None:
        """Re-read the optimizer's momentum at a window end, so that ψ is the floor of the momentum in use: a
        scheduler may move it (``OneCycleLR``, ``CyclicLR``), and NAdam's grows with its step count."""
        optimizer = optimizer_of(self.scheduler)
        if not self._momentum_of_the_optimizer or optimizer is None:
            return
        momentum = momentum_filter(optimizer, warn_unknown=False)
        if momentum != self.momentum:
            self.momentum, self.noise_floor = momentum, noise_floor(self.window_size, momentum)
            if isinstance(self.test, NoiseFloorTest):
                self.test.noise_floor = self.noise_floor

    def _optimizer_groups(self) -> list[dict[str, Any]] | None:
        optimizer = optimizer_of(self.scheduler)
        return None if optimizer is None else optimizer.param_groups

    def _floors(self, base_lr: float | Sequence[float] | None) -> list[float]:
        """``min_lr / peak_lr`` of each parameter group (capped at 1)."""
        groups = self._optimizer_groups()
        if base_lr is None:
            peaks = peak_lrs(self.scheduler)
        elif isinstance(base_lr, str):
            raise ValueError(f"base_lr must be a number or one per parameter group, got {base_lr!r} (a string).")
        elif isinstance(base_lr, numbers.Real) or not isinstance(base_lr, Sequence):
            peaks = [number("base_lr", base_lr)] * (1 if groups is None else len(groups))
        else:
            peaks = [number("base_lr", value) for value in base_lr]
            if groups is not None and len(peaks) != len(groups):
                raise ValueError(
                    f"base_lr has {len(peaks)} values and the optimizer {len(groups)} parameter groups: give one "
                    "per group, or one number."
                )
        count = len(peaks) if peaks is not None else 1
        min_lrs = self.config.min_lrs(count) if isinstance(self.config.min_lr, tuple) else [self.config.min_lr] * count
        if not any(min_lrs):
            return [0.0] * count
        if peaks is None or not all(peak > 0 for peak in peaks):
            raise ValueError(
                f"min_lr={self.config.min_lr} needs the peak learning rate: pass scheduler= or base_lr= "
                f"(positive numbers), got base_lr={base_lr!r}."
            )
        if len(peaks) != len(min_lrs):
            raise ValueError(f"base_lr has {len(peaks)} values, min_lr {len(min_lrs)}: give one per parameter group.")
        return [min(1.0, floor / peak) for floor, peak in zip(min_lrs, peaks, strict=True)]

    def _watch(self, params: list[torch.Tensor], world_size: int) -> WindowedAngularVelocity:
        reduce_sums = None
        if world_size > 1:
            group = self.process_group

            def reduce_sums(sums: torch.Tensor) -> torch.Tensor:
                torch.distributed.all_reduce(sums, group=group)
                return sums

        self._watched_ids = {id(p) for p in params}
        elements = sum(global_numel(p) for p in params)
        stride = self.config.sample_stride(elements)
        span = self.config.drift_ratio is not None
        meter = WindowedAngularVelocity(params, self.window_size, reduce_sums, world_size, stride, track_span=span)
        if self.config.average:
            _check_averageable(meter, self.config)
        blocks = meter.num_blocks_in_all_processes
        if stride == 1:
            logger.info(
                "AutoDrop: watching all %s trainable elements (exact mode, %d bytes each).",
                f"{elements:,}",
                12 + 4 * self.config.average + 4 * span,
            )
        else:
            logger.info(
                "AutoDrop: the memory-light mode watches every %d-th block of %d of the %s trainable elements (%s "
                "blocks, %.2g bytes per element, median angle error about %.2g degrees; sample_fraction=1: all).",
                stride,
                meter.sample_block,
                f"{elements:,}",
                f"{blocks:,}",
                (12 + 4 * span) / stride,
                SAMPLED_ANGLE_ERROR_SCALE / math.sqrt(blocks),
            )
        if stride > 1 and blocks < TARGET_SAMPLED_BLOCKS:
            # blocks of one element by now: the elements of all processes are about blocks x stride
            needed = TARGET_SAMPLED_BLOCKS / (blocks * stride)
            advice = f"sample_fraction >= {needed:.2g}" if needed < 0.5 else "sample_fraction=1 (exact)"
            warn(
                f"sample_fraction={self.config.sample_fraction} watches about {blocks:,} elements of this model: "
                "too few for a steady angle estimate (median error about "
                f"{SAMPLED_ANGLE_ERROR_SCALE / math.sqrt(blocks):.2g} degrees; {TARGET_SAMPLED_BLOCKS:,} "
                f"watched blocks give 0.2). Use {advice}."
            )
        return meter

    def _new_test(self) -> NoiseFloorTest | SmoothedChangeTest:
        if self.config.saturation_test == "smoothed_change":
            return SmoothedChangeTest(self.config.buffer_size, self.config.threshold)
        return NoiseFloorTest(self.config.buffer_size, self.noise_floor, self.config.drift_z)

    def _writable(self, path: Path) -> Path:
        """The history file, its folder created and its writing checked now (by the process that writes it),
        not at the first window end, hours into a run."""
        if path.is_dir():
            raise ValueError(f"history_file={str(path)!r} is a folder: give a file, such as {path / HISTORY_FILE}.")
        if self._is_first_process():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a", encoding="utf-8"):
                    pass
            except OSError as error:
                raise ValueError(f"history_file={str(path)!r} cannot be written: {error}.") from None
        return path

    def _warn_short_run(self) -> None:
        """Say at the start when the planned run cannot give an angle, or a decision, at this window size."""
        if self.num_training_steps is None or self.window_grows:
            return
        warmup = self.num_warmup_steps
        if warmup is None:
            warmup = getattr(unwrap_scheduler(self.scheduler), "num_warmup_steps", 0)
        observed = self.num_training_steps - warmup
        k, m = self.window_size, self.config.buffer_size
        windows_to_decide = 2 + m + (self.config.saturation_test == "smoothed_change")
        if observed >= windows_to_decide * k:
            return
        what = "an angle" if observed < 3 * k else "a decision"
        warn(
            f"AutoDrop cannot give {what} in this run: {observed} optimizer steps after warm-up, and at "
            f"window_size={k} the first angle needs {3 * k} and the first decision {windows_to_decide * k}. Use a "
            "smaller window_size (or buffer_size), or 'auto'."
        )

    @staticmethod
    def of(scheduler: Any) -> AutoDrop:
        """The detector an :class:`~autodrop_hf.AutoDropScheduler` runs, whether or not ``accelerator.prepare``
        has wrapped it (``AutoDrop.of(lr_scheduler).drops``)."""
        detector = getattr(unwrap_scheduler(scheduler), "autodrop", None)
        if not isinstance(detector, AutoDrop):
            raise TypeError(
                f"{type(scheduler).__name__} runs no AutoDrop: AutoDrop.of takes an AutoDropScheduler (prepared by "
                "Accelerate or not); with a scheduler of your own, keep the AutoDrop you built."
            )
        return detector

    def set_horizon(self, num_training_steps: int | None) -> None:
        """Plan for ``num_training_steps`` optimizer steps from now on (``None``: unknown): the linear stairs
        head for it; ``window_size="auto"`` is resolved again while nothing has been observed yet."""
        self.num_training_steps = optional_count("num_training_steps", num_training_steps, minimum=1)
        self.drop_rule = self.config.resolve_drop_factor(self.num_training_steps)
        self._warned_past_horizon = False
        if self.angular_velocity.phase is WindowPhase.EMPTY and not self.angles:
            self.window_grows = self.config.window_grows(self.num_training_steps)
            size = self.config.resolve_window_size(self.num_training_steps, self.num_steps)
            self.angular_velocity.window_size = size
            self._set_window_size(size)
        self._warn_short_run()

    # ------------------------------------------------------------------------------- the loop
    def step(self) -> bool:
        """Observe the parameters after one optimizer step; return whether the LR was dropped.

        At a window end, :attr:`last_record` holds the window's record (the history file's format).
        """
        if not self._stepped_once():
            return False
        self.num_steps += 1
        self.last_record = None
        if self.num_training_steps is not None and self.num_steps > self.num_training_steps:
            self._warn_past_horizon()
        if not self._observing() or max(self.lr_scales) == 0.0:
            return False  # warm-up, or the learning rate is 0 for good: nothing moves, nothing to decide
        if self.window_grows and self.angular_velocity.phase is WindowPhase.EMPTY:
            self._grow_window()  # observation starts: windows sized from the steps taken so far
        means_taken = self.angular_velocity.means_taken
        angle = self.angular_velocity.observe()
        if self.weight_average is not None and self.angular_velocity.means_taken != means_taken:
            self.weight_average.update(*self.angular_velocity.window_means(), self.num_steps)
        if self.angular_velocity.steps_in_window != 0:
            return False
        self._update_momentum()
        result = self._close_window(angle)
        dropped = self._decide(result) if result.decided else False
        self._add_new_parameters()
        self.last_record = self._record(angle, result, dropped)  # the window just measured, its floor
        if result.decided and self.window_grows:
            self._grow_window()
        if self.history_file is not None and self._is_first_process():
            append_record(self.history_file, self.last_record)
        return dropped

    def _close_window(self, angle: float | None) -> SaturationResult:
        """Record a window's angle (``None``: the chain gives none yet) and hand it to the test."""
        if angle is None:
            return SaturationResult()
        self.angles.append(AngleRecord(self.num_steps, angle))
        result = self.test.update(angle)
        if result.decided and self.angular_velocity.track_span:
            result = hold_while_drifting(result, self.angular_velocity.take_variance_ratio(), self.config.drift_ratio)
        if result.smoothed is not None:
            self.smoothed.append(AngleRecord(self.num_steps, result.smoothed))
        return result

    def _decide(self, result: SaturationResult) -> bool:
        """Act on a decision of the test: record it, drop when saturated, say done; whether the LR dropped."""
        self.decisions.append(Decision(self.num_steps, result.statistic, result.saturated))
        self._warn_no_signal(result)
        if not result.saturated:
            return False
        self.test.reset()
        was_low, before = self._at_done_level(), self._learning_rate()
        dropped = self._drop()
        if dropped:
            logger.info(
                "AutoDrop: step %d: no progress (statistic %.3g): learning rate %.4g -> %.4g.",
                self.num_steps,
                result.statistic,
                before,
                self._learning_rate(),
            )
        if self.done_step is None and (was_low or max(self.lr_scales) == 0.0):
            self._say_done(result.statistic)
        return dropped

    def _stepped_once(self) -> bool:
        """Guard the call order: one call per optimizer step. A call with no optimizer step since the last one
        (a call per micro-batch, or an fp16 step the scaler skipped) is not counted; missed steps are said."""
        if self.optimizer_steps is None:
            return True
        stepped, self._counted = self.optimizer_steps.count - self._counted, self.optimizer_steps.count
        if stepped == 1:
            return True
        if not self._warned_order:
            if stepped == 0:
                problem = (
                    "with no optimizer step since its last call (not counted: an fp16 step the scaler skipped, "
                    "or a call per micro-batch?)"
                )
            else:
                problem = f"after {stepped} optimizer steps (counted as one)"
            warn(
                f"AutoDrop.step() was called {problem}. Call it once after every optimizer.step() (with gradient "
                "accumulation: once per optimizer step, not per micro-batch). Said once.",
                RuntimeWarning,
            )
            self._warned_order = True
        return stepped > 0

    def _drop(self) -> bool:
        """Lower the scale; whether some group's learning rate changed."""
        if self.drop_rule == "linear":
            factor = self._linear_factor()
        elif self.drop_rule == "power":
            factor = self._power_factor()
        else:
            factor = self.drop_rule
        old, scale = self.lr_scales, self.scale * factor
        new = [max(scale, floor) for floor in self.floors]
        if new != old and self.scheduler is not None:
            apply_lr_scales(self.scheduler, old, new)  # first: if it fails, the scale and the drops are unchanged
        self.scale = scale
        if new == old:
            return False
        self.drops.append(self.num_steps)
        return True

    def _linear_factor(self) -> float:
        """The step of a linear decay to 0 at step ``T`` over one decision interval, from here."""
        remaining = self.num_training_steps - self.num_steps
        interval = self.config.buffer_size * self.window_size
        return max(0.0, 1 - interval / remaining) if remaining > 0 else 0.0

    def _learning_rate(self) -> float:
        """The first parameter group's learning rate (the scale, without a scheduler)."""
        groups = self._optimizer_groups()
        return self.lr_scales[0] if groups is None else groups[0]["lr"]

    def _warn_past_horizon(self) -> None:
        if self._warned_past_horizon:
            return
        self._warned_past_horizon = True
        warn(
            f"AutoDrop planned num_training_steps={self.num_training_steps} optimizer steps, and the run goes on "
            f"(step {self.num_steps}): its drops were sized for the planned length. Pass the number of optimizer "
            "steps the run has (with Accelerate: count them after accelerator.prepare), or None when it is not "
            "known (the horizon-free rule). Said once."
        )

    def _power_factor(self) -> float:
        """The stair of an inverse-square-root decay from the previous decision to this one (the first
        decision is its start: no drop)."""
        if len(self.decisions) < 2:
            return 1.0
        return (self.decisions[-2].step / self.num_steps) ** self.config.power_exponent

    def _grow_window(self) -> None:
        """Growing windows: the window size the steps taken give, from the next window on."""
        size = self.config.resolve_window_size(self.num_training_steps, self.num_steps)
        if size == self.window_size:
            return
        self.angular_velocity.restart(size)
        self._set_window_size(size)

    def _set_window_size(self, size: int) -> None:
        self.window_size = size
        if self.momentum is not None:
            self.noise_floor = noise_floor(size, self.momentum)
            if isinstance(self.test, NoiseFloorTest):
                self.test.noise_floor = self.noise_floor

    def _at_done_level(self) -> bool:
        """Whether AutoDrop's scale of every group is at most ``done_scale``, or at its floor."""
        floors = zip(self.lr_scales, self.floors, strict=True)
        return all(scale <= max(self.config.done_scale, floor) for scale, floor in floors)

    def _say_done(self, statistic: float) -> None:
        self.done_step = self.num_steps
        logger.info(
            "AutoDrop: training is done at step %d: its drops have brought the learning rate to %.3g of the "
            "schedule's (done_scale %g) and the angle still shows no progress (z = %.2f, hold below -%g).",
            self.num_steps,
            max(self.lr_scales),
            self.config.done_scale,
            statistic,
            self.config.drift_z,
        )

    @property
    def done(self) -> bool:
        """Whether training is done: a decision found the angle saturated with every group's learning rate at
        most ``done_scale`` of its peak (or at its ``min_lr``), or the learning rate reached 0. It stays done."""
        return self.done_step is not None

    def averaged(self) -> contextlib.AbstractContextManager[None]:
        """A context in which the watched parameters hold the weight average (``config.average``), for an
        evaluation; after it they hold their own values again, bit for bit::

            with autodrop.averaged():
                evaluate(model)

        Before the first window mean (the warm-up and one window after it) the parameters are left as they are.
        Memory: a temporary copy of the parameters meanwhile."""
        return self._average().swapped_in()

    def load_average(self) -> None:
        """Write the weight average into the parameters for good: the model to keep, at the end of training."""
        self._average().copy_to_params()

    def _average(self) -> WeightAverage:
        if self.weight_average is None:
            raise RuntimeError("this AutoDrop keeps no weight average: build it with AutoDropConfig(average=True).")
        return self.weight_average

    @property
    def lr_scales(self) -> list[float]:
        """The factor each parameter group's learning rate is multiplied by: ``max(scale, floor)``."""
        return [max(self.scale, floor) for floor in self.floors]

    def _observing(self) -> bool:
        """Whether warm-up is over: after ``num_warmup_steps`` optimizer steps, or, by default, once
        the scheduler's ``last_epoch`` has passed its ``num_warmup_steps``."""
        if self.num_warmup_steps is not None:
            return self.num_steps > self.num_warmup_steps
        scheduler = unwrap_scheduler(self.scheduler)
        warmup = getattr(scheduler, "num_warmup_steps", None)
        return warmup is None or scheduler.last_epoch > warmup

    def _warn_no_signal(self, result: SaturationResult) -> None:
        if self._said_no_signal or not isinstance(self.test, NoiseFloorTest):
            return
        if abs(result.statistic) < self.config.drift_z:
            logger.warning(
                "AutoDrop: at window_size=%d the angle has stayed within noise of its floor ψ = %.2f° (momentum "
                "%.3g) for %d windows: it carries no sign of progress, training is noise-dominated here, and "
                "it drops the learning rate at every decision that finds no progress (said once).",
                self.window_size,
                self.noise_floor,
                self.momentum.beta,
                self.config.buffer_size,
            )
            self._said_no_signal = True

    def _add_new_parameters(self) -> None:
        """Watch tensors that became trainable (gradual unfreezing) from the next window on."""
        trainable = [p for p in self._candidates if p.requires_grad]
        if {id(p) for p in trainable} == self._watched_ids or not trainable:
            return
        added = sum(id(p) not in self._watched_ids for p in trainable)
        removed = len(self._watched_ids) - (len(trainable) - added)
        logger.info(
            "AutoDrop: %d tensors became trainable and %d frozen at step %d; watching %d tensors from the next "
            "window (angles need three new windows; the test starts a new buffer).",
            added,
            removed,
            self.num_steps,
            len(trainable),
        )
        self.angular_velocity = self._watch(trainable, self.angular_velocity.world_size)
        self.test.reset()

    def _is_first_process(self) -> bool:
        if self.angular_velocity.world_size == 1:
            return True
        return torch.distributed.get_rank(self.process_group) == 0

    def _record(self, angle: float | None, result: SaturationResult, dropped: bool) -> dict[str, Any]:
        groups = self._optimizer_groups()
        return {
            "step": self.num_steps,
            "angle": angle,
            "noise_floor": self.noise_floor,
            "statistic": _finite_or_none(result.statistic),
            "variance_ratio": result.variance_ratio,
            "smoothed": result.smoothed,
            "lr": None if groups is None else groups[0]["lr"],
            "lr_scale": self.scale,
            "dropped": dropped,
            "done": self.done,
            "window": self.window_size,
            "boundary": self._boundary(),
        }

    def _boundary(self) -> float:
        """The statistic where a decision turns from hold to drop: ``-drift_z`` (drop at or above it), or the
        paper's ``threshold`` (drop below it)."""
        return self.config.threshold if self.config.saturation_test == "smoothed_change" else -self.config.drift_z

    def log_dict(self) -> dict[str, float]:
        """The ``autodrop/*`` values for a logger (``accelerator.log``, TensorBoard): the last angle, its
        noise floor, the last decision's statistic, the last smoothed angle (paper's test), the scale and
        the number of drops, and whether training is done (1.0) or not (0.0). Keys without a value yet are
        left out (logs stay strict JSON)."""
        values: dict[str, float] = {}
        if self.angles:
            values["autodrop/angular_velocity"] = self.angles[-1].degrees
        if self.noise_floor is not None:
            values["autodrop/noise_floor"] = self.noise_floor
        if self.decisions and math.isfinite(self.decisions[-1].statistic):
            values["autodrop/statistic"] = self.decisions[-1].statistic
        if self.smoothed:
            values["autodrop/smoothed"] = self.smoothed[-1].degrees
        values["autodrop/lr_scale"] = self.scale
        values["autodrop/num_drops"] = len(self.drops)
        values["autodrop/done"] = float(self.done)
        return values

    # ------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume mid-window: plain Python values and the window buffers, which are the
        live tensors (save the state at once, or ``copy.deepcopy`` it to keep it in memory)."""
        return {
            "config": self.config.to_dict(),
            "num_steps": self.num_steps,
            "num_warmup_steps": self.num_warmup_steps,
            "scale": self.scale,
            "parameters": [list(p.shape) for p in self.angular_velocity.params],
            "angles": [list(record) for record in self.angles],
            "smoothed": [list(record) for record in self.smoothed],
            "decisions": [list(record) for record in self.decisions],
            "drops": list(self.drops),
            "done_step": self.done_step,
            "test": self.test.state_dict(),
            "angular_velocity": self.angular_velocity.state_dict(),
            **({} if self.weight_average is None else {"average": self.weight_average.state_dict()}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        The current configuration wins where that is well defined (``min_lr``, ``drop_factor``,
        ``threshold``, ``drift_z``). A change that cannot carry over — another saturation test, window
        size or buffer size, or other watched parameters — gives one warning and a fresh detector that
        keeps the learning-rate scale. A state with invalid values raises ``ValueError`` naming the field,
        and a failed load changes nothing. The scheduler's own state must be restored too (PyTorch
        convention); an :class:`~autodrop_hf.AutoDropLR` is re-synchronised here.
        """
        values = validated_state(state)
        saved = values["config"]
        changed = [
            f"{name} {saved.get(name)!r} -> {getattr(self.config, name)!r}"
            for name in ("saturation_test", "window_size", "buffer_size")
            if saved.get(name) != getattr(self.config, name)
        ]
        elements = self.angular_velocity.total_elements
        if _sample_stride(saved.get("sample_fraction"), elements) != self.config.sample_stride(elements):
            changed.append(f"sample_fraction {saved.get('sample_fraction')!r} -> {self.config.sample_fraction!r}")
        # a window size AutoDrop chose ("auto", "growing") is the saved run's: kept, even where the horizon moved
        saved_window = state["angular_velocity"]["window_size"]
        if state["parameters"] != [list(p.shape) for p in self.angular_velocity.params]:
            changed.append("the watched parameters (another model, or other trainable tensors)")
        elif [t.numel() for t in state["angular_velocity"].get("reference", [])] != [
            b.numel for b in self.angular_velocity.buffers
        ]:
            changed.append("the watched elements (another sharding, or another version's memory-light sample)")
        if changed:
            fresh_average = "" if self.weight_average is None else " and a fresh weight average"
            warn(
                f"AutoDrop state from a run with other settings ({'; '.join(changed)}): resuming with a fresh "
                f"detector{fresh_average} and the saved learning-rate scale {values['scale']:.6g}.",
                UserWarning,
            )
            if self.weight_average is not None:
                self.weight_average = WeightAverage(self.weight_average.gamma)
            self.num_steps = values["num_steps"]
            self.done_step = values["done_step"]
            self._set_scale(values["scale"])
            self._truncate_history()
            return
        test = self._new_test()
        test.load_state_dict(state["test"])
        average = None
        if self.weight_average is not None and "average" in state:  # without it the average starts afresh (below)
            if not isinstance(state["average"], dict):
                raise ValueError("AutoDrop state field 'average' is invalid: a dict (WeightAverage.state_dict()).")
            average = WeightAverage(self.weight_average.gamma)
            average.load_state_dict(state["average"], self.angular_velocity.window_means()[0])
        meter, window = self.angular_velocity, self.window_size
        if self.config.window_size in ("auto", "growing"):
            meter.window_size = saved_window
        try:
            meter.load_state_dict(state["angular_velocity"])  # validates before it copies
        except Exception:
            meter.window_size = window
            raise
        self.test = test
        if average is not None:
            self.weight_average = average
        elif self.weight_average is not None:  # a state saved without the average
            self.weight_average = WeightAverage(self.weight_average.gamma)
            warn(
                f"AutoDrop state saved without a weight average (average=False): the average starts afresh at "
                f"step {values['num_steps']} and holds only the steps from there.",
                UserWarning,
            )
        self._set_window_size(meter.window_size)
        self.done_step = values["done_step"]
        self.num_steps = values["num_steps"]
        self.num_warmup_steps = values["num_warmup_steps"]
        self.angles, self.smoothed = values["angles"], values["smoothed"]
        self.decisions, self.drops = values["decisions"], values["drops"]
        self._set_scale(values["scale"])
        self._truncate_history()

    def _truncate_history(self) -> None:
        """Drop the history file's records after the restored step: a resumed run writes them again."""
        if self.history_file is not None and self._is_first_process():
            resume_history(self.history_file, self.num_steps)

    def _set_scale(self, scale: float) -> None:
        """Restore the scale, and make the scheduler apply ``lr_scales`` (the current ``min_lr`` floors) where its
        restored state says what it applies (every scheduler but the plateau ones and ``OneCycleLR``)."""
        self.scale = scale
        scheduler = unwrap_scheduler(self.scheduler)
        if hasattr(scheduler, "set_lr_scale"):
            scheduler.set_lr_scale(self.lr_scales)
            return
        applied = None if scheduler is None else carried_lr_scales(scheduler)
        if applied is not None and applied != self.lr_scales:
            apply_lr_scales(self.scheduler, applied, self.lr_scales)

    def __repr__(self) -> str:
        return (
            f"AutoDrop(saturation_test={self.config.saturation_test!r}, window_size={self.window_size}, "
            f"noise_floor={self.noise_floor if self.noise_floor is None else round(self.noise_floor, 3)}, "
            f"drop_factor={self.config.drop_factor!r}, buffer_size={self.config.buffer_size}, "
            f"scale={self.scale:.6g}, drops={len(self.drops)})"
        )


def _sample_stride(fraction: Any, elements: int) -> int | None:
    """The stride a saved ``sample_fraction`` gave this model (``None``: not a valid fraction)."""
    try:
        return AutoDropConfig(sample_fraction=fraction).sample_stride(elements)
    except (TypeError, ValueError):
        return None


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _process_group(process_group: Any, accelerator: Any) -> tuple[Any, int]:
    """The group to all-reduce in, and its size (1: a single process)."""
    if process_group == "local" or (accelerator is not None and getattr(accelerator, "num_processes", 1) == 1):
        return None, 1
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        if process_group is not None or accelerator is not None:
            raise ValueError("AutoDrop was given a process group, but torch.distributed is not initialised.")
        launched = os.environ.get("WORLD_SIZE", "1")
        if launched.isdigit() and int(launched) > 1 and process_group != "local":
            warn(
                f"this process was launched as one of WORLD_SIZE={launched}, but torch.distributed is not "
                "initialised: every process trains alone, on all the data. On a CPU-only machine ask for the CPU "
                "(--use_cpu true for a Trainer script, Accelerator(cpu=True) in a loop) to form the process group."
            )
        return None, 1
    return process_group, torch.distributed.get_world_size(process_group)


def _check_averageable(meter: WindowedAngularVelocity, config: AutoDropConfig) -> None:
    """``average=True`` averages whole, replicated tensors: refuse a sample or sharded parameters at once."""
    if meter.sample_stride > 1:
        raise ValueError(
            f"average=True keeps an average of every trainable element, and sample_fraction="
            f"{config.sample_fraction!r} watches a sample of this model's {meter.total_elements:,}: set "
            "sample_fraction=1 (4 more bytes per element than the exact mode's 12), or leave average out."
        )
    if meter.is_sharded:
        raise ValueError(
            "average=True needs parameters that every process holds whole (one process, DDP, DeepSpeed ZeRO-1/2); "
            "these are sharded (FSDP2 or ZeRO-3): leave average out."
        )
