"""The Hugging Face routes, fully equipped: model cards and argument round trips, clean returned metrics,
reporters by default, hyper-parameters from lr_scheduler_kwargs, and clear refusals."""

import json
import pickle
import warnings

import pytest
import torch
from tiny import TokenParity, quiet_training_values, tiny_bert
from transformers import MarianConfig, MarianMTModel, Trainer, TrainingArguments
from transformers.trainer_utils import default_compute_objective

from autodrop_hf import (
    AutoDropCallback,
    AutoDropConfig,
    AutoDropSeq2SeqTrainer,
    AutoDropSeq2SeqTrainingArguments,
    AutoDropTrainer,
    AutoDropTrainingArguments,
)
from autodrop_hf.hf.scheduler_kwargs import KEYWORD_SCHEDULES, schedule_arguments, split_scheduler_kwargs


def _values(tmp_path, **overrides):
    return quiet_training_values(tmp_path, **{"max_steps": 30, "warmup_steps": 3, "logging_steps": 5, **overrides})


def _accuracy(prediction):
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def test_model_card_and_argument_round_trips_work_with_autodrop(tmp_path):
    args = AutoDropTrainingArguments(**_values(tmp_path, lr_scheduler_type="autodrop", autodrop_preset="paper"))
    trainer = AutoDropTrainer(model=tiny_bert(), args=args, train_dataset=TokenParity(64))
    trainer.train()
    trainer.create_model_card(model_name="tiny", finetuned_from="tiny-bert")  # HF's scripts end with this
    card = (tmp_path / "README.md").read_text()
    assert "lr_scheduler_type: autodrop" in card
    assert json.loads(args.to_json_string())["lr_scheduler_type"] == "autodrop"
    assert args.to_dict()["autodrop_preset"] == "paper" and args.to_sanitized_dict()["lr_scheduler_type"] == "autodrop"
    trainer.save_model()
    reloaded = torch.load(tmp_path / "training_args.bin", weights_only=False)
    assert reloaded.lr_scheduler_type == "autodrop" and reloaded.autodrop_config() == AutoDropConfig.paper()
    assert pickle.loads(pickle.dumps(args)).lr_scheduler_type.value == "autodrop"


class Pairs(torch.utils.data.Dataset):
    """Sequence-to-sequence pairs for a tiny Marian model: the target is the source reversed."""

    def __init__(self, size: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.sources = torch.randint(3, 30, (size, 6), generator=generator)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.sources[index], "labels": self.sources[index].flip(0)}


