"""AutoDropTrainer on a tiny BERT, under torchrun (DDP) or alone; writes OUT/rank<N>.json.

Sequential sampling and no dropout: with 2 processes of batch B the global batches equal those of one
process of batch 2B, so the runs can be compared step by step.
"""

import argparse
import json
import sys
import weakref
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from teardown import end_training
from tiny import TokenParity, tiny_bert
from transformers import TrainerCallback

from autodrop_hf import AutoDropCallback, AutoDropTrainer, AutoDropTrainingArguments


class Probe(TrainerCallback):
    def __init__(self):
        self.lrs = {}

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.lrs[state.global_step + 1] = optimizer.param_groups[0]["lr"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per_device_batch", type=int, required=True)
    parser.add_argument("--save_steps", type=int, default=0)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--stop_when_done", action="store_true", help="the anytime rule, stopping where it is done")
    args = parser.parse_args()
    model = tiny_bert()
    model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
    for module in model.modules():
        if module.__class__.__name__ == "Dropout":
            module.p = 0.0
    rule = dict(
        autodrop_preset="paper",  # with a loose threshold: drops every few windows
        autodrop_window_size="2",
        autodrop_buffer_size=3,
        autodrop_threshold=5.0,
        max_steps=40,
    )
    if args.stop_when_done:  # the horizon-free rule, done once the LR is down to 0.8 of its peak: stops early
        rule = dict(
            autodrop_preset="anytime",
            autodrop_buffer_size=3,
            autodrop_done_scale=0.8,
            autodrop_stop_when_done=True,
            max_steps=2_000,
        )
    training_args = AutoDropTrainingArguments(
        output_dir=str(args.out),
        lr_scheduler_type="autodrop",
        **rule,
        warmup_steps=4,
        per_device_train_batch_size=args.per_device_batch,
        learning_rate=1e-3,
        train_sampling_strategy="sequential",
        # HF multiplies the loss by the world size for models that accept loss kwargs (BERT does) even
        # when the loss is a per-process mean; that would double the DDP gradients of this model.
        average_tokens_across_devices=False,
        save_strategy="steps" if args.save_steps else "no",
        save_steps=args.save_steps or 500,
        logging_steps=10,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    probe = Probe()
    trainer = AutoDropTrainer(model=model, args=training_args, train_dataset=TokenParity(), callbacks=[probe])
    trainer.train(resume_from_checkpoint=args.resume)
    autodrop = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, AutoDropCallback)).autodrop
    record = {
        "world": trainer.args.world_size,
        "angles": autodrop.angles,
        "drops": autodrop.drops,
        "lrs": probe.lrs,
        "num_steps": autodrop.num_steps,
        "global_step": trainer.state.global_step,
        "done_step": autodrop.done_step,
    }
    (args.out / f"rank{trainer.args.process_index}.json").write_text(json.dumps(record))
    wrapped = weakref.ref(trainer.model_wrapped)
    trainer.model_wrapped = None
    end_training(trainer.accelerator, wrapped)


if __name__ == "__main__":
    main()
