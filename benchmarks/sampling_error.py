"""The memory-light mode against exact mode on real training: the angle error per window and the decisions.

    python benchmarks/sampling_error.py glue --glue_dir path/to/glue --task cola
    python benchmarks/sampling_error.py translation --text_dir path/to/multi30k --steps 600

A real run (the packaged MiniLM fine-tuned on a GLUE task, 3 epochs, lr 5e-5, 6% warm-up, batch 32; or the
Multi30k Transformer from scratch, lr 1e-3, 100 warm-up steps, batch 64) trains with exact AutoDrop at its
defaults driving the learning rate, while AutoDrops in the memory-light mode watch the same parameters
(fractions 0.1 and 0.01; blocks of the library's size, ``--blocks``: of several sizes) without acting. Per
window: the absolute difference of the angles (degrees); per decision: whether the sampled detector takes the
same decision — both at the steps the two detectors measured (a detector whose decisions differ may decide at
other steps, or stop when its learning-rate scale reaches 0) — and, where it does not, both statistics (the
mean angle's distance to the noise floor in standard errors; ``z >= -drift_z`` drops): how close to the
threshold the exact decision was. Writes ``results/sampling_error_<data>.json``.

The estimator: with every ``s``-th block of ``B`` elements sampled (``n`` of ``N`` blocks), each window sum
(``P = <a, b>``, ``Q = ‖a‖²``, ``R = ‖b‖²``, over blocks ``P_j``, ``Q_j``, ``R_j``) is estimated by ``s`` times its
sampled part, and the cosine ``c = P/√(QR)`` by the ratio, in which ``s`` cancels. To first order,
``ĉ − c ≈ Σ_j (s·[j sampled] − 1)·e_j`` with ``e_j = P_j/√(QR) − (c/2)·(Q_j/Q + R_j/R)``, so
``Var(ĉ) ≈ (N²/n)·(1 − n/N)·Var_j(e_j)`` and the angle's error is ``Δω ≈ (180/π)·sd(ĉ)/sin ω`` degrees: it
shrinks as ``1/√n`` and grows when a few blocks carry most of a displacement. The measured errors are what
matters for the decisions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from autodrop_hf import AutoDrop, AutoDropConfig, AutoDropScheduler

ROOT = Path(__file__).parents[1]
FRACTIONS = (0.1, 0.01)


def glue_run(args) -> tuple[torch.nn.Module, torch.optim.Optimizer, list, int, int]:
    sys.path.insert(0, str(ROOT / "examples" / "glue"))
    from glue_data import GLUE_TASKS, read_glue_dir
    from run_glue import resolve_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    path = resolve_model("minilm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=GLUE_TASKS[args.task].num_labels)
    train = read_glue_dir(args.glue_dir, args.task)["train"]
    texts = [train[k] for k in ("sentence1", "sentence2") if k in train]
    encoded = tokenizer(*texts, truncation=True, max_length=128)
    columns = zip(encoded["input_ids"], encoded["attention_mask"], train["label"], strict=True)
    features = [{"input_ids": ids, "attention_mask": mask, "labels": label} for ids, mask, label in columns]
    collate = DataCollatorWithPadding(tokenizer)
    generator = torch.Generator().manual_seed(42)
    batches = []
    for _ in range(3):
        order = torch.randperm(len(features), generator=generator).tolist()
        batches += [collate([features[i] for i in order[s : s + 32]]) for s in range(0, len(order), 32)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    return model, optimizer, batches, len(batches), round(0.06 * len(batches))


def translation_run(args) -> tuple[torch.nn.Module, torch.optim.Optimizer, list, int, int]:
    sys.path.insert(0, str(ROOT / "examples" / "translation"))
    from run_translation import DataTrainingArguments, ModelArguments, build_from_scratch
    from transformers import DataCollatorForSeq2Seq
    from translation_data import read_parallel_text

    pairs = read_parallel_text(args.text_dir, "train", "de", "en")
    model_args = ModelArguments()
    data_args = DataTrainingArguments(text_dir=args.text_dir, source_lang="de", target_lang="en")
    tokenizer, model = build_from_scratch(model_args, pairs, data_args)
    encoded = tokenizer([p["de"] for p in pairs], text_target=[p["en"] for p in pairs], truncation=True, max_length=128)
    columns = zip(encoded["input_ids"], encoded["attention_mask"], encoded["labels"], strict=True)
    features = [{"input_ids": ids, "attention_mask": mask, "labels": labels} for ids, mask, labels in columns]
    collate = DataCollatorForSeq2Seq(tokenizer, model=model)
    generator = torch.Generator().manual_seed(42)
    order = []
    while len(order) < 64 * args.steps:  # as many epochs as the steps need
        order += torch.randperm(len(features), generator=generator).tolist()
    batches = [collate([features[i] for i in order[s : s + 64]]) for s in range(0, 64 * args.steps, 64)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return model, optimizer, batches, args.steps, args.warmup_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", choices=["glue", "translation"])
    parser.add_argument("--glue_dir", help="glue: a folder of GLUE task folders (<TASK>/train.tsv)")
    parser.add_argument("--task", default="cola")
    parser.add_argument("--text_dir", help="translation: a folder of train.de / train.en")
    parser.add_argument("--steps", type=int, default=600, help="translation: optimizer steps")
    parser.add_argument("--warmup_steps", type=int, default=100, help="translation: warm-up steps")
    parser.add_argument(
        "--blocks",
        type=lambda v: None if v == "auto" else int(v),
        nargs="+",
        default=[None],
        help="elements per sampled block, to compare ('auto': the library's choice, the default)",
    )
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if (args.glue_dir if args.data == "glue" else args.text_dir) is None:
        parser.error(f"{args.data} needs {'--glue_dir' if args.data == 'glue' else '--text_dir'}")
    torch.manual_seed(42)
    model, optimizer, batches, total, warmup = (glue_run if args.data == "glue" else translation_run)(args)
    scheduler = AutoDropScheduler(
        optimizer, model, AutoDropConfig(sample_fraction=1.0), num_training_steps=total, num_warmup_steps=warmup
    )
    shadows = {}
    for fraction in FRACTIONS:
        for block in args.blocks:
            config = AutoDropConfig(sample_fraction=fraction)
            shadow = AutoDrop(model, config, momentum=0.9, num_training_steps=total, num_warmup_steps=warmup)
            if block is not None:  # the same detector, its meter cutting blocks of another size
                shadow.angular_velocity = shadow.angular_velocity.with_block(block)
            shadows[fraction, block] = shadow
    start = time.perf_counter()
    for batch in batches[:total]:
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        for shadow in shadows.values():
            shadow.step()
    exact = scheduler.autodrop
    result = {
        "data": args.task if args.data == "glue" else "multi30k",
        "steps": total,
        "window_size": exact.window_size,
        "drift_z": exact.config.drift_z,
        "trainable_parameters": sum(p.numel() for p in model.parameters()),
        "exact": {"angles": len(exact.angles), "decisions": len(exact.decisions), "drops": len(exact.drops)},
        "seconds": round(time.perf_counter() - start, 1),
        "threads": torch.get_num_threads(),
    }
    exact_angles, exact_decisions = dict(exact.angles), {step: (z, drop) for step, z, drop in exact.decisions}
    for (fraction, block), shadow in shadows.items():
        # compared at the steps both measured: a detector whose decisions differ may stop (its learning-rate
        # scale reached 0) or decide at other steps
        errors = [abs(angle - exact_angles[step]) for step, angle in shadow.angles if step in exact_angles]
        compared = [(step, z, drop) for step, z, drop in shadow.decisions if step in exact_decisions]
        differing = [(step, z) for step, z, drop in compared if drop != exact_decisions[step][1]]
        result[f"sample_{fraction:g}" + ("" if block is None else f"_block_{block}")] = {
            "block": shadow.angular_velocity.sample_block,
            "watched_parameters": shadow.angular_velocity.num_parameters,
            "bytes_per_parameter": 12 * shadow.angular_velocity.num_parameters / result["trainable_parameters"],
            "angle_error_median_degrees": statistics.median(errors),
            "angle_error_p95_degrees": sorted(errors)[int(0.95 * (len(errors) - 1))],
            "angle_error_max_degrees": max(errors),
            "compared_angles": len(errors),
            "compared_decisions": len(compared),
            "same_decisions": 1 - len(differing) / len(compared) if compared else None,
            "decisions_differing_at": [step for step, _ in differing],
            "differing_statistics": [
                {"step": step, "exact_z": exact_decisions[step][0], "sampled_z": z} for step, z in differing
            ],
        }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / f"sampling_error_{result['data']}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
