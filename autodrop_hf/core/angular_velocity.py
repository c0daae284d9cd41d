"""Batch angular velocity (Definition 3.3): the angle between consecutive displacements of
window-averaged parameters, measured without ever materialising a window's parameters twice.

Numerics (docs/algorithm.md, "Numerics"): every window sum is accumulated relative to the previous window
mean ``y_{i-1}``, so the displacement ``s_i = y_i - y_{i-1}`` is the accumulator divided by the
window size, not a difference of two large numbers. Buffers are float32 (float64 when a parameter
is float64) whatever the parameter dtype. The per-step work is one multi-tensor add of the parameters
and one subtraction over a flat buffer, with no host synchronisation; the one synchronisation per
window reads three float64 sums.

Several processes (docs/algorithm.md): each process works on the tensors it holds — the local shard of a
``DTensor`` parameter (FSDP2), or the whole tensor of a replicated one (DDP) — and its three partial
sums are all-reduced. A tensor held by ``R`` processes (``R`` = world size for plain tensors, the
product of the mesh sizes along ``Replicate`` placements for a ``DTensor``) enters the sums with weight
``1/R``, so sharded, replicated and mixed models all give the single-process angle exactly.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .user_warnings import warn

logger = logging.getLogger("autodrop_hf")

#: The paper's ε in ``cos = <a, b> / (‖a‖‖b‖ + ε)``. Zero displacements never reach the formula
#: (their window is skipped), so ε only guards the division and is far below any real product.
COSINE_EPSILON = 1e-30
#: Elements per chunk of the per-window dot products (chunks are summed in float64).
_REDUCTION_CHUNK = 1 << 20
#: Elements per block of the memory-light mode (32 bytes of float32: a GPU memory sector, half a CPU cache
#: line): contiguous, so that memory traffic shrinks with the sample, and small, so that the sample spreads
#: over many rows of every matrix (docs/algorithm.md, "Numerics and cost"). The largest block: see
#: :func:`sample_block_size`.
SAMPLE_BLOCK = 8
#: Blocks the memory-light mode aims to watch (across all processes): its angle error shrinks as one over
#: the square root of the watched blocks, about :data:`SAMPLED_ANGLE_ERROR_SCALE` / √n degrees (median),
#: 0.21° at this count.
TARGET_SAMPLED_BLOCKS = 16_384
#: Degrees times √(watched blocks): the median angle error of the memory-light mode measured on fine-tuning
#: runs (MiniLM on CoLA, a Multi30k Transformer; blocks of 4 to 64 elements: 22 to 30).
SAMPLED_ANGLE_ERROR_SCALE = 27.0
#: Seed of the sampled blocks' offset: the same subset on every process and after a resume.
SAMPLE_SEED = 0
#: The window buffers of a state dict, in the order of ``buffer_versions``.
_BUFFER_NAMES = ("reference", "window_sum", "previous")


def candidate_parameters(model_or_params: nn.Module | Iterable[Any]) -> list[Tensor]:
    """The distinct floating-point tensors of a module, of tensors or of optimizer-style parameter
    groups (dicts with a ``"params"`` key), frozen ones included: those AutoDrop may watch.

    FSDP1 modules are refused (their flat parameters do not say which elements each process holds),
    and so are tensors on the ``meta`` device (they hold no values: materialise the model first).
    """
    if isinstance(model_or_params, nn.Module):
        from torch.distributed.fsdp import FullyShardedDataParallel

        if any(isinstance(m, FullyShardedDataParallel) for m in model_or_params.modules()):
            raise ValueError(
                "AutoDrop does not support FSDP1 (FullyShardedDataParallel) flat parameters: use FSDP2 "
                "(torch.distributed.fsdp.fully_shard, or fsdp_version: 2 in Accelerate/Trainer)."
            )
        candidates: Iterable[Any] = model_or_params.parameters()
    else:
        candidates = []
        for item in model_or_params:
            if isinstance(item, dict):
                candidates.extend(item["params"])
            else:
                candidates.append(item)
    found: dict[int, Tensor] = {}
    for tensor in candidates:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"AutoDrop expects a model, tensors or parameter groups, got {type(tensor).__name__}.")
        if tensor.is_floating_point():
            if tensor.is_meta:
                raise ValueError(
                    "AutoDrop cannot watch parameters on the meta device (they hold no values): create "
                    "AutoDrop after the model is materialised (to_empty(), load_state_dict, or from_pretrained)."
                )
            found.setdefault(id(tensor), tensor)
    return list(found.values())


def trainable_parameters(model_or_params: nn.Module | Iterable[Any]) -> list[Tensor]:
    """The candidate tensors (:func:`candidate_parameters`) with ``requires_grad=True``; frozen tensors
    (PEFT/LoRA base weights) are left out."""
    found = [tensor for tensor in candidate_parameters(model_or_params) if tensor.requires_grad]
    if not found:
        raise ValueError(
            "AutoDrop found no trainable parameters (floating point, requires_grad=True): "
            "pass the model, or the parameters the optimizer updates."
        )
    return found


def angle_degrees(dot: float, norm_sq_a: float, norm_sq_b: float) -> float:
    """``(180/π)·arccos(<a,b> / (‖a‖‖b‖ + ε))``, clamped into [0, 180] degrees."""
    cosine = dot / (math.sqrt(norm_sq_a) * math.sqrt(norm_sq_b) + COSINE_EPSILON)
    return math.degrees(math.acos(min(1.0, max(-1.0, cosine))))


def _zero3_partition(param: Tensor) -> Tensor | None:
    """DeepSpeed ZeRO-3's partition of ``param`` on this process (its ``ds_tensor``; the parameter itself is then
    an empty placeholder), or None for any other parameter: the one place that reads DeepSpeed's attribute."""
    return getattr(param, "ds_tensor", None)


