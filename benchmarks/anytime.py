"""The horizon-free benchmark (anytime protocol): one training run of one schedule, with the Trainer.

python benchmarks/anytime.py --family lm --text_dir ../shared/data/translation/multi30k \
    --schedule autodrop_anytime --budget 4000 --seed 0 --result results/lm/autodrop_anytime_b4000_seed0.json

Families (both from scratch, on ``--text_dir`` with line-aligned ``{train,valid}.{de,en}`` text, Multi30k):

- ``lm`` (F1): a byte-level causal language model on every line of ``train.*`` (Multi30k: 29,000 English and
  29,000 German sentences, 4.0M bytes) cut into sequences of 128 bytes; a GPT-2 of 2 layers, width 128,
  4 heads (0.43M parameters); batches of 16 sequences; AdamW at peak LR 2e-3, 100 warm-up steps. Every
  evaluation gives the dev loss (``valid.*``) and the loss on a fixed sample of 1,000 training sequences (the
  train/dev gap).
- ``translation`` (F2): German to English, a joint Unigram tokenizer of 4,000 pieces and a Marian-style
  Transformer of width 128, 2 + 2 layers, 4 heads, feed-forward 512 (1.4M parameters), built by the
  translation example's own functions; batches of 32 pairs; AdamW at peak LR 2e-3, 100 warm-up steps. Every
  evaluation gives the dev loss and greedy-decoding BLEU on ``valid``.

``--schedule`` names what runs for ``--budget`` optimizer steps:

- horizon-free (one run, read at every ``--eval_steps``): ``autodrop_anytime`` (the preset ``anytime``),
  ``autodrop_paper`` (the paper's preset), ``constant``, ``schedule_free`` and ``schedule_free_3x``
  (Schedule-Free AdamW at the same peak LR and at 3x, constant schedule), ``reduce_lr_on_plateau`` (the dev
  loss at every evaluation, patience 1, factor 0.5; Transformers runs it without warm-up);
- ``autodrop_anytime_average``, ``constant_average``: the same training as ``autodrop_anytime`` and ``constant``,
  each evaluation read on a polynomial-decay average of the weights (:class:`IterateAverage`), not on the
  last iterate (the measurements that led to the library's average);
- ``autodrop_averaged_stairs``: the preset ``anytime_average`` before its drift hold (``anytime`` with
  ``average=True`` and the stairs of ``t^-0.25``);
- ``autodrop_averaged`` (the preset ``anytime_average``): the library's weight average, which the Trainer's
  evaluations read (``average=True``), with that preset's drift hold and halving;
- told the horizon (one run per budget): ``linear`` (the oracle), ``wsd`` (warmup-stable-decay with a linear
  cool-down over the last 20%), ``autodrop`` (the known-horizon default). As Hägele et al. do, a ``wsd`` run
  branches from the ``constant`` run's checkpoint at 80% of its budget (``--branch_from``: that run's output
  folder; ``constant`` saves one at 80% of each budget of ``--save_at_budgets``): only the cool-down is trained.

The result file holds every evaluation, the logged learning rate and training loss, AutoDrop's drops and the
step it said done, and the wall time. ``benchmarks/anytime_quality.sh`` runs the grid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    DataCollatorForSeq2Seq,
    GPT2Config,
    GPT2LMHeadModel,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from autodrop_hf import (
    AutoDropSeq2SeqTrainer,
    AutoDropSeq2SeqTrainingArguments,
    AutoDropTrainer,
    AutoDropTrainingArguments,
)
from autodrop_hf.core.history import HISTORY_FILE, read_history
from autodrop_hf.core.weight_average import AVERAGE_GAMMA

HORIZON_FREE = (
    "autodrop_anytime",
    "autodrop_paper",
    "constant",
    "schedule_free",
    "schedule_free_3x",
    "reduce_lr_on_plateau",
    "autodrop_anytime_average",
    "constant_average",
    "autodrop_averaged",
    "autodrop_averaged_stairs",
)
TOLD_THE_HORIZON = ("linear", "wsd", "autodrop")
SEQUENCE = 128


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


def language_model(text_dir: Path, seed: int) -> dict[str, Any]:
    """F1: the model, the data and the Trainer classes."""
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=256, n_positions=SEQUENCE, n_embd=128, n_layer=2, n_head=4, bos_token_id=10, eos_token_id=10
    )
    return {
        "model": GPT2LMHeadModel(config),
        "train_dataset": ByteSequences(list(text_dir.glob("train.*"))),
        "eval_dataset": {
            "dev": ByteSequences(list(text_dir.glob("valid.*"))),
            "train": ByteSequences(list(text_dir.glob("train.*")), limit=1000),
        },
        "batch_size": 16,
        "classes": (TrainingArguments, AutoDropTrainingArguments, Trainer, AutoDropTrainer),
        "extra_arguments": {},
    }


def translation_model(text_dir: Path, seed: int) -> dict[str, Any]:
    """F2: the translation example's tokenizer, model and encoding, at a size a CPU core trains in minutes."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "translation"))
    from run_translation import DataTrainingArguments, ModelArguments, build_from_scratch, encode
    from translation_data import corpus_bleu, read_parallel_text

    data_args = DataTrainingArguments(text_dir=str(text_dir), max_source_length=64, max_target_length=64)
    model_args = ModelArguments(
        vocab_size=4000, d_model=128, encoder_layers=2, decoder_layers=2, attention_heads=4, ffn_dim=512
    )
    pairs = {split: read_parallel_text(text_dir, split, "de", "en") for split in ("train", "valid")}
    torch.manual_seed(seed)
    tokenizer, model = build_from_scratch(model_args, pairs["train"], data_args)

    def compute_metrics(prediction) -> dict[str, float]:
        tokens = np.where(prediction.predictions != -100, prediction.predictions, tokenizer.pad_token_id)
        hypotheses = [t.strip() for t in tokenizer.batch_decode(tokens, skip_special_tokens=True)]
        return {"bleu": corpus_bleu(hypotheses, [p["en"] for p in pairs["valid"]])[0]}

    return {
        "model": model,
        "train_dataset": encode(tokenizer, pairs["train"], data_args),
        "eval_dataset": {"dev": encode(tokenizer, pairs["valid"], data_args)},
        "batch_size": 32,
        "classes": (Seq2SeqTrainingArguments, AutoDropSeq2SeqTrainingArguments, Seq2SeqTrainer, AutoDropSeq2SeqTrainer),
        "extra_arguments": {"predict_with_generate": True, "generation_max_length": 64, "generation_num_beams": 1},
        "trainer_kwargs": {
            "data_collator": DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
            "compute_metrics": compute_metrics,
            "processing_class": tokenizer,
        },
    }


