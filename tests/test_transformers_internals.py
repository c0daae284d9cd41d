"""Each private behaviour of Transformers the adapters rely on (autodrop_hf/hf/transformers_internals.py and
the lr_scheduler_type swap of the training arguments), pinned so that a change in Transformers fails here."""

import pytest
from tiny import TokenParity, tiny_bert
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import HPSearchBackend, SchedulerType

from autodrop_hf import AutoDropCallback, AutoDropTrainingArguments
from autodrop_hf.core.history import HISTORY_FILE
from autodrop_hf.hf.callback import STATE_FILE
from autodrop_hf.hf.transformers_internals import (
    current_log_entry,
    evaluations_per_evaluation,
    run_output_dir,
    running_resume_checkpoint,
    running_trainer,
)


class Spy(TrainerCallback):
    def __init__(self):
        self.seen = {}

    def on_init_end(self, args, state, control, **kwargs):
        self.seen["trainer at init"] = running_trainer()

    def on_train_begin(self, args, state, control, **kwargs):
        self.seen["checkpoint"] = running_resume_checkpoint()
        self.seen["trainer at train"] = running_trainer()

    def on_log(self, args, state, control, logs=None, **kwargs):
        entry = current_log_entry(state, logs)
        self.seen.setdefault("entries", []).append((entry, dict(logs), entry is state.log_history[-1]))


def _args(tmp_path, cls=TrainingArguments, **overrides):
    values = dict(
        output_dir=str(tmp_path),
        max_steps=6,
        per_device_train_batch_size=4,
        logging_steps=2,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="steps",
        save_steps=3,
    )
    return cls(**{**values, **overrides})


def test_callbacks_find_the_trainer_the_resumed_checkpoint_and_the_log_entry(tmp_path):
    spy = Spy()
    trainer = Trainer(model=tiny_bert(), args=_args(tmp_path / "a"), train_dataset=TokenParity(32), callbacks=[spy])
    assert spy.seen["trainer at init"] is trainer
    trainer.train()
    assert spy.seen["checkpoint"] is None and spy.seen["trainer at train"] is trainer
    entries = spy.seen["entries"]
    assert entries and all(is_last and entry is not None for entry, _, is_last in entries)
    assert all({**logs, "step": entry["step"]} == entry for entry, logs, _ in entries)

    # resume from a folder outside output_dir: the path reaches the callback as given
    spy = Spy()
    trainer = Trainer(model=tiny_bert(), args=_args(tmp_path / "b"), train_dataset=TokenParity(32), callbacks=[spy])
    trainer.train(resume_from_checkpoint=str(tmp_path / "a/checkpoint-3"))
    assert spy.seen["checkpoint"] == str(tmp_path / "a/checkpoint-3")
    # True: the Trainer resolves the last checkpoint of output_dir before the loop
    spy = Spy()
    trainer = Trainer(model=tiny_bert(), args=_args(tmp_path / "a"), train_dataset=TokenParity(32), callbacks=[spy])
    trainer.train(resume_from_checkpoint=True)
    assert spy.seen["checkpoint"] == str(tmp_path / "a/checkpoint-6")


def test_outside_a_trainer_nothing_is_found():
    assert running_trainer() is None and running_resume_checkpoint() is None


def test_log_history_entry_is_appended_before_on_log_and_logs_is_the_returned_metrics(tmp_path):
    class AddKey(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logs["added"] = 1.0

    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, save_strategy="no"),
        train_dataset=TokenParity(32),
        eval_dataset=TokenParity(16, seed=1),
        callbacks=[AddKey()],
    )
    metrics = trainer.evaluate()
    assert metrics["added"] == 1.0  # the dict on_log gets is the one evaluate() returns
    assert "added" not in trainer.state.log_history[-1]  # the history holds a copy made before on_log


def test_the_parent_post_init_needs_a_scheduler_type_and_the_trainer_rebuilds_its_own_scheduler(tmp_path):
    with pytest.raises(ValueError, match="autodrop"):
        TrainingArguments(str(tmp_path), lr_scheduler_type="autodrop")  # why the mixin swaps the name around it
    assert TrainingArguments(str(tmp_path), lr_scheduler_type="linear").lr_scheduler_type is SchedulerType.LINEAR
    args = AutoDropTrainingArguments(str(tmp_path), lr_scheduler_type="autodrop")
    assert args.lr_scheduler_type == "autodrop" and args.lr_scheduler_type.value == "autodrop"

    trainer = Trainer(model=tiny_bert(), args=_args(tmp_path, save_strategy="no"), train_dataset=TokenParity(32))
    trainer.train()
    assert trainer._created_lr_scheduler is True  # set for the schedules it builds: rebuilt at the next train()
    first = trainer.lr_scheduler
    trainer.train()
    assert trainer.lr_scheduler is not first


