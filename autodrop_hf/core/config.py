"""AutoDrop hyper-parameters: one validated dataclass, the single source of truth, and its presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from .validation import describe, integer, real

#: The paper's test's window size when ``window_size="auto"`` and the planned number of steps is unknown (the
#: paper's CIFAR value).
DEFAULT_WINDOW_SIZE = 64
#: ``window_size="auto"`` aims at this many windows per run (the paper has 800-1,200).
AUTO_WINDOWS_PER_RUN = 1000
#: Growing windows (``window_size="growing"``, the noise-floor test's ``"auto"`` without a horizon) are at most
#: ``1 / GROWING_WINDOW_DIVISOR`` of the steps taken.
GROWING_WINDOW_DIVISOR = 50
#: ``drop_factor="power"``: drops are the stairs of the decay ``(t / t_0) ** -power_exponent``; its default ...
POWER_DECAY_EXPONENT = 0.5
#: The preset ``"anytime_average"`` holds while the variance ratio of a decision's window-mean displacements is at
#: least this (``drift_ratio``): the iterate got as far as independent steps of those sizes would carry it ...
AVERAGED_DRIFT_RATIO = 1.0
#: ... and otherwise halves the learning rate (the average, not a decay, removes the noise of the last iterate).
AVERAGED_DROP_FACTOR = 0.5
#: ``sample_fraction="auto"`` watches every element of a model with at most this many trainable elements ...
AUTO_EXACT_LIMIT = 10_000_000
#: ... and above it a sample of about this many (32,768 blocks of 8: a median angle error near 0.15°).
AUTO_SAMPLED_ELEMENTS = 262_144
#: The window sizes that are not a number, and the drop factors that are not a number.
WINDOW_SIZES = ("auto", "growing")
DROP_FACTORS = ("auto", "linear", "power")
#: The saturation tests: the default compares the angle with its noise floor; the paper's watches the smoothed angle.
SATURATION_TESTS = ("noise_floor", "smoothed_change")


@dataclass(frozen=True)
class AutoDropConfig:
    """Hyper-parameters of AutoDrop, checked at construction. The defaults are the library's rule; :meth:`paper`
    is the paper's, :meth:`anytime` the horizon-free rule, :meth:`anytime_average` the horizon-free rule read on a
    weight average. Example::

        AutoDropConfig(min_lr=1e-6)                   # the default rule, with a floor
        AutoDropConfig.anytime(stop_when_done=True)   # no step budget: stop when done
        AutoDropConfig.anytime_average()              # no step budget: evaluate and keep the average

    Args:
        saturation_test: ``"noise_floor"``: hold while the mean of ``buffer_size`` angles is ``drift_z`` standard
            errors below the noise floor ψ, else drop; ``"smoothed_change"``: the paper's test.
        window_size: optimizer steps per window; ``"auto"``: ``max(1, round(T / 1000))`` for ``T`` planned
            steps, ``"growing"`` without (64 for the paper's test); ``"growing"``: the largest power of 2 at
            most ``t / 50`` at step ``t``.
        drop_factor: a factor ρ in (0, 1); ``"linear"``: stairs of a linear decay to 0 at the last step;
            ``"power"``: stairs of ``(t / t_0) ** -power_exponent``; ``"auto"``: ``"linear"`` with ``T``, else
            ``"power"``.
        power_exponent: the exponent of ``drop_factor="power"``'s decay (0.5).
        buffer_size: angles per decision (at least 2).
        threshold: the paper's test: degrees of change of the smoothed angle under which it has saturated.
        drift_z: the noise-floor test: standard errors below ψ that mean progress.
        drift_ratio: the noise-floor test also holds while the variance ratio ``|s_1 + … + s_m|² / (|s_1|² + … +
            |s_m|²)`` of the decision's ``m`` window-mean displacements is at least this (dimensionless: about
            ``1/m`` for an iterate at rest in a noise ball, ``m`` for a straight line); ``None``: the angle alone
            (``anytime_average``: 1.0). One more buffer of the watched elements (4 bytes each).
        min_lr: floor of the learning rate, one value or one per parameter group.
        done_scale: done at a saturated decision once AutoDrop's scale is at most this (or at ``min_lr``).
        stop_when_done: the Trainer stops when AutoDrop says done.
        sample_fraction: the memory-light mode: the fraction of trainable elements watched, in blocks (1: all);
            ``"auto"``: all up to 10M trainable elements, about 262,144 above.
        average: keep a polynomial-decay average of the weights (about the last fifth of the steps, from the
            window means: no per-step cost, 4 more bytes per element), read for evaluation and kept at the end
            (:meth:`AutoDrop.averaged`); needs every element watched (``"auto"`` sampling then watches all) and
            parameters not sharded.

    ``docs/algorithm.md`` derives each: the test (§3), what a drop does (§4), the paper's rule (§5), the
    horizon-free rules and the average (§6b), the memory-light mode (§7).
    """

    saturation_test: Literal["noise_floor", "smoothed_change"] = field(
        default="noise_floor",
        metadata={
            "help": "'noise_floor': drop unless the mean angle is significantly below the angle pure noise "
            "gives (training still progressing); 'smoothed_change': the paper's test on the smoothed angle."
        },
    )
    window_size: int | Literal["auto", "growing"] = field(
        default="auto",
        metadata={
            "help": "Optimizer steps per AutoDrop window: an integer; 'growing' (the largest power of 2 at most "
            "1/50 of the steps taken); or 'auto' = max(1, round(T / 1000)) for T planned optimizer steps, "
            "'growing' if T is unknown."
        },
    )
    drop_factor: float | Literal["auto", "linear", "power"] = field(
        default="auto",
        metadata={
            "help": "What a drop does: a factor 0 < ρ < 1; 'linear' (stairs of a linear decay to 0 at the last "
            "step); 'power' (stairs of an inverse-square-root decay, no horizon needed); or 'auto' = 'linear' "
            "if the number of steps is known, else 'power'."
        },
    )
    power_exponent: float = field(
        default=POWER_DECAY_EXPONENT,
        metadata={"help": "drop_factor='power': the exponent of the decay its stairs follow, (t / t_0) ** -exponent."},
    )
    buffer_size: int = field(
        default=10,
        metadata={"help": "Angles per decision (m >= 2); the paper's test smooths this many."},
    )
    threshold: float = field(
        default=0.1,
        metadata={"help": "Paper's test: drop when two consecutive smoothed angles differ by less (degrees)."},
    )
    drift_z: float = field(
        default=2.0,
        metadata={"help": "Noise-floor test: standard errors below the noise floor that mean progress (hold)."},
    )
    drift_ratio: float | None = field(
        default=None,
        metadata={
            "help": "Noise-floor test: also hold while the variance ratio |s_1 + ... + s_m|^2 / sum |s_i|^2 of the "
            "decision's window-mean displacements is at least this (1/m at rest, m on a straight line)."
        },
    )
    min_lr: float | tuple[float, ...] = field(
        default=0.0,
        metadata={"help": "Floor of the learning rate (one value, or one per parameter group); drops stop there."},
    )
    done_scale: float = field(
        default=0.1,
        metadata={
            "help": "Training is done at a saturated decision once the learning rate is at most this fraction "
            "of its peak (or at min_lr)."
        },
    )
    stop_when_done: bool = field(
        default=False,
        metadata={"help": "Stop training when AutoDrop says it is done (evaluated and saved as at the end)."},
    )
    sample_fraction: float | Literal["auto"] = field(
        default="auto",
        metadata={
            "help": "Memory-light mode: watch this fraction of the parameters, in blocks (1 = all of them); 'auto': "
            "all up to 10M trainable parameters, about 262,144 of them above."
        },
    )
    average: bool = field(
        default=False,
        metadata={
            "help": "Keep a polynomial-decay average of the weights (from the window means: no per-step cost), "
            "evaluate on it and leave it in the model at the end of training."
        },
    )

    def __post_init__(self) -> None:
        if self.saturation_test not in SATURATION_TESTS:
            raise ValueError(f"saturation_test must be one of {SATURATION_TESTS}, got {self.saturation_test!r}.")
        window = self.window_size
        if window not in WINDOW_SIZES:
            window = integer("window_size", window, 1, "an integer from 1 to 2**31, 'auto' or 'growing'", 2**31)
            object.__setattr__(self, "window_size", window)
        if self.drop_factor not in DROP_FACTORS:
            allowed = "0 < drop_factor < 1, or 'auto', 'linear' or 'power'"
            value = real("drop_factor", self.drop_factor, allowed, lambda v: 0 < v < 1)
            object.__setattr__(self, "drop_factor", value)
        done = real("done_scale", self.done_scale, "0 < done_scale <= 1", lambda v: 0 < v <= 1)
        object.__setattr__(self, "done_scale", done)
        for flag in ("stop_when_done", "average"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be True or False, got {describe(getattr(self, flag))}.")
        exponent = real("power_exponent", self.power_exponent, "0 < power_exponent <= 2", lambda v: 0 < v <= 2)
        object.__setattr__(self, "power_exponent", exponent)
        if exponent != POWER_DECAY_EXPONENT and self.drop_factor not in ("power", "auto"):
            raise ValueError(
                f"power_exponent={exponent} is read only by drop_factor='power' (or 'auto' without a horizon), and "
                f"this config has drop_factor={self.drop_factor!r}: leave power_exponent out, or use 'power'."
            )
        if window == "growing" and self.saturation_test != "noise_floor":
            raise ValueError(
                "window_size='growing' needs saturation_test='noise_floor' (the paper's test compares consecutive "
                "angles, which a change of window size would shift): give the paper's test a window size."
            )
        buffer_size = integer("buffer_size", self.buffer_size, 2, "an integer from 2 to 2**31")
        object.__setattr__(self, "buffer_size", buffer_size)
        threshold = real("threshold", self.threshold, "threshold > 0 (degrees)", lambda v: v > 0)
        object.__setattr__(self, "threshold", threshold)
        drift_z = real("drift_z", self.drift_z, "drift_z >= 0 (standard errors)", lambda v: v >= 0)
        object.__setattr__(self, "drift_z", drift_z)
        if self.drift_ratio is not None:
            ratio = real("drift_ratio", self.drift_ratio, "drift_ratio > 0, or None", lambda v: v > 0)
            object.__setattr__(self, "drift_ratio", ratio)
        if self.sample_fraction != "auto":
            allowed = "1e-9 <= sample_fraction <= 1, or 'auto'"
            fraction = real("sample_fraction", self.sample_fraction, allowed, lambda v: 1e-9 <= v <= 1)
            object.__setattr__(self, "sample_fraction", fraction)
        if isinstance(self.min_lr, list | tuple):
            if not self.min_lr:
                raise ValueError("min_lr must be a number >= 0 or a non-empty list of them, got [].")
            floors = tuple(real("min_lr", v, "min_lr >= 0", lambda v: v >= 0) for v in self.min_lr)
            object.__setattr__(self, "min_lr", floors)
        else:
            object.__setattr__(self, "min_lr", real("min_lr", self.min_lr, "min_lr >= 0", lambda v: v >= 0))
        self._refuse_unread_settings()

    def _refuse_unread_settings(self) -> None:
        """``threshold`` is read by the paper's test only, ``drift_z`` and ``drift_ratio`` by the noise-floor test
        only: a value set for the test not in use would be ignored without a word."""
        defaults = {f.name: f.default for f in fields(self)}
        unread = ("drift_z", "drift_ratio") if self.saturation_test == "smoothed_change" else ("threshold",)
        for name in unread:
            if getattr(self, name) != defaults[name]:
                reader = "the paper's test (preset 'paper')" if name == "threshold" else "the noise-floor test"
                raise ValueError(
                    f"{name}={getattr(self, name)} is read only by {reader}, and this config uses "
                    f"saturation_test={self.saturation_test!r}: leave {name} out, or change the test."
                )

    @classmethod
    def paper(cls, **overrides: Any) -> AutoDropConfig:
        """The paper's rule (Algorithm 1, Section 4.1): the smoothed-change test, ρ = 0.95, m = 10,
        θ = 0.1°, ``window_size="auto"``. Keyword arguments override single values."""
        return cls(**{"saturation_test": "smoothed_change", "drop_factor": 0.95, **overrides})

    @classmethod
    def anytime(cls, **overrides: Any) -> AutoDropConfig:
        """The horizon-free rule, whether or not the number of steps is known: growing windows and
        inverse-square-root stairs (``window_size="growing"``, ``drop_factor="power"``); what ``"auto"`` gives
        a run of unknown length. Keyword arguments override single values."""
        return cls(**{"window_size": "growing", "drop_factor": "power", **overrides})

    @classmethod
    def anytime_average(cls, **overrides: Any) -> AutoDropConfig:
        """The horizon-free rule read on a weight average: growing windows, ``average=True``, and a rule that
        holds while the window means drift (``drift_ratio=1.0``, or the angle shows progress) and else halves
        the learning rate (``drop_factor=0.5``): the average removes the noise a decay would. Done after four
        halvings (``done_scale=0.1``) at a decision that still finds no progress. Keyword arguments override
        single values."""
        preset = {"drift_ratio": AVERAGED_DRIFT_RATIO, "drop_factor": AVERAGED_DROP_FACTOR, "average": True}
        return cls.anytime(**{**preset, **overrides})

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> AutoDropConfig:
        """``"default"`` (the library's rule), ``"anytime"`` (the horizon-free rule), ``"anytime_average"`` (read
        on a weight average) or ``"paper"``, with ``overrides``."""
        presets = {"default": cls, "anytime": cls.anytime, "anytime_average": cls.anytime_average, "paper": cls.paper}
        if name not in presets:
            raise ValueError(f"unknown AutoDrop preset {name!r}: use one of {sorted(presets)}.")
        return presets[name](**overrides)

    def replace(self, **changes: Any) -> AutoDropConfig:
        """A copy with ``changes`` (validated)."""
        return replace(self, **changes)

    def window_grows(self, num_training_steps: int | None) -> bool:
        """Whether the window grows with the steps taken: ``"growing"``, or ``"auto"`` for the noise-floor
        test without a planned step count."""
        if self.window_size == "auto":
            return not _known(num_training_steps) and self.saturation_test == "noise_floor"
        return self.window_size == "growing"

    def resolve_window_size(self, num_training_steps: int | None, step: int = 0) -> int:
        """The window size in optimizer steps at optimizer step ``step``, resolving ``"auto"`` from the
        planned step count and ``"growing"`` from ``step`` (:func:`growing_window_size`)."""
        if self.window_grows(num_training_steps):
            return growing_window_size(step)
        if self.window_size != "auto":
            return self.window_size
        if not _known(num_training_steps):
            return DEFAULT_WINDOW_SIZE
        return max(1, round(num_training_steps / AUTO_WINDOWS_PER_RUN))

    def resolve_drop_factor(self, num_training_steps: int | None) -> float | Literal["linear", "power"]:
        """ρ, ``"linear"`` or ``"power"``: ``"auto"`` is ``"linear"`` with a planned step count, else ``"power"``."""
        if self.drop_factor == "auto":
            return "linear" if _known(num_training_steps) else "power"
        if self.drop_factor == "linear" and not _known(num_training_steps):
            raise ValueError(
                "drop_factor='linear' decays to 0 at the last step and needs num_training_steps; without a "
                "horizon use 'power' or 'auto'."
            )
        return self.drop_factor

    def sample_stride(self, num_elements: int) -> int:
        """Watch every ``sample_stride``-th block of a model of ``num_elements`` trainable elements (all processes):
        ``round(1 / sample_fraction)``; with ``"auto"`` 1 up to :data:`AUTO_EXACT_LIMIT` elements, else the stride
        that keeps about :data:`AUTO_SAMPLED_ELEMENTS` (1 with ``average``, which keeps every element anyway)."""
        if self.sample_fraction == "auto":
            exact = self.average or num_elements <= AUTO_EXACT_LIMIT
            return 1 if exact else round(num_elements / AUTO_SAMPLED_ELEMENTS)
        return max(1, round(1 / self.sample_fraction))

    def min_lrs(self, num_groups: int) -> list[float]:
        """The learning-rate floor of each of ``num_groups`` parameter groups."""
        if isinstance(self.min_lr, tuple):
            if len(self.min_lr) != num_groups:
                raise ValueError(
                    f"min_lr has {len(self.min_lr)} values, the optimizer has {num_groups} parameter groups: "
                    "give one value per group, or a single number."
                )
            return list(self.min_lr)
        return [self.min_lr] * num_groups

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of the hyper-parameters, in declaration order."""
        return [f.name for f in fields(cls)]

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python copy, for logs and checkpoints."""
        values = asdict(self)
        if isinstance(values["min_lr"], tuple):
            values["min_lr"] = list(values["min_lr"])
        return values


def _known(num_training_steps: int | None) -> bool:
    return num_training_steps is not None and num_training_steps > 0


def growing_window_size(step: int) -> int:
    """``window_size="growing"`` at optimizer step ``step``: the largest power of 2 that is at most
    ``step / GROWING_WINDOW_DIVISOR`` (at least 1)."""
    return 1 << max(0, int(step // GROWING_WINDOW_DIVISOR).bit_length() - 1)
