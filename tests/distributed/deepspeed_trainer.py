"""AutoDropTrainer under DeepSpeed (CPU accelerator) with ZeRO stage 1, 2 or 3; writes OUT/rank<N>.json.

Nothing here needs a C++ compiler: DeepSpeed's CPU accelerator would otherwise JIT-compile two ops on a
fresh machine (its shared-memory all-reduce and its fused Adam, minutes of compilation on two cores), so
the Trainer's own torch AdamW is used and collectives go through gloo.
"""

import argparse
import importlib
import json
import sys
import weakref
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from teardown import end_training
from tiny import TokenParity, quiet_training_values, tiny_bert

from autodrop_hf import AutoDropCallback, AutoDropTrainer, AutoDropTrainingArguments


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stage", type=int, required=True)
    args = parser.parse_args()
    config = {
        "zero_optimization": {"stage": args.stage},
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
    }
    backend = importlib.import_module("deepspeed.comm.torch")  # `deepspeed.comm.torch` is shadowed by torch
    backend.build_shm_op = lambda: None  # gloo's all-reduce instead of a JIT-compiled kernel
    autodrop = dict(lr_scheduler_type="autodrop", autodrop_window_size="1", autodrop_buffer_size=3)
    training_args = AutoDropTrainingArguments(
        **quiet_training_values(args.out, max_steps=30, deepspeed=config, train_sampling_strategy="sequential"),
        **autodrop,
    )
    model = tiny_bert()
    for module in model.modules():
        if module.__class__.__name__ == "Dropout":
            module.p = 0.0
    trainer = AutoDropTrainer(model=model, args=training_args, train_dataset=TokenParity())
    trainer.train()
    autodrop = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, AutoDropCallback)).autodrop
    record = {
        "angles": autodrop.angles,
        "drops": autodrop.drops,
        "watched": autodrop.angular_velocity.num_parameters,
        "sharded": autodrop.angular_velocity.is_sharded,
    }
    (args.out / f"rank{training_args.process_index}.json").write_text(json.dumps(record))
    wrapped = weakref.ref(trainer.model_wrapped)  # the DeepSpeed engine
    trainer.model_wrapped = trainer.deepspeed = None
    end_training(trainer.accelerator, wrapped)  # else gloo's threads may abort the process at exit


if __name__ == "__main__":
    main()
