"""Ending a multi-process CPU (gloo) run without a hang at exit.

DDP's C++ ``Reducer`` holds a reference to the process group. If it is the last one — the group was
already destroyed, and the DDP model is freed afterwards, as when a script's locals go away after
``accelerator.end_training()`` — the group's destructor runs inside the Reducer's deallocation with the
GIL held and joins gloo's worker threads, one of which may be waiting for the GIL to free the tensors of
the last collective (the Trainer's final ``all_gather``): a deadlock (PyTorch: pybind11 destructors
that block while holding the GIL). Freed through ``destroy_process_group``, the group's destructor
releases the GIL first. A group never destroyed is torn down at interpreter exit instead, where gloo's
threads may abort the process (``terminate called without an active exception``; seen once in 20 runs of
the DeepSpeed test). So: free every DDP model (or DeepSpeed engine), then destroy the process group.
"""

import gc
import weakref

from torch import nn
from torch.nn.parallel import DistributedDataParallel


def end_training(accelerator, wrapped_model: weakref.ref[nn.Module]) -> None:
    """Free ``accelerator``'s models, check that the DDP model (if the run had one) is gone, then
    destroy the process group."""
    accelerator.free_memory()
    gc.collect()
    if isinstance(wrapped_model(), DistributedDataParallel):
        referrers = [type(r).__name__ for r in gc.get_referrers(wrapped_model())]
        raise RuntimeError(f"the DDP model is still referenced (by {referrers}): drop those references first.")
    accelerator.end_training()