def _local_tensor(param: Tensor) -> Tensor:
    """The part of ``param`` this process holds: a live view, updated by the optimizer in place — the local
    shard of a ``DTensor`` (FSDP2), DeepSpeed ZeRO-3's partition, or the parameter."""
    partition = _zero3_partition(param)
    if partition is not None:
        return partition
    to_local = getattr(param, "to_local", None)  # DTensor
    return param if to_local is None else to_local()


def _version(tensor: Tensor) -> int:
    """The count of in-place writes to ``tensor`` (PyTorch's ``Tensor._version``, by which autograd detects a
    saved tensor modified in place): tells a live buffer that has changed since a state dict was taken."""
    return tensor._version


def global_numel(param: Tensor) -> int:
    """The number of elements of the whole parameter, on all processes together: a ``DTensor``'s global
    size, DeepSpeed ZeRO-3's ``ds_numel`` (the parameter itself is an empty placeholder), or its own."""
    return getattr(param, "ds_numel", None) or param.numel()


def _replication(param: Tensor, world_size: int) -> int:
    """How many processes hold the same elements as this process does for ``param``."""
    if _zero3_partition(param) is not None:
        return 1  # DeepSpeed ZeRO-3: disjoint partitions (the padding of the last one never moves)
    placements = getattr(param, "placements", None)
    if placements is None:
        return world_size  # a plain tensor in a multi-process run is replicated (DDP, DeepSpeed ZeRO-1/2)
    replication = 1
    for dim, placement in enumerate(placements):
        if placement.is_partial():
            raise ValueError(f"AutoDrop cannot watch a DTensor parameter with a Partial placement ({placements}).")
        if placement.is_replicate():
            replication *= param.device_mesh.size(dim)
    return replication


def sample_block_size(num_elements: int, stride: int) -> int:
    """Elements per block of the memory-light mode for a sample of every ``stride``-th block of
    ``num_elements`` elements: :data:`SAMPLE_BLOCK`, halved (down to 1) while the sample would hold fewer
    than :data:`TARGET_SAMPLED_BLOCKS` blocks. The memory is the same (a fraction ``1/stride`` of the
    elements); smaller blocks cost more time per watched element but estimate the angle better on a model
    too small to give that many blocks of 8."""
    block = SAMPLE_BLOCK
    while block > 1 and num_elements // (block * stride) < TARGET_SAMPLED_BLOCKS:
        block //= 2
    return block


