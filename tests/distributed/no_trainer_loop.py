"""Hugging Face's ``*_no_trainer`` order with AutoDropScheduler, 2 processes (Accelerate, DDP on CPU).

The scheduler is built before ``accelerator.prepare`` with what those scripts pass to ``get_scheduler``: the
optimizer steps of the unsplit dataloader (``num_training_steps``) and the warm-up times the number of processes
(both in scheduler steps: a prepared scheduler steps once per process per optimizer step). After ``prepare``
each process has half the batches. Every rank writes OUT/rank<N>.json: the horizon the detector plans with, the
optimizer steps the run has, the learning rates and the drops, read through ``AutoDrop.of``.
"""

import argparse
import json
import math
import weakref
from pathlib import Path

import torch
from accelerate import Accelerator
from teardown import end_training

from autodrop_hf import AutoDrop, AutoDropConfig, AutoDropScheduler

EPOCHS, WARMUP = 2, 4


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    inputs = torch.randn(800, 12, generator=torch.Generator().manual_seed(1))
    labels = (inputs[:, :3].sum(1) > 0).long()
    dataloader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, labels), batch_size=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    max_train_steps = EPOCHS * math.ceil(len(dataloader))  # before prepare, as the scripts compute it
    scheduler = AutoDropScheduler(
        optimizer,
        model,
        AutoDropConfig(window_size=1, buffer_size=3),
        num_warmup_steps=WARMUP * accelerator.num_processes,
        num_training_steps=max_train_steps,
    )
    model, optimizer, dataloader, scheduler = accelerator.prepare(model, optimizer, dataloader, scheduler)
    lrs = []
    for _ in range(EPOCHS):
        for batch, target in dataloader:
            accelerator.backward(torch.nn.functional.cross_entropy(model(batch), target))
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
    autodrop = AutoDrop.of(scheduler)
    record = {
        "world": accelerator.num_processes,
        "planned": autodrop.num_training_steps,
        "optimizer_steps": len(lrs),
        "steps_per_optimizer_step": scheduler.scheduler.steps_per_optimizer_step,
        "drops": autodrop.drops,
        "lrs": lrs,
        "final_scale": autodrop.scale,
    }
    (args.out / f"rank{accelerator.process_index}.json").write_text(json.dumps(record))
    wrapped = weakref.ref(model)
    del model
    end_training(accelerator, wrapped)


if __name__ == "__main__":
    main()
