"""The plain-loop routes: the one-object AutoDropScheduler, the call-order guard, Accelerate checkpoints,
and a plain loop's history drawn by `autodrop-hf plot`."""

import copy
import json
import warnings

import pytest
import torch

from autodrop_hf import AutoDrop, AutoDropConfig, AutoDropLR, AutoDropScheduler

CONFIG = AutoDropConfig(window_size=2, buffer_size=4)


def _problem(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    return model, torch.optim.AdamW(model.parameters(), lr=3e-3)


def _train_step(model, optimizer, step):
    generator = torch.Generator().manual_seed(step)
    inputs = torch.randn(32, 8, generator=generator)
    loss = torch.nn.functional.mse_loss(model(inputs), inputs.sin().sum(1, keepdim=True))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def _train(model, optimizer, scheduler, steps: range) -> None:
    """Training steps ``steps`` (their numbers seed the batches), the one-object scheduler after each."""
    for step in steps:
        _train_step(model, optimizer, step)
        scheduler.step()


def test_the_autodrop_scheduler_form_takes_the_two_object_forms_decisions_and_saves_everything(tmp_path):
    model, optimizer = _problem()
    scheduler = AutoDropLR(optimizer, num_warmup_steps=10)
    autodrop = AutoDrop(model, CONFIG, scheduler, num_training_steps=300)
    two = []
    for step in range(300):
        _train_step(model, optimizer, step)
        scheduler.step()
        autodrop.step()
        two.append(optimizer.param_groups[0]["lr"])

    model, optimizer = _problem()
    history = tmp_path / "history.jsonl"
    autodrop_scheduler = AutoDropScheduler(
        optimizer, model, CONFIG, num_training_steps=300, num_warmup_steps=10, history_file=history
    )
    one = []
    for step in range(300):
        _train_step(model, optimizer, step)
        autodrop_scheduler.step()
        one.append(optimizer.param_groups[0]["lr"])
        if step == 137:
            torch.save(
                {
                    "scheduler": autodrop_scheduler.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "model": model.state_dict(),
                },
                tmp_path / "checkpoint.pt",
            )
    assert one == two and autodrop_scheduler.autodrop.drops == autodrop.drops and len(autodrop.drops) >= 5

    straight_history = history.read_text()
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    model, optimizer = _problem(seed=9)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    resumed = AutoDropScheduler(
        optimizer, model, CONFIG, num_training_steps=300, num_warmup_steps=10, history_file=history
    )
    resumed.load_state_dict(saved["scheduler"])  # the records after step 138 leave the history file
    after = []
    for step in range(138, 300):
        _train_step(model, optimizer, step)
        resumed.step()
        after.append(optimizer.param_groups[0]["lr"])
    assert after == two[138:] and resumed.autodrop.drops == autodrop.drops
    assert history.read_text() == straight_history


def test_a_refused_state_leaves_the_autodrop_scheduler_unchanged():
    model, optimizer = _problem()
    scheduler = AutoDropScheduler(optimizer, model, CONFIG, num_training_steps=100, num_warmup_steps=10)
    _train(model, optimizer, scheduler, range(5))
    before = {key: value for key, value in scheduler.state_dict().items() if key != "autodrop"}
    state = scheduler.state_dict()
    state["last_epoch"], state["autodrop"] = 50, {**state["autodrop"], "scale": 2.0}
    with pytest.raises(ValueError, match="'scale' is invalid"):
        scheduler.load_state_dict(state)
    assert {key: value for key, value in scheduler.state_dict().items() if key != "autodrop"} == before
    assert scheduler.last_epoch == 5 and scheduler.autodrop.num_steps == 5


def test_a_state_kept_in_memory_is_a_snapshot_only_when_copied():
    def snapshot_and_return(copy_it):
        model, optimizer = _problem()
        scheduler = AutoDropScheduler(optimizer, model, CONFIG, num_training_steps=100)
        _train(model, optimizer, scheduler, range(7))
        state = scheduler.state_dict()
        kept = (
            copy.deepcopy(state) if copy_it else state,
            copy.deepcopy(optimizer.state_dict()),
            copy.deepcopy(model.state_dict()),
        )
        _train(model, optimizer, scheduler, range(7, 12))  # a detour, then back to step 7
        scheduler.load_state_dict(kept[0])
        optimizer.load_state_dict(kept[1])
        model.load_state_dict(kept[2])
        _train(model, optimizer, scheduler, range(7, 40))
        return scheduler.autodrop.angles

    model, optimizer = _problem()
    straight = AutoDropScheduler(optimizer, model, CONFIG, num_training_steps=100)
    _train(model, optimizer, straight, range(40))
    assert snapshot_and_return(copy_it=True) == straight.autodrop.angles
    with pytest.raises(ValueError, match="live window buffers, which have changed since"):
        snapshot_and_return(copy_it=False)  # the live buffers moved on: refused, not silently mixed


def test_a_damaged_history_file_does_not_stop_a_resume(tmp_path):
    model, optimizer = _problem()
    history = tmp_path / "history.jsonl"
    scheduler = AutoDropScheduler(optimizer, model, CONFIG, num_training_steps=100, history_file=history)
    _train(model, optimizer, scheduler, range(30))
    kept = copy.deepcopy(scheduler.state_dict())
    _train(model, optimizer, scheduler, range(30, 40))
    history.write_text("not json\n" + history.read_text())
    with pytest.warns(
        UserWarning,
        match=r"could not cut .*history\.jsonl at step 30 \(.*line 1: not a JSON record.*"
        r"starting a fresh history there",
    ):
        scheduler.load_state_dict(kept)
    assert scheduler.autodrop.num_steps == 30 and scheduler.last_epoch == 30 and history.read_text() == ""
    _train(model, optimizer, scheduler, range(30, 40))
    assert next(json.loads(line)["step"] for line in history.read_text().splitlines()) == 32  # windows of 2


def test_repeated_scheduler_steps_observe_once_per_optimizer_step():
    """As Accelerate steps a prepared scheduler once per process: the warm-up moves, observation does not."""
    model, optimizer = _problem()
    scheduler = AutoDropScheduler(optimizer, model, CONFIG, num_training_steps=200, num_warmup_steps=20)
    for step in range(100):
        _train_step(model, optimizer, step)
        scheduler.step()
        scheduler.step()
    assert scheduler.last_epoch == 200 and scheduler.autodrop.num_steps == 100


def test_the_call_order_is_guarded():
    model, optimizer = _problem()
    scheduler = AutoDropLR(optimizer)
    autodrop = AutoDrop(model, CONFIG, scheduler, num_training_steps=100)
    _train_step(model, optimizer, 0)
    autodrop.step()
    with pytest.warns(RuntimeWarning, match=r"with no optimizer step since its last call .* per micro-batch") as record:
        for _ in range(4):  # per micro-batch, say
            autodrop.step()
    assert len(record) == 1 and record[0].filename == __file__ and autodrop.num_steps == 1
    _train_step(model, optimizer, 1)
    _train_step(model, optimizer, 2)
    autodrop.step()
    assert autodrop.num_steps == 2  # counted as one; said once already


def test_accelerate_save_state_round_trip(tmp_path):
    from accelerate import Accelerator

    def run(resume_from=None, save_at=None):
        accelerator = Accelerator(cpu=True)
        model, optimizer = _problem()
        scheduler = AutoDropLR(optimizer, num_warmup_steps=6)
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
        autodrop = AutoDrop(model, CONFIG, scheduler, num_training_steps=160)
        accelerator.register_for_checkpointing(autodrop)
        start = 0
        if resume_from is not None:
            accelerator.load_state(resume_from)
            start = autodrop.num_steps
        lrs = {}
        for step in range(start, 160):
            lrs[step] = optimizer.param_groups[0]["lr"]
            _train_step(model, optimizer, step)
            scheduler.step()
            autodrop.step()
            if step + 1 == save_at:
                accelerator.save_state(tmp_path / "state")
        return autodrop, lrs

    straight, lrs = run(save_at=77)
    assert len(straight.drops) >= 3 and straight.angular_velocity.steps_in_window == 0
    resumed, resumed_lrs = run(resume_from=tmp_path / "state")
    assert resumed.drops == straight.drops and resumed.angles == straight.angles
    assert resumed_lrs == {s: lr for s, lr in lrs.items() if s >= 77}


def test_a_plain_loops_history_file_is_plotted(tmp_path):
    from autodrop_hf.tools.cli import main

    model, optimizer = _problem()
    history = tmp_path / "history.jsonl"
    scheduler = AutoDropScheduler(optimizer, model, CONFIG, num_training_steps=200, history_file=history)
    _train(model, optimizer, scheduler, range(200))
    records = [json.loads(line) for line in history.read_text().splitlines()]
    assert [r["step"] for r in records if r["dropped"]] == scheduler.autodrop.drops
    main(["plot", str(history)])
    assert (tmp_path / "autodrop.png").stat().st_size > 10_000
    logged = scheduler.autodrop.log_dict()
    assert logged["autodrop/num_drops"] == len(scheduler.autodrop.drops) and "autodrop/noise_floor" in logged


def test_a_scheduler_stepped_twice_per_optimizer_step_plans_in_optimizer_steps_and_resumes_so(tmp_path):
    """As Accelerate steps a prepared scheduler with 2 processes: the horizon and warm-up count scheduler steps."""
    config = AutoDropConfig(buffer_size=4)  # window "auto": 1 for 300 optimizer steps, 1 for 600 too

    def run(steps, scheduler, model, optimizer):
        for step in steps:
            _train_step(model, optimizer, step)
            scheduler.step()
            scheduler.step()

    model, optimizer = _problem()
    scheduler = AutoDropScheduler(optimizer, model, config, num_training_steps=600, num_warmup_steps=20)
    assert scheduler.autodrop.num_training_steps == 600  # not known yet: two intervals must agree
    run(range(2), scheduler, model, optimizer)
    assert scheduler.steps_per_optimizer_step is None
    run(range(2, 3), scheduler, model, optimizer)
    assert scheduler.steps_per_optimizer_step == 2 and scheduler.autodrop.num_training_steps == 300
    run(range(3, 150), scheduler, model, optimizer)
    torch.save(
        {"scheduler": scheduler.state_dict(), "optimizer": optimizer.state_dict(), "model": model.state_dict()},
        tmp_path / "checkpoint.pt",
    )
    run(range(150, 300), scheduler, model, optimizer)
    assert scheduler.autodrop.scale == 0.0 and scheduler.autodrop.drops  # the linear stairs end at the last step

    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    model, optimizer = _problem(seed=5)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    resumed = AutoDropScheduler(optimizer, model, config, num_training_steps=600, num_warmup_steps=20)
    resumed.load_state_dict(saved["scheduler"])
    assert resumed.autodrop.num_training_steps == 300
    run(range(150, 300), resumed, model, optimizer)
    assert resumed.autodrop.drops == scheduler.autodrop.drops and resumed.autodrop.scale == 0.0


def test_a_run_past_its_planned_horizon_is_said_once():
    model, optimizer = _problem()
    scheduler = AutoDropScheduler(optimizer, model, CONFIG, num_training_steps=40)
    with pytest.warns(
        UserWarning,
        match=r"planned num_training_steps=40 optimizer steps, and the run goes on "
        r"\(step 41\)",
    ) as caught:
        _train(model, optimizer, scheduler, range(60))
    assert len([w for w in caught if "planned num_training_steps" in str(w.message)]) == 1


def test_autodrop_of_finds_the_detector_of_a_wrapped_scheduler():
    model, optimizer = _problem()
    scheduler = AutoDropScheduler(optimizer, model, CONFIG)

    class Wrapper:  # what accelerator.prepare returns: the scheduler as .scheduler
        def __init__(self, scheduler):
            self.scheduler = scheduler

    assert AutoDrop.of(scheduler) is AutoDrop.of(Wrapper(scheduler)) is scheduler.autodrop
    with pytest.raises(TypeError, match=r"LambdaLR runs no AutoDrop: AutoDrop\.of takes an AutoDropScheduler"):
        AutoDrop.of(torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0))