def _tiny_marian():
    torch.manual_seed(0)
    sizes = {"d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2}
    sizes |= {"decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32, "max_position_embeddings": 16}
    config = MarianConfig(vocab_size=32, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **sizes)
    return MarianMTModel(config)


@pytest.mark.parametrize("route", ["callback", "autodrop_trainer", "seq2seq"])
def test_the_model_card_is_written_with_evaluations_before_and_after_the_first_decision(tmp_path, route):
    """Evaluations at steps 4 (no decision yet), 8, ..., 24; the card tabulates the Trainer's own metrics."""
    values = _values(tmp_path, max_steps=24, logging_steps=4, eval_strategy="steps", eval_steps=4)
    autodrop = dict(lr_scheduler_type="autodrop", autodrop_window_size="1", autodrop_buffer_size=3)
    if route == "callback":
        args = TrainingArguments(**values, lr_scheduler_type="constant_with_warmup")
        trainer = Trainer(
            model=tiny_bert(),
            args=args,
            train_dataset=TokenParity(64),
            eval_dataset=TokenParity(32, seed=1),
            callbacks=[AutoDropCallback(AutoDropConfig(window_size=1, buffer_size=3))],
        )
    elif route == "autodrop_trainer":
        args = AutoDropTrainingArguments(**values, **autodrop)
        trainer = AutoDropTrainer(
            model=tiny_bert(), args=args, train_dataset=TokenParity(64), eval_dataset=TokenParity(32, seed=1)
        )
    else:
        args = AutoDropSeq2SeqTrainingArguments(**values, **autodrop)
        trainer = AutoDropSeq2SeqTrainer(
            model=_tiny_marian(), args=args, train_dataset=Pairs(64), eval_dataset=Pairs(16, seed=1)
        )
    trainer.train()
    log = trainer.state.log_history
    decided = [e["step"] for e in log if "autodrop/statistic" in e]
    assert decided and min(decided) > 4  # the first evaluation comes before the first decision
    assert [e["step"] for e in log if "eval_loss" in e] == [4, 8, 12, 16, 20, 24]
    assert not any(key.startswith("autodrop/") for e in log if "eval_loss" in e for key in e)
    carrying = [e["step"] for e in log if "autodrop/lr_scale" in e]
    assert carrying == [4, 8, 12, 16, 20, 24]  # once per logged step: the training log, not the summary too
    trainer.create_model_card(model_name="tiny")
    card = (tmp_path / "README.md").read_text()
    header = next(line for line in card.splitlines() if line.startswith("| Training Loss"))
    assert header.replace(" ", "") == "|TrainingLoss|Epoch|Step|ValidationLoss|"
    assert "Velocity" not in card and "Drops" not in card


@pytest.mark.parametrize("route", ["autodrop_trainer", "stock_trainer"])
def test_returned_metrics_are_the_trainers_own(tmp_path, route):
    def build(with_autodrop):
        if route == "autodrop_trainer":
            schedule = "autodrop" if with_autodrop else "constant_with_warmup"
            args = AutoDropTrainingArguments(**_values(tmp_path, lr_scheduler_type=schedule))
            cls, callbacks = AutoDropTrainer, []
        else:
            args = TrainingArguments(**_values(tmp_path, lr_scheduler_type="constant_with_warmup"))
            cls, callbacks = Trainer, ([AutoDropCallback()] if with_autodrop else [])
        return cls(
            model=tiny_bert(),
            args=args,
            train_dataset=TokenParity(64),
            eval_dataset=TokenParity(32, seed=1),
            compute_metrics=_accuracy,
            callbacks=callbacks,
        )

    stock, with_autodrop = build(False), build(True)
    stock_train, train = stock.train().metrics, with_autodrop.train().metrics
    assert set(train) == set(stock_train) and not any(k.startswith("autodrop/") for k in train)
    stock_eval, evaluation = stock.evaluate(), with_autodrop.evaluate()
    assert set(evaluation) == set(stock_eval)
    assert default_compute_objective(evaluation) == evaluation["eval_accuracy"]
    assert any("autodrop/lr_scale" in entry for entry in with_autodrop.state.log_history)  # logged, not returned


def test_a_stock_trainer_reports_autodrop_to_tensorboard_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = TrainingArguments(**_values(tmp_path, lr_scheduler_type="constant_with_warmup", report_to=["tensorboard"]))
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=TokenParity(64), callbacks=[AutoDropCallback()])
    assert isinstance(trainer.callback_handler.callbacks[0], AutoDropCallback)  # first, without reordering by hand
    trainer.train()
    tags = set(EventAccumulator(str(tmp_path / "tb")).Reload().Tags()["scalars"])
    assert {"train/autodrop/lr_scale", "train/autodrop/num_drops", "train/autodrop/noise_floor"} <= tags


@pytest.mark.parametrize("arguments", [TrainingArguments, AutoDropTrainingArguments])
def test_another_schedule_passes_hyperparameters_through_lr_scheduler_kwargs(tmp_path, arguments):
    kwargs = {"drop_factor": 0.5, "window_size": 3, "preset": "paper", "autodrop_min_lr": 1e-5}
    args = arguments(
        **_values(tmp_path, lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={**kwargs, "min_lr": 1e-4})
    )
    callback = AutoDropCallback()
    with pytest.warns(UserWarning, match="multiply the 'cosine_with_min_lr' schedule"):
        Trainer(model=tiny_bert(), args=args, train_dataset=TokenParity(64), callbacks=[callback]).train()
    assert callback.autodrop.config == AutoDropConfig.paper(drop_factor=0.5, window_size=3, min_lr=1e-5)
    assert args.lr_scheduler_kwargs == {"min_lr": 1e-4}  # the schedule's own argument stays with the schedule


@pytest.mark.parametrize("arguments", [TrainingArguments, AutoDropTrainingArguments])
def test_keyword_schedules_keep_their_own_arguments(tmp_path, arguments):
    """reduce_lr_on_plateau and greedy take **kwargs: a bare name their class takes stays theirs."""
    for schedule, kwargs in (
        ("reduce_lr_on_plateau", {"min_lr": 1e-7, "patience": 2, "threshold": 1e-3}),
        ("greedy", {"window_size": 20, "min_lr": 1e-5}),
    ):
        args = arguments(
            **_values(
                tmp_path,
                lr_scheduler_type=schedule,
                eval_strategy="steps",
                eval_steps=10,
                lr_scheduler_kwargs={**kwargs, "autodrop_min_lr": 1e-6},
            )
        )
        callback = AutoDropCallback()
        data = TokenParity(64)
        Trainer(model=tiny_bert(), args=args, train_dataset=data, eval_dataset=data, callbacks=[callback])
        assert args.lr_scheduler_kwargs == kwargs
        assert callback._config(args) == AutoDropConfig(min_lr=1e-6)


def test_split_scheduler_kwargs_changes_nothing_it_is_given():
    kwargs = {"drop_factor": 0.5, "autodrop_min_lr": 1e-5, "min_lr": 1e-4, "preset": "paper", "num_cycles": 2}
    given = dict(kwargs)
    autodrop, schedule = split_scheduler_kwargs("cosine_with_min_lr", kwargs)
    assert autodrop == {"drop_factor": 0.5, "min_lr": 1e-5, "preset": "paper"}
    assert schedule == {"min_lr": 1e-4, "num_cycles": 2} and kwargs == given
    # a name Transformers does not know takes nothing, so every AutoDrop name is AutoDrop's
    assert split_scheduler_kwargs("not_a_schedule", {"min_lr": 1e-4, "x": 1}) == ({"min_lr": 1e-4}, {"x": 1})


def test_every_hugging_face_schedule_with_var_keywords_is_listed():
    """A schedule that passes ``**kwargs`` to a class the router does not know would take every bare name:
    this fails when Transformers declares a new one."""
    import inspect

    from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION

    declared = {
        schedule.value
        for schedule, function in TYPE_TO_SCHEDULER_FUNCTION.items()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(function).parameters.values())
    }
    assert declared == set(KEYWORD_SCHEDULES)
    assert all(schedule_arguments(name) is not None for name in declared)  # every listed class is importable


