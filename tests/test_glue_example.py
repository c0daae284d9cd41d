import json
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tiny import FAST_AUTODROP_RUN, QUIET_RUN, save_tiny_model_dir
from transformers import TrainerCallback
from transformers.trainer_utils import SchedulerType

EXAMPLE = Path(__file__).parents[1] / "examples" / "glue"
sys.path.insert(0, str(EXAMPLE))

import run_glue  # noqa: E402
from glue_data import (  # noqa: E402
    GLUE_TASKS,
    HELD_OUT,
    POSITIVE_WORDS,
    GlueDataError,
    negation_sentence,
    negation_task,
    read_glue_dir,
    read_glue_tsv,
)
from glue_metrics import glue_metric, local_glue_metric  # noqa: E402

WORDS = "the a movie plot cast was is not good bad very dull great and but it so".split()


def sentence(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))


def write_glue_task(root: Path, task: str, rows: int = 48, seed: int = 0) -> Path:
    """Files in the exact layout GLUE's download script writes (header quirks included)."""
    rng = random.Random(seed)
    spec = GLUE_TASKS[task]
    folder = root / spec.folder
    folder.mkdir(parents=True)
    files = ["train.tsv", *spec.dev_files]
    for name in files:
        lines = []
        if task == "cola":  # no header: source, label, original mark, sentence
            lines = [f"gj04\t{rng.choice('01')}\t\t{sentence(rng)}" for _ in range(rows)]
        elif task == "mrpc":  # byte-order mark before the header
            lines = ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
            lines += [f"{rng.choice('01')}\t{i}\t{i + 1}\t{sentence(rng)}\t{sentence(rng)}" for i in range(rows)]
        elif task == "stsb":
            lines = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"]
            lines += [
                f"{i}\tmain-captions\tMSRvid\t2012test\t{i}\tnone\tnone\t{sentence(rng)}\t{sentence(rng)}\t"
                f"{rng.uniform(0, 5):.3f}"
                for i in range(rows)
            ]
        elif task == "mnli":
            lines = [
                "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse"
                "\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"
            ]
            for i in range(rows):
                label = rng.choice(["entailment", "neutral", "contradiction"])
                lines.append(
                    f"{i}\t1\t1e\tfiction\t( x )\t( y )\t(ROOT x)\t(ROOT y)\t"
                    f"{sentence(rng)}\t{sentence(rng)}\t{label}\t{label}"
                )
        elif task == "sst2":
            lines = ["sentence\tlabel"] + [f'{sentence(rng)} "quoted\t{rng.choice("01")}' for _ in range(rows)]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model_dir(tmp_path_factory.mktemp("model"), WORDS)


def run_script(monkeypatch, output_dir, *arguments):
    run = "--do_train --do_eval --max_steps 12 --per_device_train_batch_size 8 --learning_rate 1e-3 --warmup_steps 2"
    argv = ["run_glue.py", "--output_dir", str(output_dir), *run.split(), *QUIET_RUN, *FAST_AUTODROP_RUN, *arguments]
    monkeypatch.setattr(sys, "argv", argv)
    return run_glue.main()


@pytest.mark.parametrize(
    ("task", "metrics"),
    [
        ("cola", ["eval_matthews_correlation"]),
        ("sst2", ["eval_accuracy"]),
        ("mrpc", ["eval_accuracy", "eval_f1", "eval_combined_score"]),
        ("stsb", ["eval_pearson", "eval_spearmanr", "eval_combined_score"]),
        ("mnli", ["eval_accuracy", "eval_accuracy_mm"]),
    ],
)
def test_glue_tsv_end_to_end(tmp_path, monkeypatch, model_dir, task, metrics):
    write_glue_task(tmp_path / "glue", task)
    output = tmp_path / "out"
    summary = run_script(
        monkeypatch,
        output,
        "--glue_dir",
        str(tmp_path / "glue"),
        "--task_name",
        task,
        "--model_name_or_path",
        model_dir,
    )
    for name in metrics:
        assert np.isfinite(summary[name]), name
    saved = json.loads((output / "eval_results.json").read_text())
    assert set(metrics) <= set(saved)
    results = json.loads((output / "results.json").read_text())
    assert results["task"] == task and results["optimizer_steps"] == 12 and results["schedule"] == "autodrop"
    # the drops the summary counts (from the history file) are those the Trainer logged, and there are some
    logged = [
        e["autodrop/num_drops"]
        for e in json.loads((output / "trainer_state.json").read_text())["log_history"]
        if "autodrop/num_drops" in e
    ]
    assert results["drops"] == logged[-1]
    assert logged[-1] >= 1 or task == "stsb"  # the regression drops nowhere in its 12 steps
    assert (output / "autodrop.png").stat().st_size > 10_000
    config = json.loads((output / "config.json").read_text())
    if task == "stsb":
        assert len(config["id2label"]) == 1  # one regression output
    else:
        names = list(GLUE_TASKS[task].label_names)
        assert config["id2label"] == {str(i): name for i, name in enumerate(names)}
        assert config["label2id"] == {name: i for i, name in enumerate(names)}


