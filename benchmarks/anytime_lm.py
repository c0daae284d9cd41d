"""F1 of the horizon-free benchmark: a small byte-level causal language model trained from scratch with the Trainer.

python benchmarks/anytime_lm.py --text_dir ../shared/data/translation/multi30k --schedule autodrop_anytime \
    --budget 4000 --seed 0 --result benchmarks/results/anytime/lm/autodrop_anytime_b4000_seed0.json

The training text is every line of ``train.*`` in ``--text_dir`` (Multi30k: 29,000 English and 29,000 German
sentences, 4.0M bytes), the dev text every line of ``valid.*``; both are cut into sequences of 128 bytes (one
token per byte, no tokenizer to train). The model is a GPT-2 of 2 layers, width 128 and 4 heads (0.43M
parameters), AdamW at peak LR 2e-3 with 100 warm-up steps, batches of 16 sequences (2,048 tokens).

``--schedule`` names what runs for ``--budget`` optimizer steps:

- horizon-free (one run, read at every ``--eval_steps``): ``autodrop_anytime`` (the preset ``anytime``),
  ``autodrop_paper`` (the paper's preset, windows of 64 without a horizon), ``constant``,
  ``schedule_free`` and ``schedule_free_3x`` (Schedule-Free AdamW at the same peak LR and at 3x, a constant
  schedule), ``reduce_lr_on_plateau`` (the dev loss, patience 1, factor 0.5, at every evaluation);
- told the horizon (one run per budget): ``linear`` (the oracle), ``wsd`` (warmup-stable-decay, a linear
  cool-down over the last 20%), ``autodrop`` (the known-horizon default). As Hägele et al. do, a ``wsd`` run
  branches from the ``constant`` run's checkpoint at 80% of its budget (``--branch_from``: that run's output
  folder; ``constant`` saves one at 80% of every budget in ``--save_at_budgets``): the same steps up to
  there, then only the cool-down is trained.

The result file holds every evaluation (dev loss, and the loss on a fixed 1,000-sequence sample of the training
text, for the train/dev gap), the logged learning rate and training loss, AutoDrop's history (drops, where it
said done) and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

from autodrop_hf import AutoDropTrainer, AutoDropTrainingArguments
from autodrop_hf.core.history import HISTORY_FILE, read_history

SEQUENCE = 128
HORIZON_FREE = (
    "autodrop_anytime",
    "autodrop_paper",
    "constant",
    "schedule_free",
    "schedule_free_3x",
    "reduce_lr_on_plateau",
)
TOLD_THE_HORIZON = ("linear", "wsd", "autodrop")


class ByteSequences(torch.utils.data.Dataset):
    """Lines of text files as bytes, joined by newlines and cut into sequences of ``SEQUENCE`` bytes."""

    def __init__(self, files: list[Path], limit: int | None = None) -> None:
        data = b"\n".join(line for f in sorted(files) for line in f.read_bytes().splitlines())
        tokens = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
        count = tokens.numel() // SEQUENCE
        self.sequences = tokens[: count * SEQUENCE].view(count, SEQUENCE)
        if limit is not None:
            self.sequences = self.sequences[torch.randperm(count, generator=torch.Generator().manual_seed(0))[:limit]]

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.sequences[index], "labels": self.sequences[index]}


class SaveAt(TrainerCallback):
    """Saves a checkpoint at the given optimizer steps."""

    def __init__(self, steps: set[int]) -> None:
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.steps:
            control.should_save = True


def model(seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=256, n_positions=SEQUENCE, n_embd=128, n_layer=2, n_head=4, bos_token_id=10, eos_token_id=10
    )
    return GPT2LMHeadModel(config)


def arguments(args: argparse.Namespace, output_dir: Path) -> TrainingArguments:
    common = dict(
        output_dir=str(output_dir),
        max_steps=args.budget,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=64,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        weight_decay=0.0,
        seed=args.seed,
        data_seed=args.seed,
        eval_strategy="steps",
        eval_steps=args.eval_steps,
        logging_steps=25,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
    )
    schedule = args.schedule
    if schedule.startswith("autodrop"):
        preset = {"autodrop_anytime": "anytime", "autodrop_paper": "paper", "autodrop": "default"}[schedule]
        return AutoDropTrainingArguments(lr_scheduler_type="autodrop", autodrop_preset=preset, **common)
    if schedule.startswith("schedule_free"):
        common["learning_rate"] *= 3 if schedule.endswith("3x") else 1
        return TrainingArguments(optim="schedule_free_adamw", lr_scheduler_type="constant", **common)
    if schedule == "wsd":
        decay = round(0.2 * args.budget)
        return TrainingArguments(
            lr_scheduler_type="warmup_stable_decay",
            lr_scheduler_kwargs={"num_decay_steps": decay, "decay_type": "linear"},
            **common,
        )
    if schedule == "reduce_lr_on_plateau":
        common["warmup_steps"] = 0  # Transformers runs it without warm-up
        return TrainingArguments(
            lr_scheduler_type="reduce_lr_on_plateau",
            metric_for_best_model="eval_dev_loss",
            lr_scheduler_kwargs={"patience": 1, "factor": 0.5},
            **common,
        )
    name = {"constant": "constant_with_warmup", "linear": "linear"}[schedule]
    return TrainingArguments(lr_scheduler_type=name, **common)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text_dir", type=Path, required=True, help="folder with train.* and valid.* text files")
    parser.add_argument("--schedule", required=True, choices=HORIZON_FREE + TOLD_THE_HORIZON)
    parser.add_argument("--budget", type=int, required=True, help="optimizer steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--warmup_steps", type=int, default=100)
    parser.add_argument("--eval_steps", type=int, default=None, help="default: budget / 4 (every run ends on one)")
    parser.add_argument(
        "--save_at_budgets",
        type=int,
        nargs="*",
        default=[],
        help="constant: save a checkpoint at 80%% of each of these budgets, for wsd",
    )
    parser.add_argument("--branch_from", type=Path, default=None, help="wsd: the constant run's --output_dir")
    parser.add_argument("--result", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--output_dir", type=Path, default=None, help="default: outputs/anytime/<result name>")
    args = parser.parse_args()
    args.eval_steps = args.eval_steps or max(1, args.budget // 4)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    output_dir = args.output_dir or Path("outputs/anytime") / args.result.stem
    train = ByteSequences(list(args.text_dir.glob("train.*")))
    evaluation = {
        "dev": ByteSequences(list(args.text_dir.glob("valid.*"))),
        "train": ByteSequences(list(args.text_dir.glob("train.*")), limit=1000),
    }
    training_args = arguments(args, output_dir)
    trainer_class = AutoDropTrainer if args.schedule.startswith("autodrop") else Trainer
    callbacks = [SaveAt({round(0.8 * b) for b in args.save_at_budgets})] if args.save_at_budgets else []
    trainer = trainer_class(
        model=model(args.seed), args=training_args, train_dataset=train, eval_dataset=evaluation, callbacks=callbacks
    )
    resume = None
    if args.schedule == "wsd" and args.branch_from is not None:
        resume = str(args.branch_from / f"checkpoint-{round(0.8 * args.budget)}")
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    if trainer.state.log_history and not any(
        "eval_dev_loss" in e and e["step"] == trainer.state.global_step for e in trainer.state.log_history
    ):
        trainer.evaluate()
    seconds = time.perf_counter() - start
    log = trainer.state.log_history
    evals: dict[int, dict[str, float]] = {}
    for entry in log:
        for split in ("dev", "train"):
            if f"eval_{split}_loss" in entry:
                evals.setdefault(entry["step"], {"step": entry["step"]})[f"{split}_loss"] = entry[f"eval_{split}_loss"]
    history_file = output_dir / HISTORY_FILE
    history = read_history(history_file) if history_file.exists() else []
    result = {
        "family": "lm",
        "schedule": args.schedule,
        "budget": args.budget,
        "seed": args.seed,
        "learning_rate": args.learning_rate,
        "warmup_steps": args.warmup_steps,
        "train_seconds": seconds,
        "steps_run": trainer.state.global_step,
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "evals": [evals[step] for step in sorted(evals)],
        "train_log": [{"step": e["step"], "lr": e["learning_rate"], "loss": e["loss"]} for e in log if "loss" in e],
        "autodrop": {
            "drops": [h["step"] for h in history if h["dropped"]],
            "done": next((h["step"] for h in history if h.get("done")), None),
            "decisions": [[h["step"], h["statistic"], h["dropped"]] for h in history if h.get("statistic") is not None],
        },
    }
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result) + "\n")
    print(json.dumps({k: result[k] for k in ("schedule", "budget", "seed", "steps_run", "train_seconds")}))
    print(json.dumps(result["evals"]))


if __name__ == "__main__":
    main()