def _in_memory_order(tensor: Tensor) -> Tensor | None:
    """A flat live view of ``tensor``'s elements in the order they lie in memory, or ``None`` when they do
    not fill their memory without gaps."""
    order = sorted(range(tensor.dim()), key=tensor.stride, reverse=True)
    permuted = tensor.permute(order)
    return permuted.view(-1) if permuted.is_contiguous() else None


def sampled_blocks(tensors: Sequence[Tensor], stride: int, block: int = SAMPLE_BLOCK) -> list[Tensor]:
    """Every ``stride``-th block of ``block`` contiguous elements of ``tensors`` (in order, each tensor cut
    into blocks, its last one partial), as live views; ``stride == 1``: the tensors themselves.

    A tensor's sampled full blocks are one strided ``(n, block)`` view (every ``stride``-th row of the tensor
    seen as rows of ``block``), its sampled partial last block another, so the per-step work is a few ops
    per tensor whatever the block size. The offset of the first block is fixed by :data:`SAMPLE_SEED`, so
    every process and every resume picks the same blocks of the same tensors. Each element is in the sample
    with probability ``1/stride``: the three sums of a window are estimated up to that common factor, which
    cancels in the cosine. A tensor is cut in the order of its memory (a ``channels_last`` or transposed
    tensor too); one whose elements leave gaps in memory (a strided slice) is one block.
    """
    if stride == 1:
        return list(tensors)
    offset = SAMPLE_SEED % stride
    views, index = [], 0  # index: the number of the tensor's first block among all blocks
    for tensor in tensors:
        flat = _in_memory_order(tensor)
        if flat is None:
            if index % stride == offset:
                views.append(tensor)
            index += 1
            continue
        full = flat.numel() // block
        rows = flat[: full * block].view(full, block)[(offset - index) % stride :: stride]
        if rows.numel():
            views.append(rows)
        if flat.numel() % block and (index + full) % stride == offset:
            views.append(flat[full * block :])
        index += full + (flat.numel() % block > 0)
    return views


