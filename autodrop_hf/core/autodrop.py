"""AutoDrop (Algorithm 1): drop the learning rate whenever the angular velocity saturates.

This is the one place the algorithm lives; the Trainer callback and the loop API drive it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from .angular_velocity import WindowedAngularVelocity, trainable_parameters
from .config import AutoDropConfig
from .saturation import SaturationDetector
from .scheduler import apply_lr_scale, lr_scale_of, unwrap_scheduler


class AutoDrop:
    """Watches the trainable parameters and lowers the learning rate at each saturation.

    Call :meth:`step` once after every optimizer step (after ``scheduler.step()``)::

        optimizer.step(); scheduler.step(); autodrop.step()

    Optimizer steps ``1 … num_warmup_steps`` are not observed; then every ``window_size`` steps
    the window-averaged parameters give a displacement, two displacements an angle, and the
    :class:`~autodrop_hf.saturation.SaturationDetector` decides. At a drop ``scale`` becomes
    ``max(min_lr / base_lr, drop_factor · scale)`` and the scheduler produces ``scale`` times its
    learning rate from the very next optimizer step.

    Args:
        model_or_params: a module, tensors, or optimizer parameter groups; only tensors with
            ``requires_grad=True`` count.
        config: hyper-parameters; defaults to the paper's.
        scheduler: the scheduler the drops act on: an :class:`~autodrop_hf.AutoDropLR`, any
            PyTorch/Hugging Face scheduler, or ``None`` to only keep :attr:`scale` and the records.
        accelerator: an ``accelerate.Accelerator`` (or ``PartialState``); with several processes
            the three partial sums of each window are all-reduced, so every process takes the same
            decisions.
        num_training_steps: planned optimizer steps ``T``, used by ``window_size="auto"``.
        num_warmup_steps: optimizer steps not observed. By default the scheduler's warm-up: with an
            :class:`~autodrop_hf.AutoDropLR`, observation starts once its ``last_epoch`` passes its
            ``num_warmup_steps`` — right also when Accelerate steps a prepared scheduler once per
            process per optimizer step; else 0.
        base_lr: the peak learning rate ``min_lr`` is relative to; defaults to the largest
            ``initial_lr`` of the scheduler's optimizer. Needed only when ``min_lr > 0``.
    """

    def __init__(
        self,
        model_or_params: nn.Module | Iterable[Any],
        config: AutoDropConfig | None = None,
        scheduler: Any = None,
        *,
        accelerator: Any = None,
        num_training_steps: int | None = None,
        num_warmup_steps: int | None = None,
        base_lr: float | None = None,
    ) -> None:
        self.config = config if config is not None else AutoDropConfig()
        if not isinstance(self.config, AutoDropConfig):
            raise TypeError(f"config must be an AutoDropConfig, got {type(self.config).__name__}.")
        self.scheduler = scheduler
        if num_warmup_steps is not None and (
            isinstance(num_warmup_steps, bool) or not isinstance(num_warmup_steps, int) or num_warmup_steps < 0
        ):
            raise ValueError(f"num_warmup_steps must be an integer >= 0, got {num_warmup_steps!r}.")
        self.num_warmup_steps = num_warmup_steps
        self.window_size = self.config.resolve_window_size(num_training_steps)
        self.min_scale = self._min_scale(base_lr)
        world_size = 1 if accelerator is None else accelerator.num_processes
        reduce_sums = None
        if world_size > 1:
            from accelerate.utils import reduce

            def reduce_sums(sums):
                return reduce(sums, reduction="sum")

        self.angular_velocity = WindowedAngularVelocity(
            trainable_parameters(model_or_params), self.window_size, reduce_sums, world_size
        )
        self.detector = SaturationDetector(self.config.buffer_size, self.config.threshold)
        self.scale = lr_scale_of(scheduler)  # 1.0, or the drops a restored scheduler carries
        self.num_steps = 0
        self.angles: list[tuple[int, float]] = []
        self.smoothed: list[tuple[int, float]] = []
        self.drops: list[int] = []

    def _min_scale(self, base_lr: float | None) -> float:
        if self.config.min_lr == 0:
            return 0.0
        if base_lr is None and self.scheduler is not None:
            groups = unwrap_scheduler(self.scheduler).optimizer.param_groups
            base_lr = max(float(g.get("initial_lr", g["lr"])) for g in groups)
        if base_lr is None or not base_lr > 0:
            raise ValueError(
                f"min_lr={self.config.min_lr} needs the peak learning rate: pass scheduler= or "
                f"base_lr= (a positive number), got base_lr={base_lr!r}."
            )
        return min(1.0, self.config.min_lr / base_lr)

    def step(self) -> bool:
        """Observe the parameters after one optimizer step; return whether the LR was dropped."""
        self.num_steps += 1
        if not self._observing():
            return False
        angle = self.angular_velocity.observe()
        if angle is None:
            return False
        self.angles.append((self.num_steps, angle))
        smoothed, saturated = self.detector.update(angle)
        if smoothed is not None:
            self.smoothed.append((self.num_steps, smoothed))
        if not saturated:
            return False
        self.detector.reset()
        self._set_scale(max(self.min_scale, self.config.drop_factor * self.scale))
        self.drops.append(self.num_steps)
        return True

    def _set_scale(self, scale: float) -> None:
        if self.scheduler is not None and scale != self.scale:
            apply_lr_scale(self.scheduler, self.scale, scale)
        self.scale = scale

    def _observing(self) -> bool:
        """Whether warm-up is over: after ``num_warmup_steps`` optimizer steps, or, by default, once
        the scheduler's ``last_epoch`` has passed its ``num_warmup_steps``."""
        if self.num_warmup_steps is not None:
            return self.num_steps > self.num_warmup_steps
        scheduler = unwrap_scheduler(self.scheduler)
        warmup = getattr(scheduler, "num_warmup_steps", None)
        return warmup is None or scheduler.last_epoch > warmup

    @property
    def window_ended(self) -> bool:
        """Whether the last :meth:`step` closed a window (observation has started)."""
        return self._observing() and self.angular_velocity.steps_in_window == 0

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume mid-window: plain Python values and the window buffers."""
        return {
            "config": self.config.to_dict(),
            "num_steps": self.num_steps,
            "num_warmup_steps": self.num_warmup_steps,
            "scale": self.scale,
            "min_scale": self.min_scale,
            "angles": [list(record) for record in self.angles],
            "smoothed": [list(record) for record in self.smoothed],
            "drops": list(self.drops),
            "detector": self.detector.state_dict(),
            "angular_velocity": self.angular_velocity.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`. The scheduler's own state must be restored too
        (PyTorch convention); an :class:`~autodrop_hf.AutoDropLR` is re-synchronised here."""
        self.angular_velocity.load_state_dict(state["angular_velocity"])
        self.detector.load_state_dict(state["detector"])
        self.num_steps = int(state["num_steps"])
        self.num_warmup_steps = state["num_warmup_steps"]
        self.min_scale = float(state["min_scale"])
        self.angles = [(int(s), float(a)) for s, a in state["angles"]]
        self.smoothed = [(int(s), float(c)) for s, c in state["smoothed"]]
        self.drops = [int(s) for s in state["drops"]]
        self.scale = float(state["scale"])
        if hasattr(unwrap_scheduler(self.scheduler), "set_lr_scale"):
            unwrap_scheduler(self.scheduler).set_lr_scale(self.scale)

    def __repr__(self) -> str:
        return (
            f"AutoDrop(window_size={self.window_size}, drop_factor={self.config.drop_factor}, "
            f"buffer_size={self.config.buffer_size}, threshold={self.config.threshold}, "
            f"min_lr={self.config.min_lr}, scale={self.scale:.6g}, drops={len(self.drops)})"
        )