def test_one_set_of_arguments_serves_every_trainer_built_with_it(tmp_path):
    args = TrainingArguments(
        **_values(tmp_path, lr_scheduler_type="constant_with_warmup", lr_scheduler_kwargs={"preset": "paper"})
    )
    callbacks = [AutoDropCallback(), AutoDropCallback()]
    for callback in callbacks:  # one Trainer per seed or fold
        Trainer(model=tiny_bert(), args=args, train_dataset=TokenParity(64), callbacks=[callback])
    assert [c._config(args) for c in callbacks] == [AutoDropConfig.paper()] * 2 and args.lr_scheduler_kwargs == {}


def test_a_callback_added_after_construction_takes_its_place(tmp_path):
    args = TrainingArguments(**_values(tmp_path, lr_scheduler_type="constant_with_warmup", report_to=["tensorboard"]))
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=TokenParity(64))
    callback = AutoDropCallback(momentum=0.5)  # an optimizer AutoDrop would not know: its β1, said here
    trainer.add_callback(callback)
    metrics = trainer.train().metrics
    callbacks = trainer.callback_handler.callbacks
    assert callbacks[0] is callback and type(callbacks[-1]).__name__ == "_RemoveLogKeys"
    assert callback.autodrop.momentum.beta == 0.5 and not any(k.startswith("autodrop/") for k in metrics)
    assert any("autodrop/lr_scale" in entry for entry in trainer.state.log_history)
    another = Trainer(model=tiny_bert(), args=args, train_dataset=TokenParity(64))
    another.add_callback(callback)  # the same callback, in a second Trainer: it takes its place there too
    metrics = another.train().metrics
    assert another.callback_handler.callbacks[0] is callback and not any(k.startswith("autodrop/") for k in metrics)