def test_early_stopping_patience_adds_the_callback(tmp_path, monkeypatch, model_dir):
    made = []

    class Stopper(TrainerCallback):  # stands for EarlyStoppingCallback: records its patience, stops at step 4
        def __init__(self, early_stopping_patience):
            made.append(early_stopping_patience)

        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step == 4

    monkeypatch.setattr(run_glue, "EarlyStoppingCallback", Stopper)
    write_glue_task(tmp_path / "glue", "cola")
    arguments = ["--glue_dir", str(tmp_path / "glue"), "--task_name", "cola", "--model_name_or_path", model_dir]
    summary = run_script(monkeypatch, tmp_path / "out", *arguments, "--early_stopping_patience", "3")
    assert made == [3] and summary["optimizer_steps"] == 4
    made.clear()
    assert run_script(monkeypatch, tmp_path / "out2", *arguments)["optimizer_steps"] == 12 and made == []


def test_csv_files_and_json_config(tmp_path, monkeypatch, model_dir):
    rng = random.Random(1)
    for name in ("train", "dev"):
        rows = ["sentence1,label"] + [f"{sentence(rng)},{rng.choice(['pos', 'neg'])}" for _ in range(40)]
        (tmp_path / f"{name}.csv").write_text("\n".join(rows) + "\n")
    config = {
        "output_dir": str(tmp_path / "out"),
        "do_train": True,
        "do_eval": True,
        "max_steps": 6,
        "per_device_train_batch_size": 8,
        "report_to": "none",
        "save_strategy": "no",
        "lr_scheduler_type": "cosine",
        "train_file": str(tmp_path / "train.csv"),
        "validation_file": str(tmp_path / "dev.csv"),
        "model_name_or_path": model_dir,
    }
    (tmp_path / "args.json").write_text(json.dumps(config))
    monkeypatch.setattr(sys, "argv", ["run_glue.py", str(tmp_path / "args.json")])
    summary = run_glue.main()
    assert summary["schedule"] == "cosine" and summary["drops"] == 0
    assert json.loads((tmp_path / "out/config.json").read_text())["label2id"] == {"neg": 0, "pos": 1}
    # the reported accuracy is the saved model's, recomputed here from the dev file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    lines = (tmp_path / "dev.csv").read_text().splitlines()[1:]
    texts, labels = [line.rsplit(",", 1)[0] for line in lines], [line.rsplit(",", 1)[1] for line in lines]
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")).logits
    predicted = [model.config.id2label[int(i)] for i in logits.argmax(-1)]
    expected = sum(p == label for p, label in zip(predicted, labels, strict=True)) / len(labels)
    assert summary["eval_accuracy"] == pytest.approx(expected, abs=1e-9)


