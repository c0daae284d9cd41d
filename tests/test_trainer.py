import json
import math
import re
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import TokenParity, quiet_training_values, tiny_bert
from transformers import HfArgumentParser, Trainer, TrainerCallback, TrainingArguments

import autodrop_hf.core.config
from autodrop_hf import (
    AutoDropCallback,
    AutoDropConfig,
    AutoDropLR,
    AutoDropTrainer,
    AutoDropTrainingArguments,
)
from autodrop_hf.core.history import HISTORY_FILE
from autodrop_hf.hf.callback import STATE_FILE

# The paper's rule with a loose threshold: drops of 0.95 every few windows, to test the Trainer plumbing.
FAST = dict(autodrop_preset="paper", autodrop_window_size="2", autodrop_buffer_size=3, autodrop_threshold=5.0)
FAST_CONFIG = AutoDropConfig.paper(window_size=2, buffer_size=3, threshold=5.0)


class LearningRateProbe(TrainerCallback):
    """Records the learning rate each optimizer step runs with."""

    def __init__(self):
        self.lrs = {}

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.lrs[state.global_step + 1] = optimizer.param_groups[0]["lr"]


def training_args(output_dir, cls=AutoDropTrainingArguments, **overrides):
    values = quiet_training_values(output_dir, max_steps=60, warmup_steps=5, logging_steps=5, data_seed=0)
    if cls is AutoDropTrainingArguments:
        values.update(lr_scheduler_type="autodrop", **FAST)
    values.update(overrides)
    return cls(**values)


def autodrop_of(trainer):
    (callback,) = [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, AutoDropCallback)]
    return callback.autodrop


def run(trainer_cls, args, callbacks=(), resume=None, model_seed=0):
    probe = LearningRateProbe()
    trainer = trainer_cls(
        model=tiny_bert(model_seed), args=args, train_dataset=TokenParity(), callbacks=[probe, *callbacks]
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer, probe.lrs


def test_autodrop_trainer_learning_rate_is_warmup_times_scale(tmp_path):
    trainer, lrs = run(AutoDropTrainer, training_args(tmp_path))
    autodrop = autodrop_of(trainer)
    assert isinstance(trainer.lr_scheduler, AutoDropLR)
    assert len(autodrop.drops) >= 3
    for step, lr in lrs.items():
        drops_before = sum(1 for s in autodrop.drops if s < step)
        assert lr == pytest.approx(1e-3 * min(1.0, (step - 1) / 5) * 0.95**drops_before, rel=1e-12)


def test_callback_is_added_once_and_first(tmp_path):
    args = training_args(tmp_path)
    trainer = AutoDropTrainer(model=tiny_bert(), args=args, train_dataset=TokenParity())
    assert isinstance(trainer.callback_handler.callbacks[0], AutoDropCallback)
    mine = AutoDropCallback(FAST_CONFIG)
    trainer = AutoDropTrainer(model=tiny_bert(), args=args, train_dataset=TokenParity(), callbacks=[mine])
    callbacks = [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, AutoDropCallback)]
    assert callbacks == [mine] and trainer.callback_handler.callbacks[0] is mine
    linear = training_args(tmp_path, lr_scheduler_type="linear")
    trainer = AutoDropTrainer(model=tiny_bert(), args=linear, train_dataset=TokenParity())
    assert not any(isinstance(cb, AutoDropCallback) for cb in trainer.callback_handler.callbacks)


def test_stock_trainer_drops_multiply_the_configured_schedule(tmp_path):
    args = training_args(tmp_path, cls=TrainingArguments, lr_scheduler_type="linear")
    with pytest.warns(UserWarning, match="constant_with_warmup"):
        trainer, lrs = run(Trainer, args, callbacks=[AutoDropCallback(FAST_CONFIG)])
    autodrop = autodrop_of(trainer)
    assert len(autodrop.drops) >= 3
    for step, lr in lrs.items():
        t = step - 1
        linear = min(t / 5, (60 - t) / (60 - 5))
        drops_before = sum(1 for s in autodrop.drops if s < step)
        assert lr == pytest.approx(1e-3 * linear * 0.95**drops_before, rel=1e-9)


