#!/usr/bin/env python
"""Train or fine-tune a Transformer translation model (e.g. German→English) with AutoDrop; report BLEU.

Follows Hugging Face's ``examples/pytorch/translation/run_translation.py``: argument dataclasses through
``HfArgumentParser`` (or one JSON file), ``source_lang``/``target_lang``, ``max_source_length``/
``max_target_length``, ``predict_with_generate``, ``num_beams``, last-checkpoint resume. It runs on
``AutoDropSeq2SeqTrainer`` with ``AutoDropSeq2SeqTrainingArguments``: ``--lr_scheduler_type autodrop`` and
every Hugging Face scheduler name work, with ``python`` and ``accelerate launch``.

Data, first match wins:
  --text_dir DIR         line-aligned text DIR/{train,valid,test}.{de,en} (offline; WMT/Multi30k layout)
  --train_file F.jsonl   JSON lines {"translation": {"de": ..., "en": ...}} (offline)
  --dataset_name wmt14 --dataset_config_name de-en   from the Hugging Face Hub (online)
Model: --model_name_or_path to fine-tune a pretrained seq2seq model; without it, a Marian-style
encoder-decoder Transformer is built from its size flags and a joint Unigram tokenizer is learned from
the training data (--vocab_size); both are saved in --output_dir and reload with from_pretrained.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import transformers
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    HfArgumentParser,
    MarianConfig,
    MarianMTModel,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint
from translation_data import (
    TranslationDataError,
    corpus_bleu,
    read_parallel_text,
    read_translation_jsonl,
    train_tokenizer,
)

from autodrop_hf import AutoDropSeq2SeqTrainer, AutoDropSeq2SeqTrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/summary.py, shared by the examples
from summary import summarize_run

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Pretrained seq2seq model to fine-tune; omit to train from scratch."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store models downloaded from the Hub."})
    vocab_size: int = field(default=8000, metadata={"help": "From scratch: size of the joint subword vocabulary."})
    d_model: int = field(default=256, metadata={"help": "From scratch: hidden size."})
    encoder_layers: int = field(default=3, metadata={"help": "From scratch: encoder layers."})
    decoder_layers: int = field(default=3, metadata={"help": "From scratch: decoder layers."})
    attention_heads: int = field(default=4, metadata={"help": "From scratch: attention heads."})
    ffn_dim: int = field(default=1024, metadata={"help": "From scratch: feed-forward size."})
    model_dropout: float = field(default=0.1, metadata={"help": "From scratch: dropout."})


@dataclass
class DataTrainingArguments:
    source_lang: str = field(default="de", metadata={"help": "Source language id (a code such as de_DE: its 'de')."})
    target_lang: str = field(default="en", metadata={"help": "Target language id (a code such as en_XX: its 'en')."})
    text_dir: str | None = field(default=None, metadata={"help": "Folder of line-aligned {split}.{lang} files."})
    train_split: str = field(default="train", metadata={"help": "Split names in --text_dir."})
    validation_split: str = field(default="valid", metadata={"help": "Validation split name in --text_dir."})
    test_split: str = field(default="test", metadata={"help": "Test split name in --text_dir."})
    train_file: str | None = field(default=None, metadata={"help": "JSON lines training file."})
    validation_file: str | None = field(default=None, metadata={"help": "JSON lines validation file."})
    test_file: str | None = field(default=None, metadata={"help": "JSON lines test file."})
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset (online), e.g. wmt14."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset config, e.g. de-en."})
    max_source_length: int = field(default=128, metadata={"help": "Longer sources are truncated (tokens)."})
    max_target_length: int = field(default=128, metadata={"help": "Longer targets are truncated (tokens)."})
    num_beams: int | None = field(default=None, metadata={"help": "Beams for generation at eval/predict."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training pairs."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many validation pairs."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only this many test pairs."})
    source_prefix: str = field(default="", metadata={"help": "Prefix for every source text (T5: 'translate ...')."})

    def __post_init__(self) -> None:
        if self.text_dir is None and self.train_file is None and self.dataset_name is None:
            raise ValueError("give --text_dir, --train_file (JSON lines) or --dataset_name.")
        if self.source_key == self.target_key:
            raise ValueError(f"--source_lang and --target_lang are both {self.source_key!r}.")

    @property
    def source_key(self) -> str:
        """The source language's name in the data: ``de`` for ``de`` or an mBART-style code ``de_DE``."""
        return self.source_lang.split("_")[0]

    @property
    def target_key(self) -> str:
        """The target language's name in the data (``en`` for ``en_XX``)."""
        return self.target_lang.split("_")[0]