def test_last_checkpoint_is_resumed(tmp_path, monkeypatch, model_dir):
    write_glue_task(tmp_path / "glue", "sst2")
    common = ["--glue_dir", str(tmp_path / "glue"), "--task_name", "sst2", "--model_name_or_path", model_dir]
    common += ["--autodrop_drop_factor", "0.5"]  # the LR never reaches 0: every window is recorded
    run_script(monkeypatch, tmp_path / "out", *common, "--save_strategy", "steps", "--save_steps", "6")
    assert (tmp_path / "out/checkpoint-12").is_dir()
    summary = run_script(monkeypatch, tmp_path / "out", *common, "--max_steps", "16")
    assert summary["optimizer_steps"] == 16
    state = json.loads((tmp_path / "out/trainer_state.json").read_text())
    assert state["global_step"] == 16
    history = [json.loads(x) for x in (tmp_path / "out/autodrop_history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == list(range(4, 17, 2))  # the first run's windows are kept


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--task_name", "mrcp"], "unknown --task_name 'mrcp'"),
        (["--glue_dir", "x"], "--glue_dir needs --task_name"),
        (["--train_file", "a.txt", "--validation_file", "b.txt"], "must be .csv, .json or .jsonl"),
        (["--train_file", "a.csv"], "give both --train_file and --validation_file"),
        (
            ["--task_name", "cola", "--train_file", "a.csv", "--validation_file", "b.csv"],
            "--task_name with --train_file",
        ),
    ],
)
def test_bad_arguments_are_refused(tmp_path, monkeypatch, arguments, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        run_script(monkeypatch, tmp_path, *arguments)


def test_do_predict_is_refused_before_anything_runs(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match=r"--do_predict \(predictions for the unlabeled test split\) is not supported"):
        run_script(monkeypatch, tmp_path / "out", "--do_predict")
    assert not (tmp_path / "out").exists()


def test_the_result_row_takes_the_final_evaluation_of_each_split(tmp_path):
    """MNLI: the Trainer logs both evaluations without the _mm suffix; the row takes the matched accuracy."""
    matched, mismatched = {"eval_accuracy": 0.84, "eval_loss": 0.5}, {"eval_accuracy": 0.79, "eval_loss": 0.6}
    trainer = SimpleNamespace(
        state=SimpleNamespace(log_history=[matched, mismatched], global_step=10),
        optimizer=SimpleNamespace(param_groups=[{"lr": 0.0}]),
    )
    args = SimpleNamespace(output_dir=str(tmp_path), lr_scheduler_type=SchedulerType.LINEAR)  # as parsed
    final = {**matched, **{f"{k}_mm": v for k, v in mismatched.items()}}
    row = run_glue.report(trainer, args, "mnli", "mnli", final, seconds=1.0)
    assert row["eval_accuracy"] == 0.84 and json.loads((tmp_path / "results.json").read_text())["eval_accuracy"] == 0.84


def test_a_history_left_by_an_earlier_autodrop_run_is_not_this_runs(tmp_path):
    from summary import summarize_run

    record = {
        "step": 4,
        "angle": 30.0,
        "noise_floor": 25.8,
        "statistic": 0.0,
        "smoothed": None,
        "lr": 0.0,
        "lr_scale": 0.5,
        "dropped": True,
    }
    (tmp_path / "autodrop_history.jsonl").write_text(json.dumps(record) + "\n")
    assert summarize_run(tmp_path, {"schedule": "linear"}, autodrop_ran=False)["drops"] == 0
    assert not (tmp_path / "autodrop.png").exists()
    assert summarize_run(tmp_path, {"schedule": "autodrop"}, autodrop_ran=True)["drops"] == 1


def test_missing_file_stops_with_its_name(tmp_path, monkeypatch, model_dir):
    folder = write_glue_task(tmp_path / "glue", "mrpc")
    (folder / "dev.tsv").unlink()
    with pytest.raises(SystemExit, match=r"MRPC/dev\.tsv: file not found"):
        run_script(
            monkeypatch,
            tmp_path / "out",
            "--glue_dir",
            str(tmp_path / "glue"),
            "--task_name",
            "mrpc",
            "--model_name_or_path",
            model_dir,
        )


def test_wrong_columns_short_lines_and_unknown_labels(tmp_path):
    rte = GLUE_TASKS["rte"]
    path = tmp_path / "train.tsv"
    path.write_text("index\tpremise\thypothesis\tlabel\n0\ta\tb\tentailment\n")
    with pytest.raises(GlueDataError, match=r"columns \['sentence1', 'sentence2'\] missing for task rte"):
        read_glue_tsv(path, rte)
    path.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tmaybe\n")
    with pytest.raises(GlueDataError, match=r"train\.tsv, line 3: label 'maybe' is not one of"):
        read_glue_tsv(path, rte)
    path.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tentailment\n")
    with pytest.raises(GlueDataError, match="line 2: 3 tab-separated fields, task rte needs 4"):
        read_glue_tsv(path, rte)
    path.write_text("index\tsentence1\tsentence2\tscore\n")
    path.write_text(
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
        "0\tg\tf\ty\t0\ts\ts\ta\tb\thigh\n"
    )
    with pytest.raises(GlueDataError, match="score 'high' is not a number"):
        read_glue_tsv(path, GLUE_TASKS["stsb"])
    with pytest.raises(GlueDataError, match="unknown GLUE task 'squad'"):
        read_glue_dir(tmp_path, "squad")


def test_tsv_layouts_are_read_exactly(tmp_path):
    write_glue_task(tmp_path, "cola", rows=5)
    write_glue_task(tmp_path, "mrpc", rows=5)
    write_glue_task(tmp_path, "sst2", rows=5)
    cola = read_glue_dir(tmp_path, "cola")["train"]
    assert set(cola) == {"sentence1", "label"} and len(cola["label"]) == 5  # no header line eaten
    mrpc = read_glue_dir(tmp_path, "mrpc")["validation"]
    assert set(mrpc) == {"sentence1", "sentence2", "label"} and len(mrpc["label"]) == 5
    sst2 = read_glue_dir(tmp_path, "sst2")["train"]
    assert all('"quoted' in s for s in sst2["sentence1"])  # quotes are text, not CSV quoting


def test_local_metrics_match_closed_forms():
    predictions = np.array([1, 1, 0, 1, 0, 0, 1, 1])
    references = np.array([1, 0, 0, 1, 0, 1, 1, 1])
    tp, tn, fp, fn = 4, 2, 1, 1
    mcc = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert local_glue_metric("cola", predictions, references)["matthews_correlation"] == pytest.approx(mcc)
    assert local_glue_metric("mrpc", predictions, references) == pytest.approx(
        {"accuracy": 6 / 8, "f1": 2 * tp / (2 * tp + fp + fn)}
    )
    scores_p, scores_r = np.array([0.5, 2.0, 3.5, 1.0, 4.8]), np.array([1.0, 2.5, 3.0, 0.0, 5.0])
    x, y = scores_p - scores_p.mean(), scores_r - scores_r.mean()
    pearson = (x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum())
    ranks_p, ranks_r = scores_p.argsort().argsort(), scores_r.argsort().argsort()
    spearman = np.corrcoef(ranks_p, ranks_r)[0, 1]
    result = local_glue_metric("stsb", scores_p, scores_r)
    assert result["pearson"] == pytest.approx(pearson, rel=1e-6)
    assert result["spearmanr"] == pytest.approx(spearman)
    with pytest.raises(ValueError, match="no GLUE metric for task 'squad'"):
        local_glue_metric("squad", predictions, references)


def test_metric_uses_evaluate_when_it_loads(monkeypatch):
    import evaluate

    class FakeGlue:
        def compute(self, predictions, references):
            return local_glue_metric("mrpc", predictions, references)

    monkeypatch.setattr(evaluate, "load", lambda *a, **k: FakeGlue())
    compute, source = glue_metric("mrpc")
    assert source == "evaluate" and compute([1, 0], [1, 1])["accuracy"] == 0.5

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(evaluate, "load", offline)
    compute, source = glue_metric("mrpc")
    assert source == "local" and compute([1, 0], [1, 1]) == {"accuracy": 0.5, "f1": 2 / 3}


def test_generated_task_labels_follow_from_the_text():
    rng = random.Random(3)
    for _ in range(300):
        text, label = negation_sentence(rng)
        if " but " in text or "although" in text or text.startswith(("i would", "it is", "nobody")):
            continue
        negated = any(f" {n}" in text for n in ("not", "never", "hardly"))
        positive = any(text.endswith(a) for a in POSITIVE_WORDS[:-HELD_OUT])
        assert label == int(positive != negated), text
    splits = negation_task()
    assert (len(splits["train"]["label"]), len(splits["validation"]["label"])) == (2000, 500)
    assert not set(splits["train"]["sentence1"]) & set(splits["validation"]["sentence1"])
    assert not any("gripping" in s for s in splits["train"]["sentence1"])
    assert any("gripping" in s for s in splits["validation"]["sentence1"])
    assert 0.4 < np.mean(splits["train"]["label"]) < 0.6
    assert negation_task() == splits  # deterministic