def test_stock_trainer_with_constant_schedule_does_not_warn(tmp_path):
    said = {}
    for schedule in ("constant_with_warmup", "linear"):  # linear: the warning this test looks for is said
        args = training_args(tmp_path / schedule, cls=TrainingArguments, lr_scheduler_type=schedule, max_steps=10)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run(Trainer, args, callbacks=[AutoDropCallback(FAST_CONFIG)])
        said[schedule] = [str(w.message) for w in caught if "multiply the" in str(w.message)]
    assert said["constant_with_warmup"] == [] and len(said["linear"]) == 1


def test_command_line_accepts_autodrop_and_every_hf_scheduler(tmp_path):
    parser = HfArgumentParser(AutoDropTrainingArguments)
    base = ["--output_dir", str(tmp_path), "--report_to", "none"]
    (args,) = parser.parse_args_into_dataclasses(
        [
            *base,
            "--lr_scheduler_type",
            "autodrop",
            "--autodrop_window_size",
            "32",
            "--autodrop_drop_factor",
            "0.9",
        ]
    )
    assert args.lr_scheduler_type == "autodrop"
    assert args.autodrop_config() == AutoDropConfig(window_size=32, drop_factor=0.9)
    (args,) = parser.parse_args_into_dataclasses(
        [
            *base,
            "--lr_scheduler_type",
            "autodrop",
            "--lr_scheduler_kwargs",
            '{"preset": "paper", "threshold": 0.2, "window_size": 8}',
        ]
    )
    assert args.autodrop_config() == AutoDropConfig.paper(window_size=8, threshold=0.2)
    from transformers.trainer_utils import SchedulerType

    for name in SchedulerType:
        extra = ["--eval_strategy", "steps", "--eval_steps", "10"]
        (args,) = parser.parse_args_into_dataclasses([*base, "--lr_scheduler_type", name.value, *extra])
        assert args.lr_scheduler_type == name
    with pytest.raises(ValueError):
        TrainingArguments(output_dir=str(tmp_path), lr_scheduler_type="autodrop")
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses([*base, "--lr_scheduler_type", "autodrp"])


def test_help_explains_the_flags(capsys):
    parser = HfArgumentParser(AutoDropTrainingArguments)
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in AutoDropConfig.field_names():
        assert f"--autodrop_{name}" in text
    assert "AutoDrop: What a drop does: a factor 0 < ρ < 1" in text and "autodrop" in text
    assert "Default: 2.0 (a preset may differ)." in text  # one default each, not argparse's "(default: None)" too
    assert text.count("(a preset may differ).") == len(AutoDropConfig.field_names()) and "differ). (default" not in text


def test_bad_autodrop_arguments_fail_at_construction(tmp_path):
    with pytest.raises(ValueError, match="drop_factor must satisfy 0 < drop_factor < 1"):
        training_args(tmp_path, autodrop_drop_factor=1.5)
    with pytest.raises(ValueError, match=r"window_size must be an integer from 1 to 2\*\*31, 'auto' or 'growing'"):
        training_args(tmp_path, autodrop_window_size="often")
    with pytest.raises(ValueError, match=r"\['rho'\] are not AutoDrop hyper-parameters"):
        training_args(tmp_path, lr_scheduler_kwargs={"rho": 0.5})
    with pytest.raises(TypeError, match="AutoDropConfig"):
        AutoDropCallback({"window_size": 2})


def test_set_lr_scheduler_accepts_autodrop(tmp_path):
    args = training_args(tmp_path, lr_scheduler_type="linear").set_lr_scheduler("autodrop", warmup_steps=3)
    assert args.lr_scheduler_type == "autodrop" and args.warmup_steps == 3
    assert args.set_lr_scheduler("cosine").lr_scheduler_type == "cosine"