class _DeviceBuffers:
    """Flat window buffers for local tensors on one device that share one replication count.

    ``reference`` holds the previous window mean, ``window_sum`` the running sum of
    ``x_t - reference`` (k times the displacement at a window end; between windows what it holds is
    over, and a window's first step overwrites it), ``previous`` the previous one; the angle does not
    depend on the common factor k, so it is never divided out. Each is one flat tensor with a view per
    tensor, so the per-step add is multi-tensor and the per-step subtraction and per-window reductions
    are single ops.
    """

    def __init__(
        self,
        params: list[Tensor],
        device: torch.device,
        replication: int,
        sample_stride: int = 1,
        sample_block: int = SAMPLE_BLOCK,
        span: bool = False,
    ) -> None:
        self.dtype = torch.float64 if any(p.dtype == torch.float64 for p in params) else torch.float32
        self.params = sampled_blocks(params, sample_stride, sample_block)
        sampled = sample_stride > 1
        self.num_blocks = sum(-(-p.numel() // sample_block) for p in self.params) if sampled else len(params)
        self.replication = replication
        self.numel = sum(p.numel() for p in self.params)
        self.reference, self.reference_views = self._flat(device)
        self.window_sum, self.window_sum_views = self._flat(device)
        self.previous, self.previous_views = self._flat(device)
        self.span = torch.zeros(self.numel, dtype=self.dtype, device=device) if span else None

    def _flat(self, device: torch.device) -> tuple[Tensor, list[Tensor]]:
        flat = torch.zeros(self.numel, dtype=self.dtype, device=device)
        views, offset = [], 0
        for p in self.params:
            views.append(flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
        return flat, views

    def swap_window_sum_and_previous(self) -> None:
        self.window_sum, self.previous = self.previous, self.window_sum
        self.window_sum_views, self.previous_views = self.previous_views, self.window_sum_views

    def partial_sums(self) -> Tensor:
        """``[<s, s_prev>, ‖s‖², ‖s_prev‖²]``, with ``s`` held in ``window_sum``.

        Dot products run in the buffer dtype over chunks of 2^20 elements and the chunks are summed
        in float64: the error stays at the level of one chunk (relative ~1e-7) for any model size.
        """
        sums = torch.zeros(3, dtype=torch.float64, device=self.window_sum.device)
        for start in range(0, self.numel, _REDUCTION_CHUNK):
            current = self.window_sum[start : start + _REDUCTION_CHUNK]
            previous = self.previous[start : start + _REDUCTION_CHUNK]
            sums += torch.stack((current.dot(previous), current.dot(current), previous.dot(previous))).double()
        return sums / self.replication

    def span_norm_sq(self) -> Tensor:
        """``‖s_1 + … + s_m‖²`` of the displacements summed in ``span`` (chunked as :meth:`partial_sums`)."""
        total = torch.zeros((), dtype=torch.float64, device=self.span.device)
        for start in range(0, self.numel, _REDUCTION_CHUNK):
            chunk = self.span[start : start + _REDUCTION_CHUNK]
            total += chunk.dot(chunk).double()
        return total / self.replication


class WindowPhase(enum.Enum):
    """Where a :class:`WindowedAngularVelocity` stands; each window end moves it one phase on, up to
    ``MEASURING``. A skipped window (no movement, or non-finite values) leaves it where it is, except
    that a bad snapshot sends ``SNAPSHOT`` back to ``EMPTY``."""

    EMPTY = "empty"  # nothing observed: the next step's parameters become the reference snapshot
    SNAPSHOT = "snapshot"  # the reference is a snapshot; the first window accumulates against it
    FIRST_MEAN = "first_mean"  # the reference is a window mean; no displacement yet
    MEASURING = "measuring"  # the previous displacement exists: every window end gives an angle


class WindowedAngularVelocity:
    """Measures the batch angular velocity of a set of parameters, one window at a time.

    Call :meth:`observe` once after every optimizer step. It returns the angle in degrees at the
    end of a window once three complete windows exist (two displacements), ``None`` otherwise.
    A window whose displacement is zero (no movement) or non-finite (NaN/inf parameters) gives no
    angle: it is skipped with a single warning and the previous displacement is kept.

    Args:
        params: the tensors to watch (see :func:`trainable_parameters`).
        window_size: optimizer steps per window, ``k``.
        reduce_sums: all-reduce (sum) of the three float64 partial sums across processes, with
            several processes; one call of 24 bytes per window.
        world_size: number of processes; plain tensors count as replicated on all of them.
        sample_stride: watch every ``sample_stride``-th block of each process's local elements
            (:func:`sampled_blocks`): memory and per-step work shrink by that factor; 1 watches everything.
        sample_block: elements per block of the memory-light mode; ``None``: :func:`sample_block_size` of
            the model's elements (a ``DTensor`` counts its global size), the same on every process.
        track_span: also sum the displacements that give angles, for :meth:`take_variance_ratio` (one more
            buffer of the watched elements).
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        window_size: int,
        reduce_sums: Callable[[Tensor], Tensor] | None = None,
        world_size: int = 1,
        sample_stride: int = 1,
        sample_block: int | None = None,
        track_span: bool = False,
    ) -> None:
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}.")
        self.window_size = window_size
        self.params = list(params)
        self.reduce_sums = reduce_sums
        self.world_size = world_size
        self.sample_stride = sample_stride
        self.total_elements = sum(global_numel(p) for p in params)  # the model's, on all processes together
        if sample_block is None:
            sample_block = sample_block_size(self.total_elements, sample_stride)
        self.sample_block = sample_block
        self.track_span = track_span
        self.span_sum_sq = 0.0  #: ‖s_1‖² + … + ‖s_m‖² of the displacements summed in the span buffers
        self._build_buffers()
        self.steps_in_window = 0
        self.phase = WindowPhase.EMPTY
        self._warned_skip = False
        self.means_taken = 0  #: window means taken into the reference so far (in this process's life)

    def _build_buffers(self) -> None:
        """Window buffers (and in the memory-light mode the sampled views) for where the parameters live now."""
        groups: dict[tuple[torch.device, int], list[Tensor]] = {}
        for p in self.params:
            local = _local_tensor(p)
            groups.setdefault((local.device, _replication(p, self.world_size)), []).append(local)
        stride, block = self.sample_stride, self.sample_block
        self.buffers = [_DeviceBuffers(group, *key, stride, block, self.track_span) for key, group in groups.items()]
        self.span_sum_sq = 0.0
        self._sum_device = self.buffers[0].reference.device
        self._plain = all(_local_tensor(p) is p for p in self.params)
        self._storage = self._storage_now()

    def _storage_now(self) -> list[int]:
        """Where each watched tensor's memory starts (a new dtype or device is new memory too)."""
        if self._plain:
            return [p.data_ptr() for p in self.params]
        return [_local_tensor(p).data_ptr() for p in self.params]

    def _refresh_storage(self) -> None:
        """``model.to(...)``, ``model.double()`` or a wrapper given the parameters new memory after this meter
        was built: watch the new memory (the old views would watch memory nothing writes any more) and start
        the windows afresh (three windows before the next angle)."""
        self._build_buffers()
        self.steps_in_window = 0
        self.phase = WindowPhase.EMPTY
        logger.info(
            "AutoDrop: the watched parameters were given new memory (model.to, .double(), a wrapper) after it was "
            "built; watching the new memory from this step, the windows start afresh."
        )

    @property
    def num_parameters(self) -> int:
        """Number of scalar parameters watched (on this process): all of them, or the sampled blocks."""
        return sum(b.numel for b in self.buffers)

    @property
    def num_blocks(self) -> int:
        """Number of tensors watched (on this process), or in the memory-light mode of sampled blocks
        (a tensor with gaps in memory, sampled whole, counts as its elements over the block size, rounded up)."""
        return sum(b.num_blocks for b in self.buffers)

    def with_block(self, sample_block: int) -> WindowedAngularVelocity:
        """A new, empty meter of the same parameters and settings that cuts blocks of ``sample_block``
        elements (to compare block sizes on one run)."""
        return WindowedAngularVelocity(
            self.params,
            self.window_size,
            self.reduce_sums,
            self.world_size,
            self.sample_stride,
            sample_block,
            self.track_span,
        )

    def restart(self, window_size: int) -> None:
        """Continue with windows of ``window_size`` steps, at a window end: the last window mean stays the
        reference, and displacements and angles start anew from the next window (its first angle is three
        windows away), so that no angle mixes two window sizes."""
        if self.steps_in_window != 0:
            raise RuntimeError("the window size can change only at a window end.")
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}.")
        self.window_size = window_size
        if self.phase is not WindowPhase.EMPTY:
            self.phase = WindowPhase.SNAPSHOT

    def window_means(self) -> tuple[list[Tensor], list[Tensor]]:
        """The watched tensors (each process's own part) and the mean of each over the last window taken
        (:attr:`means_taken`): the reference buffers, live. Exact mode only: a sample has no whole tensors."""
        if self.sample_stride > 1:
            raise RuntimeError("window means of whole tensors need the exact mode (sample_fraction=1).")
        return [p for b in self.buffers for p in b.params], [m for b in self.buffers for m in b.reference_views]

    @property
    def num_blocks_in_all_processes(self) -> int:
        """Blocks watched by all processes together, each counted once: about :attr:`total_elements` over
        the block size and the stride (the same number on every process)."""
        return -(-self.total_elements // (self.sample_block * self.sample_stride))

    @property
    def is_sharded(self) -> bool:
        """Whether this process holds elements that not every process holds (its state is its own)."""
        return any(b.replication < self.world_size for b in self.buffers)

    @torch.no_grad()
    def observe(self) -> float | None:
        """Add the current parameters to the window; at a window end, return the new angle. At a window's
        first step, parameters given new memory since the last window are followed (:meth:`_refresh_storage`)."""
        if self.steps_in_window == 0 and self._storage_now() != self._storage:
            self._refresh_storage()
        for b in self.buffers:
            if self.phase is WindowPhase.EMPTY:
                torch._foreach_copy_(b.reference_views, b.params)
            if self.steps_in_window == 0:  # a window's first step: what the sums held is over, overwrite it
                torch._foreach_copy_(b.window_sum_views, b.params)
            else:
                torch._foreach_add_(b.window_sum_views, b.params)
            b.window_sum.sub_(b.reference)  # flat buffers: one op, whatever the number of tensors
        if self.phase is WindowPhase.EMPTY:
            self.phase = WindowPhase.SNAPSHOT
        self.steps_in_window += 1
        if self.steps_in_window < self.window_size:
            return None
        self.steps_in_window = 0
        return self._close_window()

    def _close_window(self) -> float | None:
        # window_sum holds k·s_i, with s_i = y_i - y_{i-1}; previous holds k·s_{i-1}.
        sums = torch.zeros(3, dtype=torch.float64, device=self._sum_device)
        for b in self.buffers:
            sums += b.partial_sums().to(self._sum_device)
        if self.reduce_sums is not None:
            sums = self.reduce_sums(sums)
        dot, norm_sq, previous_norm_sq = sums.tolist()  # the one host sync per window
        if self.phase is WindowPhase.SNAPSHOT:
            # First window: the reference is a snapshot and only the window mean matters; it may
            # equal the snapshot (a window of one step), but it must be finite.
            if not math.isfinite(norm_sq):
                self._skip_window(norm_sq)
                return None
            for b in self.buffers:
                b.reference.add_(b.window_sum, alpha=1 / self.window_size)
            self.means_taken += 1
            self.phase = WindowPhase.FIRST_MEAN
            return None
        measuring = self.phase is WindowPhase.MEASURING
        usable = math.isfinite(norm_sq) and norm_sq > 0.0 and (math.isfinite(dot) or not measuring)
        if not usable:
            self._skip_window(norm_sq)
            return None
        angle = angle_degrees(dot, norm_sq, previous_norm_sq) if measuring else None
        if measuring and self.track_span:  # the displacement that gave this angle joins the span
            for b in self.buffers:
                b.span.add_(b.window_sum, alpha=1 / self.window_size)
            self.span_sum_sq += norm_sq / self.window_size**2
        for b in self.buffers:
            b.reference.add_(b.window_sum, alpha=1 / self.window_size)  # the reference is now y_i
            b.swap_window_sum_and_previous()  # s_i becomes the previous displacement
        self.means_taken += 1
        self.phase = WindowPhase.MEASURING
        return angle

    @torch.no_grad()
    def take_variance_ratio(self) -> float | None:
        """The variance ratio ``‖s_1 + … + s_m‖² / (‖s_1‖² + … + ‖s_m‖²)`` of the displacements that gave angles
        since the last call (``track_span``), and a new span from here; ``None`` when there were none.

        How far the window means got, against how far independent steps of the same sizes would carry them: about
        ``1/m`` for an iterate at rest in a noise ball (the sum telescopes to the difference of two means), 1.5 to
        2.6 for a random walk (momentum 0.9: window means correlate neighbours), ``m`` for a straight line. With
        several processes it costs one all-reduce of 8 bytes, at the calls only.
        """
        if not self.track_span:
            raise RuntimeError("this meter sums no span: build it with track_span=True.")
        total = torch.zeros((), dtype=torch.float64, device=self._sum_device)
        for b in self.buffers:
            total += b.span_norm_sq().to(self._sum_device)
            b.span.zero_()
        if self.reduce_sums is not None:
            total = self.reduce_sums(total)
        sum_sq, self.span_sum_sq = self.span_sum_sq, 0.0
        return float(total) / sum_sq if sum_sq > 0.0 else None

    def _skip_window(self, norm_sq: float) -> None:
        if not self._warned_skip:
            reason = "is zero (the parameters did not move)" if norm_sq == 0.0 else "is not finite"
            warn(
                f"AutoDrop: the displacement of the window-averaged parameters {reason}; "
                "skipping this window (this warning is shown once).",
                RuntimeWarning,
            )
            self._warned_skip = True
        if self.phase is WindowPhase.SNAPSHOT:
            self.phase = WindowPhase.EMPTY  # the snapshot itself may be bad: take a new one

    def state_dict(self) -> dict[str, Any]:
        """Flags and the window buffers, readable with ``weights_only``.

        The buffers are this meter's live tensors, not copies (as in ``Module.state_dict``): save the state
        at once, or ``copy.deepcopy`` it to keep it in memory. ``buffer_versions`` lets
        :meth:`load_state_dict` refuse a kept state whose buffers have changed since.
        """
        buffers = {name: [getattr(b, name) for b in self.buffers] for name in _BUFFER_NAMES}
        return {
            "window_size": self.window_size,
            "steps_in_window": self.steps_in_window,
            "phase": self.phase.value,
            "warned_skip": self._warned_skip,
            **buffers,
            "buffer_versions": [_version(tensor) for name in _BUFFER_NAMES for tensor in buffers[name]],
            **({"span": [b.span for b in self.buffers], "span_sum_sq": self.span_sum_sq} if self.track_span else {}),
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; raises ``ValueError`` (and changes nothing) when the state does not
        fit this window size and these parameters."""
        if state["window_size"] != self.window_size:
            raise ValueError(
                f"AutoDrop state has window_size={state['window_size']}, this run uses "
                f"{self.window_size}: resume with the same window_size."
            )
        sizes = [b.numel for b in self.buffers]
        for name in _BUFFER_NAMES:
            saved = [t.numel() for t in state[name]]
            if saved != sizes:
                raise ValueError(
                    f"AutoDrop state holds {name} buffers of sizes {saved}, this model's trainable parameters "
                    f"need {sizes}: the checkpoint is from a different model or sharding."
                )
        live = {id(getattr(b, name)) for b in self.buffers for name in _BUFFER_NAMES}
        tensors = [tensor for name in _BUFFER_NAMES for tensor in state[name]]
        versions = state.get("buffer_versions")
        if versions is not None and any(
            id(t) in live and _version(t) != v for t, v in zip(tensors, versions, strict=True)
        ):
            raise ValueError(
                "AutoDrop state holds this detector's live window buffers, which have changed since the state was "
                "taken: keep a state in memory with copy.deepcopy(state_dict()), or save it to disk."
            )
        steps_in_window = int(state["steps_in_window"])
        if not 0 <= steps_in_window < self.window_size:
            raise ValueError(f"AutoDrop state has steps_in_window={steps_in_window}, outside [0, {self.window_size}).")
        phase = WindowPhase(state["phase"])
        spans = state.get("span") if self.track_span else None
        if spans is not None and [t.numel() for t in spans] != sizes:
            raise ValueError(f"AutoDrop state holds span buffers of sizes {[t.numel() for t in spans]}, need {sizes}.")
        for b, reference, window_sum, previous in zip(
            self.buffers, state["reference"], state["window_sum"], state["previous"], strict=True
        ):
            b.reference.copy_(reference)
            b.window_sum.copy_(window_sum)
            b.previous.copy_(previous)
        for b, span in zip(self.buffers, spans or [None] * len(self.buffers), strict=True):
            if b.span is not None:  # a state saved without a span (drift_ratio added on resume): a new span
                b.span.zero_() if span is None else b.span.copy_(span)
        self.span_sum_sq = float(state.get("span_sum_sq", 0.0)) if spans is not None else 0.0
        self.steps_in_window = steps_in_window
        self.phase = phase
        self._warned_skip = bool(state["warned_skip"])