def load_pairs(data_args: DataTrainingArguments, cache_dir: str | None) -> dict[str, list[dict]]:
    """``{"train": [...], "validation": [...], "test": [...]}``, each a list of ``{lang: text}``."""
    source, target = data_args.source_key, data_args.target_key
    if data_args.text_dir is not None:
        splits = {
            "train": data_args.train_split,
            "validation": data_args.validation_split,
            "test": data_args.test_split,
        }
        out = {}
        for name, split in splits.items():
            if name == "test" and not (Path(data_args.text_dir) / f"{split}.{source}").exists():
                continue
            out[name] = read_parallel_text(data_args.text_dir, split, source, target)
        return out
    if data_args.train_file is not None:
        files = {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file}
        return {name: read_translation_jsonl(path, source, target) for name, path in files.items() if path}
    from datasets import load_dataset

    raw = load_dataset(data_args.dataset_name, data_args.dataset_config_name, cache_dir=cache_dir)
    return {name: [pair["translation"] for pair in raw[name]] for name in raw}


def build_from_scratch(model_args: ModelArguments, pairs: list[dict], data_args: DataTrainingArguments):
    """A joint tokenizer learned from the training pairs and a Marian-style Transformer sized by flags."""
    texts = [p[data_args.source_key] for p in pairs] + [p[data_args.target_key] for p in pairs]
    tokenizer = train_tokenizer(texts, model_args.vocab_size)
    config = MarianConfig(
        vocab_size=len(tokenizer),
        d_model=model_args.d_model,
        encoder_layers=model_args.encoder_layers,
        decoder_layers=model_args.decoder_layers,
        encoder_attention_heads=model_args.attention_heads,
        decoder_attention_heads=model_args.attention_heads,
        encoder_ffn_dim=model_args.ffn_dim,
        decoder_ffn_dim=model_args.ffn_dim,
        dropout=model_args.model_dropout,
        max_position_embeddings=max(data_args.max_source_length, data_args.max_target_length) + 2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        scale_embedding=True,
    )
    return tokenizer, MarianMTModel(config)


def encode(tokenizer, pairs: list[dict], data_args: DataTrainingArguments) -> list[dict]:
    """Token ids of sources and targets, each truncated at its own maximum length (the tokenizer's truncation
    keeps the end-of-sentence token)."""
    sources = [data_args.source_prefix + p[data_args.source_key] for p in pairs]
    targets = [p[data_args.target_key] for p in pairs]
    encoded = tokenizer(sources, max_length=data_args.max_source_length, truncation=True)
    labels = tokenizer(text_target=targets, max_length=data_args.max_target_length, truncation=True)["input_ids"]
    return [
        {"input_ids": i, "attention_mask": m, "labels": y}
        for i, m, y in zip(encoded["input_ids"], encoded["attention_mask"], labels, strict=True)
    ]