def test_auto_window_uses_planned_optimizer_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(autodrop_hf.core.config, "AUTO_WINDOWS_PER_RUN", 10)
    args = training_args(
        tmp_path, max_steps=-1, num_train_epochs=3, gradient_accumulation_steps=2, autodrop_window_size="auto"
    )
    trainer, _ = run(AutoDropTrainer, args)
    # 256 examples / batch 8 = 32 batches = 16 optimizer steps per epoch, 48 in all.
    assert trainer.state.max_steps == 48 == trainer.state.global_step
    autodrop = autodrop_of(trainer)
    assert autodrop.window_size == round(48 / 10)
    assert autodrop.num_steps == 48  # one AutoDrop step per optimizer step, not per micro-batch


def test_skipped_optimizer_step_is_not_observed(tmp_path):
    """On the Trainer's real optimizer (Accelerate's AcceleratedOptimizer, whose GradScaler sets _is_overflow
    when it skips a step), as Transformers hands it to on_step_end."""
    from accelerate.optimizer import AcceleratedOptimizer

    trainer, _ = run(AutoDropTrainer, training_args(tmp_path, max_steps=10))
    callback = trainer.callback_handler.callbacks[0]
    autodrop = callback.autodrop
    optimizer = trainer.optimizer
    assert isinstance(optimizer, AcceleratedOptimizer) and optimizer.step_was_skipped is False
    before = autodrop.state_dict()["angular_velocity"]["window_sum"][0].clone()
    steps = autodrop.num_steps
    optimizer._is_overflow = True  # what a skipped fp16 step leaves
    callback.on_step_end(trainer.args, trainer.state, trainer.control, optimizer=optimizer)
    assert optimizer.step_was_skipped is True and autodrop.num_steps == steps
    assert torch.equal(autodrop.state_dict()["angular_velocity"]["window_sum"][0], before)
    optimizer._is_overflow = False
    optimizer.optimizer.step()  # a step taken (no gradients: nothing moves, the step hooks run)
    callback.on_step_end(trainer.args, trainer.state, trainer.control, optimizer=optimizer)
    assert autodrop.num_steps == steps + 1  # is observed


def test_resume_after_a_skipped_fp16_step_restores_the_detector(tmp_path):
    trainer, _ = run(AutoDropTrainer, training_args(tmp_path, max_steps=20))
    callback, state = trainer.callback_handler.callbacks[0], trainer.state

    class SkippedStep:
        step_was_skipped = True

    state.global_step += 1  # the Trainer counts the step the scaler skipped; AutoDrop does not observe it
    callback.on_step_end(trainer.args, state, trainer.control, optimizer=SkippedStep())
    assert callback.autodrop.num_steps == state.global_step - 1 and callback.autodrop.angles
    callback.on_save(trainer.args, state, trainer.control)
    history = tmp_path / HISTORY_FILE
    after_the_save = {
        "step": state.global_step,
        "angle": 1.0,
        "noise_floor": None,
        "statistic": None,
        "smoothed": None,
        "lr": 1e-3,
        "lr_scale": 1.0,
        "dropped": False,
    }
    with history.open("a") as file:  # the run went on after the save, then crashed
        file.write(json.dumps(after_the_save) + "\n")
    (tmp_path / f"checkpoint-{state.global_step}" / HISTORY_FILE).unlink()  # as if saved before any record
    fresh = AutoDropCallback()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "fresh detector" warning
        fresh.on_train_begin(
            trainer.args, state, trainer.control, model=trainer.model, lr_scheduler=trainer.lr_scheduler
        )
    assert fresh.autodrop.num_steps == callback.autodrop.num_steps
    assert fresh.autodrop.angles == callback.autodrop.angles and fresh.autodrop.drops == callback.autodrop.drops
    steps = [json.loads(line)["step"] for line in history.read_text().splitlines()]
    assert steps and max(steps) <= fresh.autodrop.num_steps  # the record written after the save is gone


def test_frozen_parameters_are_ignored(tmp_path):
    model = tiny_bert()
    model.bert.requires_grad_(False)  # PEFT-style: frozen base, trained head
    frozen = {n: p.detach().clone() for n, p in model.bert.named_parameters()}
    trainer = AutoDropTrainer(model=model, args=training_args(tmp_path), train_dataset=TokenParity())
    trainer.train()
    head = sum(p.numel() for p in model.classifier.parameters())
    assert autodrop_of(trainer).angular_velocity.num_parameters == head
    assert all(torch.equal(p, frozen[n]) for n, p in model.bert.named_parameters())


