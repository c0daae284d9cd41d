"""`autodrop-hf run`: a Trainer-based Hugging Face script, byte for byte unchanged, runs with AutoDrop."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_glue_example import WORDS
from tiny import save_tiny_model_dir

SCRIPT = Path(__file__).parent / "hf_scripts" / "run_classification.py"
TIMEOUT = 240


def _data(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for split, size in (("train", 96), ("validation", 24)):
        with open(folder / f"{split}.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["sentence", "label"])
            for i in range(size):
                words = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(6)]
                writer.writerow([" ".join(words), int(i % 3 != 0)])
    return ["--train_file", str(folder / "train.csv"), "--validation_file", str(folder / "validation.csv")]


def _run(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        OMP_NUM_THREADS="1",
        HF_DATASETS_CACHE=str(tmp_path / "cache"),
    )
    try:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command[:4])} did not finish within {TIMEOUT} s")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model_dir(tmp_path_factory.mktemp("model"), WORDS)


def _arguments(tmp_path, model_dir):
    return [
        "--model_name_or_path",
        model_dir,
        *_data(tmp_path / "data"),
        "--output_dir",
        str(tmp_path / "out"),
        "--do_train",
        "--do_eval",
        "--max_steps",
        "24",
        "--per_device_train_batch_size",
        "8",
        "--learning_rate",
        "1e-3",
        "--warmup_steps",
        "2",
        "--logging_steps",
        "4",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--use_cpu",
        "true",
        "--disable_tqdm",
        "true",
    ]


def test_the_script_is_hugging_faces_and_knows_nothing_of_autodrop():
    text = SCRIPT.read_text()
    assert "autodrop" not in text.lower()
    assert "HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))" in text
    assert "trainer.create_model_card(**kwargs)" in text


def test_without_the_launcher_the_script_refuses_autodrop(tmp_path, model_dir):
    result = _run(
        [sys.executable, str(SCRIPT), *_arguments(tmp_path, model_dir), "--lr_scheduler_type", "autodrop"], tmp_path
    )
    assert result.returncode == 2 and "invalid choice: 'autodrop'" in result.stderr


def test_the_launcher_runs_the_unchanged_script_with_autodrop(tmp_path, model_dir):
    command = [sys.executable, "-m", "autodrop_hf.run", str(SCRIPT), *_arguments(tmp_path, model_dir)]
    command += [
        "--lr_scheduler_type",
        "autodrop",
        "--autodrop_window_size",
        "1",
        "--autodrop_buffer_size",
        "3",
        "--lr_scheduler_kwargs",
        '{"drop_factor": 0.5}',
    ]
    command += ["--eval_strategy", "steps", "--eval_steps", "4"]  # evaluations during training: the card's table
    result = _run(command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    history = [json.loads(line) for line in (out / "autodrop_history.jsonl").read_text().splitlines()]
    drops = [r["step"] for r in history if r["dropped"]]
    assert drops and history[0]["noise_floor"] == pytest.approx(25.84, abs=0.01)  # AdamW, window 1
    log = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert all("autodrop/lr_scale" in entry for entry in log if "loss" in entry)
    assert not any(key.startswith("autodrop/") for entry in log if "eval_loss" in entry for key in entry)
    assert [e for e in log if "loss" in e][-1]["autodrop/num_drops"] == len(drops)
    assert not any("autodrop" in key for key in json.loads((out / "all_results.json").read_text()))
    card = (out / "README.md").read_text()  # the model card, with its table of the evaluations during training
    assert "lr_scheduler_type: autodrop" in card
    assert "| Training Loss | Epoch  | Step | Validation Loss | Accuracy |" in card  # no column of AutoDrop's
    assert json.loads((out / "eval_results.json").read_text())["eval_samples"] == 24


def test_the_launchers_help_lists_autodrop(tmp_path):
    result = _run([sys.executable, "-m", "autodrop_hf.tools.cli", "run", str(SCRIPT), "--help"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--autodrop_window_size" in result.stdout and "--autodrop_preset" in result.stdout
    assert "autodrop" in result.stdout.split("--lr_scheduler_type")[1][:300]
    missing = _run([sys.executable, "-m", "autodrop_hf.run", str(tmp_path / "nowhere.py")], tmp_path)
    assert missing.returncode == 1 and "nowhere.py: no such file" in missing.stderr


PROCESS_GROUP_SCRIPT = """
import sys
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

def main():
    dist.init_process_group("gloo", init_method=sys.argv[1], rank=0, world_size=1)
    model = DistributedDataParallel(torch.nn.Linear(2, 1))
    model(torch.ones(1, 2)).sum().backward()
    if sys.argv[2] == "keep":
        sys.kept_model = model  # still alive after the script: the group must stay

main()
"""


def test_the_launcher_destroys_the_process_group_the_script_left_once_its_model_is_gone(tmp_path):
    script = tmp_path / "ddp_script.py"
    script.write_text(PROCESS_GROUP_SCRIPT)
    check = (
        "import torch.distributed as dist\n"
        "from autodrop_hf.hf.launcher import run_script\n"
        "for keep in ('free', 'keep'):\n"
        f"    run_script({str(script)!r}, [{(tmp_path / 'store').as_uri()!r} + keep, keep])\n"
        "    print(keep, 'initialized after the script:', dist.is_initialized())\n"
    )
    result = _run([sys.executable, "-c", check], tmp_path)
    assert result.returncode == 0, result.stderr
    # freed: destroyed (no teardown left to interpreter exit); still referenced: left alone (no deadlock)
    assert "free initialized after the script: False\nkeep initialized after the script: True" in result.stdout


def test_the_holders_of_a_process_group_are_found_by_type_without_reading_each_objects_class():
    import warnings

    import torch.distributed

    from autodrop_hf.hf.launcher import _holds_process_group

    class DeepSpeedEngine:  # stands for deepspeed's, found by name: deepspeed is not imported for this
        pass

    class PipelineEngine(DeepSpeedEngine):
        pass

    assert _holds_process_group(PipelineEngine()) and not _holds_process_group(object())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # isinstance() reads __class__, which warns on this deprecated object
        assert not _holds_process_group(torch.distributed.reduce_op)