def test_the_multiplied_schedule_warning_points_at_the_users_line(tmp_path):
    args = TrainingArguments(**_values(tmp_path, lr_scheduler_type="linear"))
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=TokenParity(64), callbacks=[AutoDropCallback()])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    (warning,) = [w for w in caught if "multiply" in str(w.message)]
    assert warning.filename == __file__


def test_clear_refusals(tmp_path):
    args = AutoDropTrainingArguments(**_values(tmp_path, lr_scheduler_type="autodrop"))
    with pytest.raises(ValueError, match=r"needs AutoDropTrainer .* or a script run with `autodrop-hf run`"):
        Trainer(model=tiny_bert(), args=args, train_dataset=TokenParity(64), callbacks=[AutoDropCallback()])
    stock = TrainingArguments(**_values(tmp_path, lr_scheduler_type="constant_with_warmup"))
    with pytest.raises(ValueError, match="two AutoDropCallbacks"):
        Trainer(
            model=tiny_bert(),
            args=stock,
            train_dataset=TokenParity(64),
            callbacks=[AutoDropCallback(), AutoDropCallback()],
        )


def test_without_autodrop_another_schedule_gets_its_kwargs_as_a_stock_trainer_does(tmp_path):
    """AutoDropTrainingArguments (every script under autodrop-hf run) with linear and no AutoDrop: stock behaviour."""
    for arguments in (TrainingArguments, AutoDropTrainingArguments):
        args = arguments(**_values(tmp_path, lr_scheduler_type="linear", lr_scheduler_kwargs={"min_lr": 0.5}))
        assert args.lr_scheduler_kwargs == {"min_lr": 0.5}
        trainer = Trainer(model=tiny_bert(), args=args, train_dataset=TokenParity(64))
        with pytest.raises(TypeError, match="min_lr"):  # what the linear schedule says of an argument it lacks
            trainer.train()


def test_a_value_given_as_a_flag_and_as_a_key_must_agree(tmp_path):
    values = _values(tmp_path, lr_scheduler_type="autodrop", autodrop_buffer_size=4)
    with pytest.raises(
        ValueError,
        match=r"--autodrop_buffer_size 4 and lr_scheduler_kwargs \{'buffer_size': 6\} "
        r"disagree: give AutoDrop's buffer_size once",
    ):
        AutoDropTrainingArguments(**values, lr_scheduler_kwargs={"buffer_size": 6})
    assert (
        AutoDropTrainingArguments(**values, lr_scheduler_kwargs={"buffer_size": 4}).autodrop_config().buffer_size == 4
    )
    paper = _values(tmp_path, lr_scheduler_type="autodrop", autodrop_preset="paper")
    with pytest.raises(ValueError, match=r"--autodrop_preset paper and lr_scheduler_kwargs \{'preset': 'anytime'\}"):
        AutoDropTrainingArguments(**paper, lr_scheduler_kwargs={"preset": "anytime"})
    linear = _values(tmp_path, lr_scheduler_type="linear", autodrop_buffer_size=4)
    args = AutoDropTrainingArguments(**linear, lr_scheduler_kwargs={"autodrop_buffer_size": 6})
    with pytest.raises(ValueError, match=r"--autodrop_buffer_size 4 and lr_scheduler_kwargs \{'buffer_size': 6\}"):
        Trainer(model=tiny_bert(), args=args, train_dataset=TokenParity(64), callbacks=[AutoDropCallback()])


def test_the_callback_takes_its_settings_as_keyword_arguments():
    assert AutoDropCallback(buffer_size=4).config == AutoDropConfig(buffer_size=4)
    callback = AutoDropCallback(preset="anytime", stop_when_done=True)
    assert callback.config == AutoDropConfig.anytime(stop_when_done=True)
    with pytest.raises(ValueError, match=r"buffer_size must be an integer from 2 to 2\*\*31, got 1"):
        AutoDropCallback(buffer_size=1)
    with pytest.raises(ValueError, match=r"given a config and \['buffer_size'\]: give one of them"):
        AutoDropCallback(AutoDropConfig(), buffer_size=4)