ANYTIME = dict(autodrop_preset="anytime", autodrop_window_size=None, autodrop_threshold=None, autodrop_buffer_size=3)


def test_stop_when_done_ends_training_evaluated_and_saved_as_at_the_end(tmp_path):
    args = training_args(
        tmp_path,
        **ANYTIME,
        autodrop_done_scale=0.7,
        autodrop_stop_when_done=True,
        max_steps=3_000,
        eval_strategy="steps",
        eval_steps=1_000,
        save_strategy="steps",
        save_steps=1_000,
    )
    dev = TokenParity(64, seed=1)
    trainer = AutoDropTrainer(model=tiny_bert(), args=args, train_dataset=TokenParity(), eval_dataset=dev)
    output = trainer.train()
    autodrop = autodrop_of(trainer)
    done = autodrop.done_step
    assert autodrop.window_grows and done is not None and 100 < done < 1_000
    assert trainer.state.global_step == done and output.global_step == done and "train_loss" in output.metrics
    assert [e["step"] for e in trainer.state.log_history if "eval_loss" in e] == [done]
    assert (tmp_path / f"checkpoint-{done}" / STATE_FILE).exists()
    saved = torch.load(tmp_path / f"checkpoint-{done}" / STATE_FILE, weights_only=True)
    assert saved["done_step"] == done and saved["angular_velocity"]["window_size"] == autodrop.window_size > 1
    assert [e["autodrop/done"] for e in trainer.state.log_history if "autodrop/done" in e][-1] == 1.0
    history = [json.loads(x) for x in (tmp_path / HISTORY_FILE).read_text().splitlines()]
    assert history[-1]["step"] == done and history[-1]["done"] and not any(h["done"] for h in history[:-1])


def test_a_run_resumed_after_done_stops_at_once(tmp_path):
    values = dict(**ANYTIME, autodrop_done_scale=0.7, autodrop_stop_when_done=True, max_steps=3_000)
    saving = training_args(tmp_path, **values, save_strategy="steps", save_steps=10_000)  # saved at done only
    first = AutoDropTrainer(model=tiny_bert(), args=saving, train_dataset=TokenParity())
    first.train()
    done = autodrop_of(first).done_step
    resumed = AutoDropTrainer(model=tiny_bert(), args=training_args(tmp_path, **values), train_dataset=TokenParity())
    resumed.train(resume_from_checkpoint=str(tmp_path / f"checkpoint-{done}"))
    assert autodrop_of(resumed).done_step == done and resumed.state.global_step == done + 1


def test_growing_windows_resume_exactly_in_the_trainer(tmp_path):
    def make_args(folder, **kw):
        return training_args(folder, **ANYTIME, max_steps=400, **kw)

    straight, straight_lrs = run(AutoDropTrainer, make_args(tmp_path / "straight"))
    run(AutoDropTrainer, make_args(tmp_path / "first", save_strategy="steps", save_steps=301))
    state = torch.load(tmp_path / "first/checkpoint-301" / STATE_FILE, weights_only=True)
    assert state["angular_velocity"]["window_size"] == 4 and state["angular_velocity"]["steps_in_window"] != 0
    resumed, resumed_lrs = run(
        AutoDropTrainer, make_args(tmp_path / "first"), resume=str(tmp_path / "first/checkpoint-301"), model_seed=7
    )
    assert autodrop_of(resumed).decisions == autodrop_of(straight).decisions and autodrop_of(straight).drops
    assert resumed_lrs == {s: lr for s, lr in straight_lrs.items() if s > 301}