def test_an_autodrop_trainer_trained_twice_starts_afresh(tmp_path):
    """mark_scheduler_created_by_trainer on the real Trainer: a second train() rebuilds AutoDrop's schedule and
    detector, as the Trainer does for its own schedules (it would otherwise continue a dropped schedule)."""
    from autodrop_hf import AutoDropConfig, AutoDropTrainer

    args = _args(tmp_path, cls=AutoDropTrainingArguments, save_strategy="no", lr_scheduler_type="autodrop")
    callback = AutoDropCallback(AutoDropConfig.paper(window_size=1, buffer_size=2, threshold=90.0))  # drops
    trainer = AutoDropTrainer(model=tiny_bert(), args=args, train_dataset=TokenParity(32), callbacks=[callback])
    trainer.train()
    first_scheduler, first_detector = trainer.lr_scheduler, callback.autodrop
    assert first_detector.drops and first_detector.num_steps == 6
    trainer.train()
    assert trainer.lr_scheduler is not first_scheduler and callback.autodrop is not first_detector
    assert callback.autodrop.num_steps == 6 and first_detector.num_steps == 6


def test_a_hyperparameter_search_trial_saves_in_its_own_folder(tmp_path, monkeypatch):
    import transformers.integrations

    class Trial:  # what the Trainer reads of an Optuna trial (Optuna itself is not installed)
        number, params = 7, {}

    monkeypatch.setattr(transformers.integrations, "hp_params", lambda trial: trial.params)

    args = _args(tmp_path, lr_scheduler_type="constant_with_warmup")
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=TokenParity(64), callbacks=[AutoDropCallback()])
    assert run_output_dir(trainer) == str(tmp_path)
    trainer.hp_search_backend, trainer.hp_space = HPSearchBackend.OPTUNA, lambda trial: {}
    trainer.train(trial=Trial())
    assert run_output_dir(trainer) == str(tmp_path / "run-7")
    checkpoint = tmp_path / "run-7" / "checkpoint-6"
    assert (checkpoint / "model.safetensors").exists() and (checkpoint / STATE_FILE).exists()
    assert (tmp_path / "run-7" / HISTORY_FILE).exists()
    assert not (tmp_path / "checkpoint-6").exists() and not (tmp_path / HISTORY_FILE).exists()


class EventOrder(TrainerCallback):
    """The events from a step end that asks for an evaluation to the next step's beginning."""

    def __init__(self):
        self.events, self.recording = [], False

    def on_train_begin(self, args, state, control, **kwargs):
        self.recording = args.eval_on_start
        if self.recording:
            self.events.append("train_begin")

    def on_step_end(self, args, state, control, **kwargs):
        self.recording = control.should_evaluate
        if self.recording:
            self.events.append("step_end")

    def on_evaluate(self, args, state, control, **kwargs):
        if self.recording:
            self.events.append("evaluate")

    def on_save(self, args, state, control, **kwargs):
        if self.recording:
            self.events.append("save")

    def on_step_begin(self, args, state, control, **kwargs):
        self.recording = False


@pytest.mark.parametrize(("datasets", "eval_on_start"), [(1, False), (3, True)])
def test_a_due_evaluation_runs_after_the_step_end_once_per_dataset_and_before_the_save(
    tmp_path, datasets, eval_on_start
):
    order = EventOrder()
    values = dict(output_dir=str(tmp_path), max_steps=4, eval_strategy="steps", eval_steps=2, save_strategy="steps")
    values.update(eval_on_start=eval_on_start)
    args = TrainingArguments(**values, save_steps=2, report_to=[], use_cpu=True, disable_tqdm=True)
    evaluation = TokenParity(8, seed=1)
    eval_dataset = evaluation if datasets == 1 else {str(i): evaluation for i in range(datasets)}
    trainer = Trainer(
        model=tiny_bert(), args=args, train_dataset=TokenParity(16), eval_dataset=eval_dataset, callbacks=[order]
    )
    trainer.train()
    assert evaluations_per_evaluation(trainer) == datasets
    on_start = ["train_begin"] + ["evaluate"] * datasets if eval_on_start else []  # right after on_train_begin
    assert order.events == on_start + (["step_end"] + ["evaluate"] * datasets + ["save"]) * 2