FAMILIES = {"lm": language_model, "translation": translation_model}


class SaveAt(TrainerCallback):
    """Saves a checkpoint at the given optimizer steps (the branch points of the ``wsd`` runs)."""

    def __init__(self, steps: set[int]) -> None:
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.steps:
            control.should_save = True


class IterateAverage(TrainerCallback):
    """A polynomial-decay average of the weights (Shamir and Zhang, 2013), read at any step without a horizon:
    ``x̄_t = x̄_(t-1) + (γ + 1)/(t + γ)·(x_t - x̄_(t-1))``, ``γ = 5`` (the weight of step ``s`` in ``x̄_t`` falls
    as ``(s/t)^5``: roughly the last fifth of the steps taken). Every evaluation is repeated on it, its metrics
    logged as ``avg_*``; training never sees it (nor the random numbers those evaluations draw), so the run is the
    one of its base schedule. ``trainer`` must be set before ``train()``."""

    gamma = AVERAGE_GAMMA  # the library's

    def __init__(self) -> None:
        self.average: list[torch.Tensor] | None = None
        self.trainer: Trainer | None = None
        self._evaluating = False

    def on_step_end(self, args, state, control, model=None, **kwargs):
        weight = (self.gamma + 1) / (state.global_step + self.gamma)
        with torch.no_grad():
            if self.average is None:
                self.average = [p.detach().clone() for p in model.parameters()]
            for average, p in zip(self.average, model.parameters(), strict=True):
                average.lerp_(p.detach(), weight)

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if self._evaluating or self.average is None:
            return
        self._evaluating = True
        current = [p.detach().clone() for p in model.parameters()]
        try:
            with torch.no_grad():
                for average, p in zip(self.average, model.parameters(), strict=True):
                    p.copy_(average)
            with torch.random.fork_rng(devices=[]):  # a DataLoader draws its seed from the global generator
                self.trainer.evaluate(metric_key_prefix="avg")
        finally:
            with torch.no_grad():
                for saved, p in zip(current, model.parameters(), strict=True):
                    p.copy_(saved)
            self._evaluating = False


def training_arguments(args: argparse.Namespace, family: dict[str, Any], output_dir: Path) -> TrainingArguments:
    """The arguments of ``args.schedule``; the same for every schedule but the schedule and the optimizer."""
    plain, autodrop, _, _ = family["classes"]
    common = dict(
        output_dir=str(output_dir),
        max_steps=args.budget,
        per_device_train_batch_size=family["batch_size"],
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
        **family["extra_arguments"],
    )
    schedule = args.schedule.removesuffix("_average")
    if schedule == "autodrop_averaged_stairs":
        stairs = {"autodrop_preset": "anytime", "autodrop_average": True, "autodrop_power_exponent": 0.25}
        return autodrop(lr_scheduler_type="autodrop", **stairs, **common)
    if schedule.startswith("autodrop"):
        presets = {"autodrop_averaged": "anytime_average", "autodrop_anytime": "anytime", "autodrop_paper": "paper"}
        preset = {**presets, "autodrop": "default"}[schedule]
        return autodrop(lr_scheduler_type="autodrop", autodrop_preset=preset, **common)
    if schedule.startswith("schedule_free"):
        common["learning_rate"] *= 3 if schedule.endswith("3x") else 1
        return plain(optim="schedule_free_adamw", lr_scheduler_type="constant", **common)
    if schedule == "wsd":
        decay = {"num_decay_steps": round(0.2 * args.budget), "decay_type": "linear"}
        return plain(lr_scheduler_type="warmup_stable_decay", lr_scheduler_kwargs=decay, **common)
    if schedule == "reduce_lr_on_plateau":
        common["warmup_steps"] = 0
        plateau = {"patience": 1, "factor": 0.5}
        return plain(
            lr_scheduler_type="reduce_lr_on_plateau",
            metric_for_best_model="dev_loss",
            lr_scheduler_kwargs=plateau,
            **common,
        )
    return plain(lr_scheduler_type={"constant": "constant_with_warmup", "linear": "linear"}[schedule], **common)