@pytest.mark.parametrize("where", ["output_dir", "another_folder", "another_folder_with_a_trap"])
@pytest.mark.parametrize("usage", ["autodrop_trainer", "stock_trainer"])
def test_resume_mid_window_is_exact(tmp_path, usage, where):
    if usage == "autodrop_trainer":
        trainer_cls, make_args, extra = AutoDropTrainer, lambda d, **kw: training_args(d, **kw), ()
    else:
        trainer_cls, extra = Trainer, (AutoDropCallback(FAST_CONFIG),)

        def make_args(d, **kw):
            return training_args(d, cls=TrainingArguments, lr_scheduler_type="constant_with_warmup", **kw)

    def fresh_callbacks():
        return tuple(type(cb)(FAST_CONFIG) for cb in extra)

    straight, straight_lrs = run(trainer_cls, make_args(tmp_path / "straight"), callbacks=fresh_callbacks())
    run(trainer_cls, make_args(tmp_path / "runA", save_strategy="steps", save_steps=34), callbacks=fresh_callbacks())
    checkpoint = tmp_path / "runA/checkpoint-34"
    state = torch.load(checkpoint / STATE_FILE, weights_only=True)
    assert state["angular_velocity"]["steps_in_window"] == 1  # mid-window: (34 - 5) % 2
    assert state["drops"], "the checkpoint must come after at least one drop"
    output_dir = tmp_path / "runA"
    if where != "output_dir":  # HF scripts: --resume_from_checkpoint elsewhere/checkpoint-34 --output_dir runB
        checkpoint = Path(shutil.copytree(checkpoint, tmp_path / "elsewhere/checkpoint-34"))
        output_dir = tmp_path / "runB"
    if where == "another_folder_with_a_trap":  # runB has a checkpoint-34 of its own, from another model
        run(
            trainer_cls,
            make_args(output_dir, save_strategy="steps", save_steps=34),
            callbacks=fresh_callbacks(),
            model_seed=3,
        )
        trap = torch.load(output_dir / "checkpoint-34" / STATE_FILE, weights_only=True)
        assert trap["angles"] != state["angles"]
    resumed, resumed_lrs = run(
        trainer_cls, make_args(output_dir), callbacks=fresh_callbacks(), resume=str(checkpoint), model_seed=7
    )
    assert autodrop_of(resumed).drops == autodrop_of(straight).drops
    assert autodrop_of(resumed).angles == autodrop_of(straight).angles
    assert resumed_lrs == {s: lr for s, lr in straight_lrs.items() if s > 34}
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    history = [json.loads(x) for x in (output_dir / HISTORY_FILE).read_text().splitlines()]
    straight_history = [json.loads(x) for x in (tmp_path / "straight" / HISTORY_FILE).read_text().splitlines()]
    assert history == straight_history


def test_a_history_copy_that_is_not_utf8_does_not_stop_a_resume(tmp_path):
    run(AutoDropTrainer, training_args(tmp_path, save_strategy="steps", save_steps=34))
    copy = tmp_path / "checkpoint-34" / HISTORY_FILE
    copy.write_bytes(copy.read_bytes() + "caf\xe9\n".encode("latin-1"))
    with pytest.warns(UserWarning, match="could not cut .* at step 34 .*starting a fresh history there"):
        run(AutoDropTrainer, training_args(tmp_path), resume=str(tmp_path / "checkpoint-34"))
    steps = [json.loads(line)["step"] for line in (tmp_path / HISTORY_FILE).read_text().splitlines()]
    assert steps and steps[0] > 34 and steps[-1] == 59  # the resumed run's windows, in a fresh log


