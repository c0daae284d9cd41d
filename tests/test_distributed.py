"""Two processes on CPU (gloo), launched with torchrun: DDP, FSDP2, mixed replication, resume."""

import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from launch import LaunchTimeout, run_processes
from tiny import QUIET_RUN

from autodrop_hf import AutoDrop, AutoDropConfig

SCRIPTS = Path(__file__).parent / "distributed"


def launch(script, *arguments, processes=2, **env_vars):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    if processes == 1:
        command = [sys.executable]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", **env_vars)
    result = run_processes([*command, str(SCRIPTS / script), *map(str, arguments)], env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def make_tiny_model():
    return torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.Tanh(), torch.nn.Linear(32, 3))


def records(folder, world=2):
    return [json.loads((folder / f"rank{rank}.json").read_text()) for rank in range(world)]


def angles(record, key="angles"):
    return np.array([angle for _, angle in record[key]])


def test_a_hung_rank_is_named_and_every_process_is_killed(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text(
        "import os, time\n"
        "open(os.environ['PIDS'] + os.environ['RANK'], 'w').write(str(os.getpid()))\n"
        "if os.environ['RANK'] == '1':\n    time.sleep(600)\n"
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    env = dict(os.environ, PIDS=str(tmp_path / "pid"))
    with pytest.raises(LaunchTimeout, match=r"hang.py: timed out after 5 s: rank 1 did not exit; killed its 2 "):
        run_processes(command, env, timeout=5, started=tmp_path / "pid1")  # 5 s from rank 1's start
    pid = int((tmp_path / "pid1").read_text())
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_the_no_trainer_order_plans_the_optimizer_steps_each_process_runs(tmp_path):
    """Built before prepare with the unsplit step count (scheduler steps), the detector plans the 100 optimizer
    steps each process runs (not 200): its linear stairs reach 0 at the last step."""
    launch("no_trainer_loop.py", "--out", tmp_path)
    first, second = records(tmp_path)
    assert first["world"] == 2 and first["steps_per_optimizer_step"] == 2
    assert first["planned"] == first["optimizer_steps"] == 100
    assert first["drops"] == second["drops"] and first["lrs"] == second["lrs"] and len(first["drops"]) >= 10
    assert first["final_scale"] == 0.0 and first["lrs"][4] == pytest.approx(1e-2)  # warm-up: 4 optimizer steps


@pytest.mark.parametrize("layout", ["ddp", "fsdp", "mixed"])
def test_plain_loop_matches_one_process(tmp_path, layout):
    launch("plain_loop.py", "--layout", layout, "--out", tmp_path)
    first, second = records(tmp_path)
    # every process takes the same decisions at the same steps
    assert first["drops"] == second["drops"] and first["lrs"] == second["lrs"]
    assert first["angles"] == second["angles"]
    # ... and the same as one process on the same global batches, through a mid-window checkpoint
    assert first["drops"] == first["reference_drops"] and len(first["drops"]) >= 2
    assert np.allclose(first["lrs"], first["reference_lrs"], rtol=1e-12)
    tolerance = 1e-3 if layout == "ddp" else 1e-4
    assert np.abs(angles(first) - angles(first, "reference_angles")).max() < tolerance
    # O(1) communication: one all_reduce of three float64 per window, nothing on other steps
    assert first["all_reduce_calls"] == first["windows"] == 28
    assert first["all_reduce_bytes"] == 24 * first["windows"]
    # the core speaks torch.distributed: without Accelerate, nothing imports it
    assert first["accelerate_imported"] == (layout == "ddp")
    if layout == "ddp":  # replicated: each process holds everything, the state is the same everywhere
        assert not first["is_sharded"] and first["local_parameters"] == second["local_parameters"] == 515
    else:  # sharded: each holds its part, its state is its own
        assert first["is_sharded"] and second["is_sharded"]
        assert first["local_parameters"] + second["local_parameters"] == (515 if layout == "fsdp" else 515 + 99)


@pytest.mark.parametrize("layout", ["ddp", "fsdp"])
def test_the_weight_average_under_ddp_is_one_process_average_and_is_refused_under_fsdp2(tmp_path, layout):
    launch("plain_loop.py", "--layout", layout, "--out", tmp_path, "--average")
    first, second = records(tmp_path)
    if layout == "fsdp":
        assert "sharded (FSDP2 or ZeRO-3)" in first["refused"] and first == second
        return
    assert first["average"] == second["average"] and first["lrs"] == second["lrs"]
    assert np.allclose(first["average"], first["reference_average"], rtol=1e-5, atol=1e-6)
    assert first["drops"] == first["reference_drops"]
    assert np.abs(np.subtract(first["average"], first["weights"])).max() > 1e-3  # an average, not the weights


@pytest.mark.parametrize("layout", ["ddp", "fsdp"])
def test_the_drift_hold_under_ddp_and_fsdp2_is_one_process_ratio_and_resumes(tmp_path, layout):
    launch("plain_loop.py", "--layout", layout, "--out", tmp_path, "--drift_ratio", 1.6)
    first, second = records(tmp_path)
    # every process gets the same ratio at every decision (one all-reduce of 8 bytes each), through the checkpoint
    assert first["ratios"] == second["ratios"] and len(first["ratios"]) == first["decisions"] >= 8
    assert first["drops"] == second["drops"] == first["reference_drops"] and first["lrs"] == second["lrs"]
    assert np.allclose(first["ratios"], first["reference_ratios"], rtol=1e-3)  # one process, the same batches
    assert min(first["ratios"]) < 1.6 <= max(first["ratios"]) and len(first["drops"]) >= 2  # held and dropped
    assert first["all_reduce_calls"] == first["windows"] + first["decisions"]
    assert first["all_reduce_bytes"] == 24 * first["windows"] + 8 * first["decisions"]


@pytest.mark.parametrize("layout", ["ddp", "fsdp"])
def test_the_memory_light_mode_under_ddp_and_fsdp2(tmp_path, layout):
    with pytest.warns(UserWarning, match="too few for a steady angle estimate"):  # this model is tiny: said so
        AutoDrop(make_tiny_model(), AutoDropConfig(sample_fraction=0.5), momentum=0.0)
    # hidden 4,096: 65,551 elements, every 2nd block: blocks of 2 (16,388 blocks); a process's shard alone
    # (FSDP2 splits the 3 output rows 2 + 1) would get blocks of 1: the choice counts the whole model
    launch("plain_loop.py", "--layout", layout, "--out", tmp_path, "--sample_fraction", 0.5, "--hidden", 4096)
    first, second = records(tmp_path)
    assert first["drops"] == second["drops"] and first["angles"] == second["angles"] and first["lrs"] == second["lrs"]
    assert first["sample_block"] == second["sample_block"] == first["reference_sample_block"] == 2
    if layout == "ddp":  # replicated: every process watches the same blocks as one process would
        # (the trajectories differ by rounding: DDP averages two half-batch gradients, one process one batch)
        assert np.abs(angles(first) - angles(first, "reference_angles")).max() < 5e-3
        assert first["drops"] == first["reference_drops"]
    else:  # sharded: each process samples its own shards (other blocks than one process would), weighted as the
        # exact mode: the angle of half the model stays within a tenth of a degree of one process's (0.03° measured)
        assert first["local_parameters"] + second["local_parameters"] < 65_551
        assert np.abs(angles(first) - angles(first, "reference_angles")).max() < 0.1
        assert first["drops"] == first["reference_drops"]
    assert first["all_reduce_calls"] == first["windows"]


def test_trainer_ddp_matches_one_process_and_resumes(tmp_path):
    launch("ddp_trainer.py", "--out", tmp_path / "single", "--per_device_batch", 8, processes=1)
    launch("ddp_trainer.py", "--out", tmp_path / "ddp", "--per_device_batch", 4)
    (single,) = records(tmp_path / "single", world=1)
    first, second = records(tmp_path / "ddp")
    assert first["world"] == 2
    assert first["drops"] == second["drops"] == single["drops"] and len(single["drops"]) >= 2
    assert first["lrs"] == second["lrs"]
    assert first["lrs"] == pytest.approx(single["lrs"], rel=1e-12)
    assert np.abs(angles(first) - angles(single)).max() < 1e-3

    launch("ddp_trainer.py", "--out", tmp_path / "resumed", "--per_device_batch", 4, "--save_steps", 21)
    checkpoint = tmp_path / "resumed" / "checkpoint-21"
    assert [p.name for p in checkpoint.glob("autodrop_state*.pt")] == ["autodrop_state.pt"]  # one copy
    launch("ddp_trainer.py", "--out", tmp_path / "resumed", "--per_device_batch", 4, "--resume", checkpoint)
    resumed = records(tmp_path / "resumed")
    for record in resumed:
        assert record["drops"] == first["drops"]
        assert record["angles"] == first["angles"]
        assert {s: lr for s, lr in first["lrs"].items() if int(s) > 21} == record["lrs"]


def test_every_process_stops_at_the_same_step_when_autodrop_says_done(tmp_path):
    launch("ddp_trainer.py", "--out", tmp_path, "--per_device_batch", 4, "--stop_when_done")
    first, second = records(tmp_path)
    assert first["world"] == 2 and first["done_step"] is not None
    assert first["global_step"] == second["global_step"] == first["done_step"] == second["done_step"] < 2_000
    assert first["drops"] == second["drops"] and first["lrs"] == second["lrs"]


def free_port() -> int:
    """A TCP port free now: ``accelerate launch`` otherwise rendezvous on 29500, shared with any other launch."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accelerate_launch(script, *arguments, module=None):
    """``accelerate launch`` with 2 CPU processes (``--multi_gpu`` starts them; ``--cpu`` would start one);
    with ``module``, ``accelerate launch -m module script ...``."""
    target = [str(Path(__file__).parents[1] / script)] if module is None else ["-m", module, str(script)]
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--main_process_port",
        str(free_port()),
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        *target,
        *map(str, arguments),
        "--use_cpu",
        "true",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    result = run_processes(command, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_run_glue_under_accelerate_launch(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_glue_example import WORDS, write_glue_task
    from tiny import save_tiny_model_dir

    model = save_tiny_model_dir(tmp_path / "model", WORDS)
    write_glue_task(tmp_path / "glue", "mrpc")
    accelerate_launch(
        "examples/glue/run_glue.py",
        "--glue_dir",
        tmp_path / "glue",
        "--task_name",
        "mrpc",
        "--model_name_or_path",
        model,
        "--output_dir",
        tmp_path / "out",
        "--do_train",
        "--do_eval",
        "--max_steps",
        8,
        "--per_device_train_batch_size",
        4,
        "--lr_scheduler_type",
        "autodrop",
        "--autodrop_window_size",
        2,
        *QUIET_RUN,
    )
    results = json.loads((tmp_path / "out/results.json").read_text())
    assert results["optimizer_steps"] == 8 and results["schedule"] == "autodrop"
    assert json.loads((tmp_path / "out/train_results.json").read_text())["train_samples"] == 48
    # two processes of batch 4: 8 steps see 64 of the 48 examples, one process would see 32
    assert json.loads((tmp_path / "out/trainer_state.json").read_text())["epoch"] == pytest.approx(64 / 48)


def test_run_translation_under_accelerate_launch(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_translation_example import write_parallel

    data = write_parallel(tmp_path / "data", sizes=(("train", 64), ("valid", 8)))
    accelerate_launch(
        "examples/translation/run_translation.py",
        "--text_dir",
        data,
        "--output_dir",
        tmp_path / "out",
        "--do_train",
        "--do_eval",
        "--predict_with_generate",
        "--max_steps",
        6,
        "--per_device_train_batch_size",
        8,
        "--lr_scheduler_type",
        "autodrop",
        "--autodrop_window_size",
        1,
        "--warmup_steps",
        1,
        "--vocab_size",
        60,
        "--d_model",
        16,
        "--encoder_layers",
        1,
        "--decoder_layers",
        1,
        "--attention_heads",
        2,
        "--ffn_dim",
        32,
        "--max_target_length",
        16,
        *QUIET_RUN,
    )
    results = json.loads((tmp_path / "out/results.json").read_text())
    assert results["optimizer_steps"] == 6 and 0.0 <= results["eval_bleu"] <= 100.0  # a BLEU was computed
    # two processes of batch 8: 6 steps see 96 of the 64 pairs
    assert json.loads((tmp_path / "out/trainer_state.json").read_text())["epoch"] == pytest.approx(96 / 64)


def test_an_unchanged_hugging_face_script_under_accelerate_launch_with_the_launcher(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_glue_example import WORDS
    from test_launcher import SCRIPT, _data
    from tiny import save_tiny_model_dir

    model = save_tiny_model_dir(tmp_path / "model", WORDS)
    accelerate_launch(
        SCRIPT,
        "--model_name_or_path",
        model,
        *_data(tmp_path / "data"),
        "--output_dir",
        tmp_path / "out",
        "--do_train",
        "--max_steps",
        16,
        "--per_device_train_batch_size",
        4,
        "--report_to",
        "none",
        "--lr_scheduler_type",
        "autodrop",
        "--autodrop_window_size",
        1,
        "--autodrop_buffer_size",
        3,
        "--save_strategy",
        "no",
        "--disable_tqdm",
        "true",
        module="autodrop_hf.run",
    )
    history = [json.loads(line) for line in (tmp_path / "out/autodrop_history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history][-1] <= 16 and sum(r["statistic"] is not None for r in history) >= 3
    assert json.loads((tmp_path / "out/trainer_state.json").read_text())["epoch"] == pytest.approx(16 * 8 / 96)


def test_deepspeed_zero3_partitions_give_the_angles_of_replicated_zero2(tmp_path):
    for stage in (2, 3):
        launch("deepspeed_trainer.py", "--out", tmp_path / f"stage{stage}", "--stage", stage, DS_ACCELERATOR="cpu")
    replicated, partitioned = records(tmp_path / "stage2"), records(tmp_path / "stage3")
    assert not replicated[0]["sharded"] and partitioned[0]["sharded"]
    assert partitioned[0]["watched"] + partitioned[1]["watched"] >= replicated[0]["watched"]  # padding included
    for record in partitioned:
        assert record["drops"] == replicated[0]["drops"] and len(record["angles"]) == len(replicated[0]["angles"]) > 20
        assert np.abs(angles(record) - angles(replicated[0])).max() < 1e-3
