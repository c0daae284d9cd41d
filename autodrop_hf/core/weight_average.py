"""A polynomial-decay average of the weights, built from AutoDrop's window means: readable at any step, no horizon.

The per-step rule (Shamir and Zhang, 2013) is ``x̄_t = x̄_(t-1) + (γ+1)/(t+γ)·(x_t - x̄_(t-1))``: the weight of
step ``s`` in ``x̄_t`` falls as ``(s/t)^γ``, so with γ = 5 the average holds roughly the last fifth of the steps
taken, whatever the run's length. AutoDrop already sums the parameters over each window; this average is updated
once per window from that window's mean, as if each of its steps had been the mean, so it costs nothing per step
(one buffer of the watched elements, and a lerp per window). With windows of one step it is the per-step rule.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

#: γ of the polynomial-decay average.
AVERAGE_GAMMA = 5


def retained_weight(start: int, end: int, gamma: int = AVERAGE_GAMMA) -> float:
    """The weight the average of step ``start`` keeps at step ``end`` under the per-step rule:
    ``∏_{t=start+1}^{end} (t-1)/(t+γ) = ∏_{j=0}^{γ} (start+j)/(end+j)`` (0 when ``start`` is 0: nothing kept)."""
    return math.prod((start + j) / (end + j) for j in range(gamma + 1))


class WeightAverage:
    """The average of some tensors (their window means), swapped into them to read it.

    Args:
        gamma: γ of the polynomial-decay average.
    """

    def __init__(self, gamma: int = AVERAGE_GAMMA) -> None:
        self.gamma = gamma
        self.step = 0  #: the optimizer step of the last update (0: empty)
        self.params: list[Tensor] = []  #: the live tensors the average is of
        self.average: list[Tensor] = []

    @torch.no_grad()
    def update(self, params: Sequence[Tensor], means: Sequence[Tensor], step: int) -> None:
        """Take in the window means ``means`` of ``params`` at optimizer step ``step``: they stand for every step
        since the last update. Other tensors than the last update's (tensors that became trainable or frozen,
        even of the same shapes, or tensors given other shapes) start the average afresh from these means;
        tensors moved to another dtype or device (``model.double()``, ``.to(device)``) take their average with
        them."""
        same_tensors = len(self.params) == len(params) and all(a is b for a, b in zip(self.params, params, strict=True))
        shapes = [m.shape for m in means]
        if not same_tensors or [a.shape for a in self.average] != shapes or step <= self.step:
            self.average = [m.detach().clone() for m in means]
        else:
            self.average = [a.to(device=m.device, dtype=m.dtype) for a, m in zip(self.average, means, strict=True)]
            torch._foreach_lerp_(self.average, list(means), 1.0 - retained_weight(self.step, step, self.gamma))
        self.params = list(params)
        self.step = step

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Within the block the tensors hold the average (rounded to their dtype); after it, their own values,
        bit for bit. The live values are kept in a temporary copy meanwhile."""
        if not self.average:
            yield
            return
        live = self.swap_in()
        try:
            yield
        finally:
            self.swap_out(live)

    @torch.no_grad()
    def swap_in(self) -> list[Tensor]:
        """Write the average into the tensors (rounded to their dtype); their live values, for :meth:`swap_out`."""
        live = [p.detach().clone() for p in self.params]
        torch._foreach_copy_(self.params, self.average)
        return live

    @torch.no_grad()
    def swap_out(self, live: Sequence[Tensor]) -> None:
        """Give the tensors back the live values :meth:`swap_in` returned."""
        torch._foreach_copy_(self.params, list(live))

    @torch.no_grad()
    def is_swapped_in(self) -> bool:
        """Whether the tensors hold the average now (as :meth:`swapped_in` writes it, rounded to their dtype)."""
        return bool(self.average) and all(
            torch.equal(p, a.to(device=p.device, dtype=p.dtype)) for p, a in zip(self.params, self.average, strict=True)
        )

    @torch.no_grad()
    def copy_to_params(self) -> None:
        """Write the average into the tensors for good (the end of training)."""
        if self.average:
            torch._foreach_copy_(self.params, self.average)

    def state_dict(self) -> dict[str, Any]:
        """The step of the last update and the average (live tensors: save the state at once)."""
        return {"step": self.step, "average": self.average}

    def load_state_dict(self, state: dict[str, Any], params: Sequence[Tensor]) -> None:
        """Restore :meth:`state_dict` for ``params``; ``ValueError`` (and nothing changed) when it does not fit."""
        step, average = state.get("step"), state.get("average")
        if not (isinstance(step, int) and not isinstance(step, bool) and step >= 0 and isinstance(average, list)):
            raise ValueError(
                "AutoDrop state field 'average' is invalid: a dict with 'step' (an integer >= 0) and 'average' (a "
                "list of tensors), as WeightAverage.state_dict() gives."
            )
        if not all(isinstance(a, torch.Tensor) for a in average):
            raise ValueError("AutoDrop state field 'average' is invalid: its 'average' holds something not a tensor.")
        if average and [tuple(a.shape) for a in average] != [tuple(p.shape) for p in params]:
            raise ValueError("AutoDrop state's weight average does not fit the watched parameters.")
        if not all(bool(torch.isfinite(a).all()) for a in average):
            raise ValueError("AutoDrop state's weight average is not finite: it cannot be read.")
        self.average = [a.to(device=p.device).clone() for a, p in zip(average, params, strict=False)]
        self.params = list(params) if average else []
        self.step = step