def test_a_checkpoint_of_the_previous_format_resumes_its_detector(tmp_path):
    args = training_args(tmp_path, save_strategy="steps", save_steps=34)
    straight, _ = run(AutoDropTrainer, args)
    path = tmp_path / "checkpoint-34" / STATE_FILE
    state = torch.load(path, weights_only=True)
    del state["trainer_global_step"]  # saved before the Trainer's step was recorded beside the detector's
    torch.save(state, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed, _ = run(AutoDropTrainer, args, resume=str(tmp_path / "checkpoint-34"))
    assert not [w for w in caught if "fresh detector" in str(w.message)]
    assert autodrop_of(resumed).angles == autodrop_of(straight).angles


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_damaged_state_warns_and_keeps_the_scale(tmp_path, damage):
    args = training_args(tmp_path, save_strategy="steps", save_steps=34)
    run(AutoDropTrainer, args)
    path = tmp_path / "checkpoint-34" / STATE_FILE
    scale = torch.load(path, weights_only=True)["scale"]
    assert scale < 1
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="fresh detector") as record:
        resumed, lrs = run(AutoDropTrainer, args, resume=str(tmp_path / "checkpoint-34"))
    assert f"{scale:.6g}" in str(record[0].message)
    assert lrs[35] == pytest.approx(1e-3 * scale)
    autodrop = autodrop_of(resumed)
    assert autodrop.num_steps == 60 and all(s > 34 for s, _ in autodrop.angles)


def test_logs_reach_history_tensorboard_and_jsonl(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = training_args(tmp_path, report_to=["tensorboard"])
    trainer, _ = run(AutoDropTrainer, args)
    autodrop = autodrop_of(trainer)
    keys = [
        "autodrop/angular_velocity",
        "autodrop/noise_floor",
        "autodrop/smoothed",
        "autodrop/lr_scale",
        "autodrop/num_drops",
    ]
    *steps, summary = trainer.state.log_history  # the summary of train() falls on the last step's, logged
    assert summary["step"] == steps[-1]["step"] == 60 and not any(k.startswith("autodrop/") for k in summary)
    for entry in steps:
        assert {"autodrop/lr_scale", "autodrop/num_drops", "autodrop/noise_floor"} <= set(entry), entry
        assert all(math.isfinite(v) for k, v in entry.items() if k.startswith("autodrop/"))
    assert all(k in steps[-1] for k in keys)
    last = [e for e in trainer.state.log_history if "loss" in e][-1]
    assert last["autodrop/num_drops"] == len(autodrop.drops)
    assert last["autodrop/lr_scale"] == autodrop.scale
    assert "autodrop/smoothed" not in trainer.state.log_history[0]  # no value yet: no key (strict JSON)

    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    tags = events.Tags()["scalars"]
    assert {f"train/{k}" for k in keys} <= set(tags)
    drops_logged = [e.value for e in events.Scalars("train/autodrop/num_drops")]
    assert drops_logged == sorted(drops_logged) and drops_logged[-1] == len(autodrop.drops)

    records = [json.loads(x) for x in (tmp_path / HISTORY_FILE).read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(7, 61, 2))  # every window after warm-up
    assert [r["step"] for r in records if r["dropped"]] == autodrop.drops
    assert [(r["step"], r["angle"]) for r in records if r["angle"] is not None] == autodrop.angles
    assert records[-1]["lr"] == trainer.optimizer.param_groups[0]["lr"]


def test_plot_command_draws_a_real_run(tmp_path, capsys):
    import matplotlib.pyplot as plt

    args = training_args(tmp_path, eval_strategy="steps", eval_steps=20)
    trainer = AutoDropTrainer(
        model=tiny_bert(), args=args, train_dataset=TokenParity(), eval_dataset=TokenParity(64, seed=1)
    )
    trainer.train()
    trainer.save_state()
    from autodrop_hf.tools.cli import main

    main(["plot", str(tmp_path), "--output", str(tmp_path / "run.png")])
    image = plt.imread(tmp_path / "run.png")
    assert image.shape[0] > 400 and image.shape[1] > 600
    assert np.asarray(image)[..., :3].std() > 0.05  # not blank
    with pytest.raises(SystemExit) as exit_info:
        main(["plot", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    history = tmp_path / HISTORY_FILE
    history.write_text("not json\n" + history.read_text())
    capsys.readouterr()
    main(["plot", str(tmp_path)])  # what can be drawn is drawn; the rest is named
    assert "1 line(s) that are not window records left out (line 1)" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["autodrop_hf", "autodrop_hf.tools.plot", "autodrop_hf.core.autodrop_reference"])
def test_the_core_and_the_tools_import_neither_transformers_nor_accelerate(module):
    import subprocess

    code = f"import {module}, sys; print('transformers' in sys.modules, 'accelerate' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.strip() == "False False"


def test_sharded_state_is_saved_and_restored_per_process(tmp_path, monkeypatch):
    from autodrop_hf.core.angular_velocity import WindowedAngularVelocity

    monkeypatch.setattr(WindowedAngularVelocity, "is_sharded", property(lambda self: True))
    args = training_args(tmp_path, save_strategy="steps", save_steps=34)
    straight, _ = run(AutoDropTrainer, args)
    assert [p.name for p in (tmp_path / "checkpoint-34").glob("autodrop_state*")] == ["autodrop_state_rank0.pt"]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*fresh detector")
        resumed, _ = run(AutoDropTrainer, args, resume=str(tmp_path / "checkpoint-34"))
    assert autodrop_of(resumed).angles == autodrop_of(straight).angles


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("window_size", "abc", r"window_size must be an integer from 1 to 2\*\*31, 'auto' or 'growing', got 'abc'"),
        ("min_lr", "[1e-6,", r"min_lr must be a number, or a list of them such as \[1e-6, 1e-5\], got '\[1e-6,'"),
        ("min_lr", "[1e-6, NaN]", "min_lr must satisfy min_lr >= 0, got nan"),
        ("buffer_size", "1", r"buffer_size must be an integer from 2 to 2\*\*31, got 1"),
        ("drop_factor", "cosine", "0 < drop_factor < 1, or 'auto', 'linear' or 'power'"),
    ],
)
def test_a_bad_flag_value_is_an_argparse_error_naming_the_flag(capsys, flag, value, message):
    parser = HfArgumentParser(AutoDropTrainingArguments)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args_into_dataclasses(["--output_dir", "out", f"--autodrop_{flag}", value])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert f"error: argument --autodrop_{flag}/--autodrop-" in error
    assert re.search(message, error), error


