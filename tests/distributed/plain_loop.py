"""A ``*_no_trainer``-style loop with AutoDrop, run with 2 processes (torchrun / accelerate launch).

--layout ddp:    Accelerate: model, optimizer and an AutoDropLR go through accelerator.prepare (DDP; the
                 prepared scheduler steps once per process per optimizer step, HF's no_trainer convention).
--layout fsdp:   plain torch.distributed, no Accelerate: FSDP2 (fully_shard) on every layer.
--layout mixed:  plain torch.distributed: the first layer sharded (FSDP2), the last one replicated
                 (gradients all-reduced by hand).
The run stops in the middle of a window, saves and reloads the AutoDrop state (one file per rank), and
goes on. Rank 0 then replays the same global batches alone on an unsharded copy: the reference.
Every rank writes OUT/rank<N>.json: angles, drops, learning rates, all_reduce calls inside AutoDrop.step(),
and with --average the weight average (or, sharded, the error that refused it).
"""

import argparse
import json
import sys
import weakref
from pathlib import Path

import torch
import torch.distributed as dist
from teardown import end_training

from autodrop_hf import AutoDrop, AutoDropConfig, AutoDropLR

CONFIG = AutoDropConfig(window_size=3, buffer_size=3, drop_factor=0.8)
STEPS, WARMUP, BATCH, LR = 90, 6, 16, 0.2  # BATCH: global batch
CHECKPOINT = 46  # (46 - WARMUP) % 3 != 0: mid-window


def make_model(hidden=32):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(12, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 3))


def global_batch(step):
    generator = torch.Generator().manual_seed(1000 + step)
    inputs = torch.randn(BATCH, 12, generator=generator)
    return inputs, (inputs[:, :3].sum(1) > 0).long() + (inputs[:, 3] > 1).long()


class CollectiveCounter:
    """Counts the all_reduce calls (and their bytes) made while ``active``."""

    def __init__(self):
        self.calls, self.bytes, self.active = 0, 0, False
        self._all_reduce = dist.all_reduce
        dist.all_reduce = self._counted

    def _counted(self, tensor, *args, **kwargs):
        if self.active:
            self.calls += 1
            self.bytes += tensor.numel() * tensor.element_size()
        return self._all_reduce(tensor, *args, **kwargs)


def train(steps, model, optimizer, scheduler, autodrop, counter=None, rank=0, world=1, sync_replicated=(), ratios=None):
    """The learning rate of every step; with ``ratios``, each decision's variance ratio is appended to it."""
    lrs = []
    for step in steps:
        inputs, labels = global_batch(step)
        share = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
        torch.nn.functional.cross_entropy(model(inputs[share]), labels[share]).backward()
        for p in sync_replicated:  # data parallelism by hand for the replicated layer of "mixed"
            dist.all_reduce(p.grad)
            p.grad /= world
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        if counter:
            counter.active = True
        autodrop.step()
        if counter:
            counter.active = False
        ratio = (autodrop.last_record or {}).get("variance_ratio")
        if ratios is not None and ratio is not None:
            ratios.append(ratio)
    return lrs


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()


def averaged(autodrop, model):
    """The weight average, flat, read through the model (whose own weights it leaves as they were)."""
    with autodrop.averaged():
        return flat(model)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layout", choices=["ddp", "fsdp", "mixed"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sample_fraction", type=float, default=1.0)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--average", action="store_true", help="AutoDropConfig(average=True)")
    parser.add_argument("--drift_ratio", type=float, help="AutoDropConfig(drift_ratio=...)")
    args = parser.parse_args()
    config = CONFIG.replace(sample_fraction=args.sample_fraction, average=args.average, drift_ratio=args.drift_ratio)
    accelerator = None
    if args.layout == "ddp":
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=True)
    else:
        dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    counter = CollectiveCounter()
    model, replicated = make_model(args.hidden), []
    if args.layout == "ddp":
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        scheduler = AutoDropLR(optimizer, num_warmup_steps=WARMUP * world)
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    else:
        from torch.distributed.fsdp import fully_shard

        fully_shard(model[0])
        if args.layout == "fsdp":
            fully_shard(model)
        else:
            replicated = list(model[2].parameters())
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        scheduler = AutoDropLR(optimizer, num_warmup_steps=WARMUP)

    try:
        autodrop = AutoDrop(model, config, scheduler, num_training_steps=STEPS)
    except ValueError as error:  # average=True on sharded parameters
        (args.out / f"rank{rank}.json").write_text(json.dumps({"refused": str(error)}))
        dist.destroy_process_group()
        return
    ratios, reference_ratios = [], []
    lrs = train(range(CHECKPOINT), model, optimizer, scheduler, autodrop, counter, rank, world, replicated, ratios)
    path = args.out / f"state_rank{rank}.pt"
    torch.save(autodrop.state_dict(), path)
    autodrop = AutoDrop(model, config, scheduler, num_training_steps=STEPS)
    autodrop.load_state_dict(torch.load(path, weights_only=True))
    lrs += train(
        range(CHECKPOINT, STEPS), model, optimizer, scheduler, autodrop, counter, rank, world, replicated, ratios
    )

    record = {
        "world": world,
        "is_sharded": autodrop.angular_velocity.is_sharded,
        "local_parameters": autodrop.angular_velocity.num_parameters,
        "sample_block": autodrop.angular_velocity.sample_block,
        "angles": autodrop.angles,
        "drops": autodrop.drops,
        "decisions": len(autodrop.decisions),
        "ratios": ratios,
        "lrs": lrs,
        "all_reduce_calls": counter.calls,
        "all_reduce_bytes": counter.bytes,
        "windows": (STEPS - WARMUP) // CONFIG.window_size,
        "accelerate_imported": "accelerate" in sys.modules,
        "average": averaged(autodrop, model) if args.average else None,
        "weights": flat(model) if args.average else None,  # replicated here: sharded runs refuse the average
    }
    if rank == 0:
        reference_model = make_model(args.hidden)
        reference_optimizer = torch.optim.SGD(reference_model.parameters(), lr=LR)
        reference_scheduler = AutoDropLR(reference_optimizer, num_warmup_steps=WARMUP)
        reference = AutoDrop(
            reference_model, config, reference_scheduler, num_training_steps=STEPS, process_group="local"
        )
        record["reference_lrs"] = train(
            range(STEPS), reference_model, reference_optimizer, reference_scheduler, reference, ratios=reference_ratios
        )
        record["reference_ratios"] = reference_ratios
        record["reference_angles"] = reference.angles
        record["reference_drops"] = reference.drops
        record["reference_sample_block"] = reference.angular_velocity.sample_block
        record["reference_average"] = averaged(reference, reference_model) if args.average else None
    (args.out / f"rank{rank}.json").write_text(json.dumps(record))
    if accelerator is None:
        dist.destroy_process_group()
        return
    wrapped = weakref.ref(model)
    del model
    end_training(accelerator, wrapped)


if __name__ == "__main__":
    main()