def main() -> dict[str, float]:
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, AutoDropSeq2SeqTrainingArguments))
    if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(json_file=os.path.abspath(sys.argv[1]))
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", handlers=[logging.StreamHandler()]
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    transformers.utils.logging.set_verbosity(log_level)

    last_checkpoint = None
    if os.path.isdir(training_args.output_dir) and training_args.do_train:
        last_checkpoint = get_last_checkpoint(training_args.output_dir)
    set_seed(training_args.seed)
    try:
        pairs = load_pairs(data_args, model_args.cache_dir)
    except TranslationDataError as error:
        raise SystemExit(f"run_translation.py: {error}") from None
    for name, flag in (("train", "--do_train"), ("validation", "--do_eval"), ("test", "--do_predict")):
        if getattr(training_args, flag[2:]) and name not in pairs:
            raise SystemExit(f"run_translation.py: {flag} needs a {name} split; the data has {sorted(pairs)}.")
    for name, limit in (
        ("train", data_args.max_train_samples),
        ("validation", data_args.max_eval_samples),
        ("test", data_args.max_predict_samples),
    ):
        if name in pairs and limit is not None:
            pairs[name] = pairs[name][:limit]

    if model_args.model_name_or_path is not None:
        tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, cache_dir=model_args.cache_dir)
        model = AutoModelForSeq2SeqLM.from_pretrained(model_args.model_name_or_path, cache_dir=model_args.cache_dir)
    elif last_checkpoint is not None:
        tokenizer = AutoTokenizer.from_pretrained(last_checkpoint)
        model = AutoModelForSeq2SeqLM.from_pretrained(last_checkpoint)
    elif training_args.do_train:
        tokenizer, model = build_from_scratch(model_args, pairs["train"], data_args)
    elif (Path(training_args.output_dir) / "config.json").exists():  # evaluate the pair a training run saved
        tokenizer = AutoTokenizer.from_pretrained(training_args.output_dir)
        model = AutoModelForSeq2SeqLM.from_pretrained(training_args.output_dir)
    else:
        raise SystemExit(
            "run_translation.py: without --do_train there is no model to evaluate: give --model_name_or_path, or "
            "the --output_dir of a training run."
        )
    if hasattr(tokenizer, "src_lang"):  # multilingual tokenizers (mBART, M2M100) take the full codes
        tokenizer.src_lang, tokenizer.tgt_lang = data_args.source_lang, data_args.target_lang
    logger.info(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")

    datasets = {name: encode(tokenizer, split, data_args) for name, split in pairs.items()}
    generation_beams = data_args.num_beams or training_args.generation_num_beams or 1
    training_args.generation_num_beams = generation_beams
    training_args.generation_max_length = training_args.generation_max_length or data_args.max_target_length

    def compute_metrics(prediction) -> dict[str, float]:
        predictions = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predictions = np.where(predictions != -100, predictions, tokenizer.pad_token_id)
        labels = np.where(prediction.label_ids != -100, prediction.label_ids, tokenizer.pad_token_id)
        hypotheses = [t.strip() for t in tokenizer.batch_decode(predictions, skip_special_tokens=True)]
        references = [t.strip() for t in tokenizer.batch_decode(labels, skip_special_tokens=True)]
        score, _, _ = corpus_bleu(hypotheses, references)
        lengths = [np.count_nonzero(p != tokenizer.pad_token_id) for p in predictions]
        return {"bleu": score, "gen_len": float(np.mean(lengths))}

    trainer = AutoDropSeq2SeqTrainer(
        model=model,
        args=training_args,
        train_dataset=datasets["train"] if training_args.do_train else None,
        eval_dataset=datasets.get("validation") if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
        compute_metrics=compute_metrics if training_args.predict_with_generate else None,
    )
    summary: dict[str, float] = {}
    start = time.perf_counter()
    if training_args.do_train:
        checkpoint = training_args.resume_from_checkpoint or last_checkpoint
        metrics = trainer.train(resume_from_checkpoint=checkpoint).metrics
        trainer.save_model()  # the tokenizer too, so from_pretrained(output_dir) reloads the pair
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
    train_seconds = time.perf_counter() - start
    if training_args.do_eval:
        metrics = trainer.evaluate(metric_key_prefix="eval")
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        summary.update(metrics)
    if training_args.do_predict:
        output = trainer.predict(datasets["test"], metric_key_prefix="predict")
        metrics = dict(output.metrics)
        if training_args.predict_with_generate:  # translations, scored against the raw references
            tokens = np.where(output.predictions != -100, output.predictions, tokenizer.pad_token_id)
            hypotheses = [t.strip() for t in tokenizer.batch_decode(tokens, skip_special_tokens=True)]
            references = [p[data_args.target_key] for p in pairs["test"]]
            score, signature, source = corpus_bleu(hypotheses, references)
            metrics["predict_bleu"] = score
            if trainer.is_world_process_zero():
                Path(training_args.output_dir, "generated_predictions.txt").write_text("\n".join(hypotheses) + "\n")
                print(f"test BLEU {score:.2f} against the raw references ({source}; {signature})")
        trainer.log_metrics("predict", metrics)
        trainer.save_metrics("predict", metrics)
        summary.update(metrics)
    if trainer.is_world_process_zero() and training_args.do_train:
        summary.update(report(trainer, training_args, summary, train_seconds, model))
    return summary


def report(trainer, training_args, metrics: dict, seconds: float, model) -> dict:
    """The result row of the run: schedule, BLEU, drops, final LR, steps, model size, time."""
    row = {
        "schedule": training_args.lr_scheduler_type.value,
        "eval_bleu": metrics.get("eval_bleu"),
        "test_bleu": metrics.get("predict_bleu"),
        "final_lr": trainer.optimizer.param_groups[0]["lr"],
        "optimizer_steps": trainer.state.global_step,
        "parameters_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "train_seconds": round(seconds, 1),
    }
    return summarize_run(training_args.output_dir, row, autodrop_ran=row["schedule"] == "autodrop")


if __name__ == "__main__":
    main()