def test_with_the_average_evaluations_read_it_training_is_unchanged_and_the_model_keeps_it(tmp_path):
    def train(config, folder, **kw):
        args = training_args(
            folder,
            cls=TrainingArguments,
            lr_scheduler_type="constant_with_warmup",
            eval_strategy="steps",
            eval_steps=30,
            max_steps=90,
            **kw,
        )
        trainer = Trainer(
            model=tiny_bert(),
            args=args,
            train_dataset=TokenParity(),
            eval_dataset={"dev": TokenParity(64, seed=1), "other": TokenParity(32, seed=2)},  # two evaluations a time
            callbacks=[AutoDropCallback(config)],
        )
        trainer.train()
        return trainer

    config = AutoDropConfig(window_size=4, buffer_size=3, drop_factor=0.9)
    plain = train(config, tmp_path / "plain")
    averaged = train(config.replace(average=True), tmp_path / "averaged")

    def logged(trainer, key):
        return [(e["step"], e[key]) for e in trainer.state.log_history if key in e]

    assert logged(plain, "loss") == logged(averaged, "loss") and autodrop_of(plain).drops
    for key in ("eval_dev_loss", "eval_other_loss"):
        assert [s for s, _ in logged(averaged, key)] == [30, 60, 90]
        assert all(a != p for (_, a), (_, p) in zip(logged(averaged, key), logged(plain, key), strict=True))
    kept = autodrop_of(averaged).weight_average
    average = {id(p): a for p, a in zip(kept.params, kept.average, strict=True)}
    assert all(torch.equal(p, average[id(p)]) for p in averaged.model.parameters() if p.requires_grad)
    assert not torch.equal(averaged.model.classifier.weight, plain.model.classifier.weight)
    after = averaged.evaluate()  # the same average as at step 90, for both datasets
    assert [after[k] for k in ("eval_dev_loss", "eval_other_loss")] == [
        logged(averaged, k)[-1][1] for k in ("eval_dev_loss", "eval_other_loss")
    ]


class AverageProbe(TrainerCallback):
    """Records, at every evaluation, whether the model holds AutoDrop's weight average."""

    def __init__(self, autodrop_callback):
        self.autodrop_callback, self.held = autodrop_callback, []

    def on_evaluate(self, args, state, control, **kwargs):
        self.held.append((state.global_step, self.autodrop_callback.autodrop.weight_average.is_swapped_in()))


class EvaluateAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        control.should_evaluate |= state.global_step == self.step


def test_with_the_average_every_evaluation_reads_it_on_start_and_for_callbacks_added_later(tmp_path):
    config = AutoDropConfig.anytime_average(window_size=2, buffer_size=2)

    def trainer_with(autodrop_callback, probe, **kw):
        args = training_args(
            tmp_path, cls=TrainingArguments, lr_scheduler_type="constant", max_steps=20, eval_strategy="steps", **kw
        )
        return Trainer(
            model=tiny_bert(),
            args=args,
            train_dataset=TokenParity(),
            eval_dataset=TokenParity(32, seed=1),
            callbacks=[autodrop_callback, probe],
        )

    callback = AutoDropCallback(config)
    probe = AverageProbe(callback)
    trainer_with(callback, probe, eval_steps=10, save_strategy="steps", save_steps=10).train()
    callback = AutoDropCallback(config)
    probe = AverageProbe(callback)
    resumed = trainer_with(callback, probe, eval_steps=10, eval_on_start=True)
    resumed.add_callback(EvaluateAt(13))  # after the Trainer was built: after AutoDrop's callbacks, until train()
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-10"))
    assert probe.held == [(10, True), (13, True), (20, True)]


def test_an_evaluation_that_raised_leaves_neither_the_average_nor_its_stale_weights_behind(tmp_path):
    config = AutoDropConfig.anytime_average(window_size=2, buffer_size=2)
    failing = {"now": True}

    def metrics(prediction):
        if failing["now"]:
            raise KeyboardInterrupt("stopped during the evaluation")
        return {}

    def trainer_with(folder, compute_metrics=None):
        args = training_args(
            folder,
            cls=TrainingArguments,
            lr_scheduler_type="constant",
            max_steps=20,
            eval_strategy="steps",
            eval_steps=10,
            save_strategy="steps",
            save_steps=5,
        )
        return Trainer(
            model=tiny_bert(),
            args=args,
            train_dataset=TokenParity(),
            eval_dataset=TokenParity(32, seed=1),
            callbacks=[AutoDropCallback(config)],
            compute_metrics=compute_metrics,
        )

    straight = trainer_with(tmp_path / "straight")
    straight.train()
    trainer = trainer_with(tmp_path / "stopped", compute_metrics=metrics)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()  # raised in the step-10 evaluation, with the average in the model
    failing["now"] = False
    trainer.train(resume_from_checkpoint=str(tmp_path / "stopped/checkpoint-5"))
    pairs = zip(trainer.model.parameters(), straight.model.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)  # the checkpoint's weights were not overwritten


def test_the_average_resumes_exactly_in_the_trainer_and_best_model_loading_is_refused(tmp_path):
    def make_args(folder, **kw):
        return training_args(folder, **ANYTIME, autodrop_average=True, max_steps=300, **kw)

    straight, straight_lrs = run(AutoDropTrainer, make_args(tmp_path / "straight"))
    run(AutoDropTrainer, make_args(tmp_path / "first", save_strategy="steps", save_steps=203))
    resumed, resumed_lrs = run(
        AutoDropTrainer, make_args(tmp_path / "first"), resume=str(tmp_path / "first/checkpoint-203"), model_seed=7
    )
    assert resumed_lrs == {s: lr for s, lr in straight_lrs.items() if s > 203}
    pairs = zip(resumed.model.parameters(), straight.model.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert autodrop_of(straight).weight_average.step > 203
    best = training_args(
        tmp_path / "best",
        **ANYTIME,
        autodrop_average=True,
        eval_strategy="steps",
        save_strategy="steps",
        load_best_model_at_end=True,
    )
    with pytest.raises(ValueError, match="load_best_model_at_end"):
        AutoDropTrainer(model=tiny_bert(), args=best, train_dataset=TokenParity(), eval_dataset=TokenParity(8))