def evaluations(log: list[dict[str, Any]], prefix: str = "eval_") -> list[dict[str, float]]:
    """Every evaluation's metrics by step, without their prefix (``dev_loss``, ``train_loss``, ``dev_bleu``)."""
    by_step: dict[int, dict[str, float]] = {}
    for entry in log:
        for key, value in entry.items():
            if key.startswith(prefix) and not key.endswith(("_runtime", "_per_second", "_gen_len")):
                by_step.setdefault(entry["step"], {"step": entry["step"]})[key.removeprefix(prefix)] = value
    return [by_step[step] for step in sorted(by_step)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(FAMILIES), required=True)
    parser.add_argument("--text_dir", type=Path, required=True, help="folder of {train,valid}.{de,en} text")
    parser.add_argument("--schedule", required=True, choices=HORIZON_FREE + TOLD_THE_HORIZON)
    parser.add_argument("--budget", type=int, required=True, help="optimizer steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--warmup_steps", type=int, default=100)
    parser.add_argument("--eval_steps", type=int, default=None, help="default: budget / 4")
    parser.add_argument(
        "--save_at_budgets", type=int, nargs="*", default=[], help="constant: a checkpoint at 80%% of each, for wsd"
    )
    parser.add_argument("--branch_from", type=Path, default=None, help="wsd: the constant run's output folder")
    parser.add_argument("--result", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--output_dir", type=Path, default=None, help="default: outputs/anytime/<result name>")
    args = parser.parse_args()
    args.eval_steps = args.eval_steps or max(1, args.budget // 4)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    output_dir = args.output_dir or Path("outputs/anytime") / args.result.stem
    family = FAMILIES[args.family](args.text_dir, args.seed)
    trainer_class = family["classes"][3 if args.schedule.startswith("autodrop") else 2]
    callbacks = [SaveAt({round(0.8 * b) for b in args.save_at_budgets})] if args.save_at_budgets else []
    averaged = args.schedule.endswith("_average")
    if averaged:
        callbacks.append(IterateAverage())
    trainer = trainer_class(
        model=family["model"],
        args=training_arguments(args, family, output_dir),
        train_dataset=family["train_dataset"],
        eval_dataset=family["eval_dataset"],
        callbacks=callbacks,
        **family.get("trainer_kwargs", {}),
    )
    if averaged:
        callbacks[-1].trainer = trainer
    resume = None
    if args.schedule == "wsd" and args.branch_from is not None:
        resume = str(args.branch_from / f"checkpoint-{round(0.8 * args.budget)}")
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    if not any(e["step"] == trainer.state.global_step for e in evaluations(trainer.state.log_history)):
        trainer.evaluate()
    seconds = time.perf_counter() - start
    history_file = output_dir / HISTORY_FILE
    history = read_history(history_file) if history_file.exists() else []
    result = {
        "family": args.family,
        "schedule": args.schedule,
        "budget": args.budget,
        "seed": args.seed,
        "learning_rate": args.learning_rate,
        "warmup_steps": args.warmup_steps,
        "train_seconds": seconds,
        "steps_run": trainer.state.global_step,
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "evals": evaluations(trainer.state.log_history, "avg_" if averaged else "eval_"),
        "last_iterate_evals": evaluations(trainer.state.log_history) if averaged else None,
        "train_log": [
            {"step": e["step"], "lr": e["learning_rate"], "loss": e["loss"]}
            for e in trainer.state.log_history
            if "loss" in e
        ],
        "autodrop": {
            "drops": [h["step"] for h in history if h["dropped"]],
            "done": next((h["step"] for h in history if h.get("done")), None),
            "decisions": [[h["step"], h["statistic"], h["dropped"]] for h in history if h.get("statistic") is not None],
        },
    }
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result) + "\n")
    print(json.dumps({k: result[k] for k in ("family", "schedule", "budget", "seed", "steps_run", "train_seconds")}))
    print(json.dumps(result["evals"]))


if __name__ == "__main__":
    main()
