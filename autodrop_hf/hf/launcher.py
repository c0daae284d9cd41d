"""``autodrop-hf run SCRIPT [ARGS...]``: any Trainer-based script, unchanged, with AutoDrop available.

Before the script runs, the names a script imports from ``transformers`` are pointed at AutoDrop's
subclasses: ``TrainingArguments`` / ``Seq2SeqTrainingArguments`` accept ``--lr_scheduler_type autodrop``
and the ``--autodrop_*`` flags (``--help`` lists them), and ``Trainer`` / ``Seq2SeqTrainer`` build the
schedule and its callback. Every other scheduler name behaves exactly as before. The script then runs as
``python SCRIPT ARGS`` would run it (``__name__ == "__main__"``, ``sys.argv``, its folder on ``sys.path``);
after it, a process group it left initialized is destroyed (:func:`end_process_group`).

Several processes: ``accelerate launch -m autodrop_hf.run SCRIPT ARGS`` or
``torchrun --nproc_per_node N -m autodrop_hf.run SCRIPT ARGS``.
"""

from __future__ import annotations

import gc
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path


def install() -> None:
    """Point ``transformers.TrainingArguments``, ``Seq2SeqTrainingArguments``, ``Trainer`` and
    ``Seq2SeqTrainer`` at AutoDrop's subclasses, for every later ``from transformers import ...``."""
    import transformers.trainer  # noqa: F401  (this import replaces sys.modules["transformers"]: patch after it)

    from .trainer import AutoDropSeq2SeqTrainer, AutoDropTrainer
    from .training_args import AutoDropSeq2SeqTrainingArguments, AutoDropTrainingArguments

    module = sys.modules["transformers"]
    module.TrainingArguments = AutoDropTrainingArguments
    module.Seq2SeqTrainingArguments = AutoDropSeq2SeqTrainingArguments
    module.Trainer = AutoDropTrainer
    module.Seq2SeqTrainer = AutoDropSeq2SeqTrainer


def run_script(script: str | Path, arguments: Sequence[str]) -> None:
    """Run ``script`` as ``python script arguments`` would, with AutoDrop installed."""
    path = Path(script)
    if not path.is_file():
        raise SystemExit(f"autodrop-hf run: {script}: no such file.")
    install()
    sys.argv = [str(path), *arguments]
    sys.path.insert(0, str(path.resolve().parent))
    runpy.run_path(str(path), run_name="__main__")
    end_process_group()


def end_process_group() -> None:
    """Destroy the process group a script left initialized, once nothing that holds it is alive.

    A Hugging Face script never destroys the group: it is then torn down at interpreter exit, where gloo's
    worker threads may abort the process (``terminate called without an active exception``) after training
    has finished. Destroying it while a DDP model or DeepSpeed engine still holds it would move the teardown
    into that object's deallocation, which can deadlock; so the script's objects are collected first and the
    group is left alone if one of them survives (a script that keeps its model in a global variable).
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()
    if not any(_holds_process_group(thing) for thing in gc.get_objects()):
        dist.destroy_process_group()


def _holds_process_group(thing: object) -> bool:
    """A DDP model or a DeepSpeed engine (or a subclass of either). The type's MRO is read, not ``isinstance``:
    that would read every object's ``__class__``, which warns or raises for some (``torch.distributed.reduce_op``)."""
    from torch.nn.parallel import DistributedDataParallel

    return any(c is DistributedDataParallel or c.__name__ == "DeepSpeedEngine" for c in type(thing).__mro__)