def test_a_launched_process_without_a_process_group_is_told(monkeypatch):
    model, optimizer = _problem()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.warns(UserWarning, match=r"launched as one of WORLD_SIZE=2, but torch\.distributed is not initialised"):
        AutoDropScheduler(optimizer, model, CONFIG)
    monkeypatch.setenv("WORLD_SIZE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AutoDropScheduler(optimizer, model, CONFIG)


def test_a_scheduler_state_that_does_not_fit_is_refused_naming_the_field_and_changes_nothing():
    model, optimizer = _problem()
    scheduler = AutoDropScheduler(optimizer, model, CONFIG, num_training_steps=100, num_warmup_steps=5)
    _train(model, optimizer, scheduler, range(30))
    good = copy.deepcopy(scheduler.state_dict())
    before = (
        scheduler.last_epoch,
        list(scheduler.base_lrs),
        scheduler.autodrop.num_steps,
        optimizer.param_groups[0]["lr"],
    )
    cases = {
        "no detector": ({k: v for k, v in good.items() if k != "autodrop"}, "has no 'autodrop': it is not an AutoDrop"),
        "the detector's own state": (good["autodrop"], "has no 'autodrop'"),
        "no base_lrs": ({**good, "base_lrs": []}, r"field 'base_lrs' does not fit this scheduler .* 1 parameter"),
        "NaN scale": ({**good, "scales": [float("nan")]}, "field 'scales'"),
        "a broken detector": ({**good, "autodrop": {**good["autodrop"], "test": {}}}, "'test' is invalid"),
    }
    for name, (state, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            scheduler.load_state_dict(state)
        after = (
            scheduler.last_epoch,
            list(scheduler.base_lrs),
            scheduler.autodrop.num_steps,
            optimizer.param_groups[0]["lr"],
        )
        assert after == before, name


def test_set_lr_scale_takes_numbers_and_refuses_nan_and_negative_scales():
    import numpy as np

    _model, optimizer = _problem()
    scheduler = AutoDropLR(optimizer)
    scheduler.set_lr_scale(np.float32(0.5))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.5e-3)
    for bad in (float("nan"), -1.0, [0.5, 0.5]):
        with pytest.raises(ValueError, match="set_lr_scale needs"):
            scheduler.set_lr_scale(bad)
    assert scheduler.scales == [0.5]


def test_a_step_the_scaler_skipped_early_does_not_halve_the_horizon():
    model, optimizer = _problem()
    scheduler = AutoDropScheduler(optimizer, model, CONFIG, num_training_steps=300)
    _train(model, optimizer, scheduler, range(1))
    scheduler.step()  # an fp16 step GradScaler skipped: no optimizer step, the scheduler stepped anyway
    _train(model, optimizer, scheduler, range(1, 10))
    assert scheduler.steps_per_optimizer_step == 1 and scheduler.autodrop.num_training_steps == 300
