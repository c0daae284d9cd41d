"""The fault matrix: each fault gets the right result or a clear error.

Faults tested elsewhere, named here so that the matrix is complete (README, "Faults and what happens"):
a hung rank at exit (test_distributed.py: the DDP teardown; test_a_hung_rank_is_named_and_every_process_is_killed),
resume from a checkpoint in another folder (test_trainer.py::test_resume_mid_window_is_exact), learning-rate floors
per group, resuming with changed settings or an invalid state, parameters that become trainable, the meta device
(test_autodrop.py).
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from tiny import TokenParity, tiny_bert
from torch.optim import lr_scheduler as torch_schedulers
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import SchedulerType

from autodrop_hf import AutoDrop, AutoDropCallback, AutoDropConfig, AutoDropTrainer, AutoDropTrainingArguments
from autodrop_hf.core.history import read_history, truncate_history
from autodrop_hf.core.scheduler_adapters import ONE_CYCLE_GROUP_KEYS, SCALED_LISTS, apply_lr_scales

sys.path.insert(0, str(Path(__file__).parents[1] / "examples" / "glue"))
sys.path.insert(0, str(Path(__file__).parents[1] / "examples" / "translation"))
from glue_data import GlueDataError, read_glue_dir
from translation_data import TranslationDataError, read_parallel_text

# ----------------------------------------------------------------------------- 3. every scheduler carries a drop
STEPS, DROPS = 40, {6: 0.5, 13: 0.8, 25: 0.5}  # step -> factor of the drop made after that step


def _torch(name):
    return {
        "LambdaLR": lambda o: torch_schedulers.LambdaLR(o, lambda t: 1 / (1 + t)),
        "MultiplicativeLR": lambda o: torch_schedulers.MultiplicativeLR(o, lambda t: 0.97),
        "StepLR": lambda o: torch_schedulers.StepLR(o, step_size=5, gamma=0.7),
        "MultiStepLR": lambda o: torch_schedulers.MultiStepLR(o, milestones=[8, 20], gamma=0.3),
        "ConstantLR": lambda o: torch_schedulers.ConstantLR(o, factor=0.5, total_iters=10),
        "LinearLR": lambda o: torch_schedulers.LinearLR(o, start_factor=0.2, total_iters=15),
        "ExponentialLR": lambda o: torch_schedulers.ExponentialLR(o, gamma=0.95),
        "PolynomialLR": lambda o: torch_schedulers.PolynomialLR(o, total_iters=50, power=2.0),
        "CosineAnnealingLR": lambda o: torch_schedulers.CosineAnnealingLR(o, T_max=15),
        "CosineAnnealingWarmRestarts": lambda o: torch_schedulers.CosineAnnealingWarmRestarts(o, T_0=9, T_mult=2),
        "CyclicLR": lambda o: torch_schedulers.CyclicLR(o, base_lr=[0.01, 0.001], max_lr=[0.1, 0.05], step_size_up=7),
        "OneCycleLR": lambda o: torch_schedulers.OneCycleLR(o, max_lr=[0.3, 0.1], total_steps=STEPS + 1),
        "SequentialLR": lambda o: torch_schedulers.SequentialLR(
            o, [torch_schedulers.LinearLR(o, 0.1, total_iters=10), torch_schedulers.ExponentialLR(o, 0.9)], [10]
        ),
        "ChainedScheduler": lambda o: torch_schedulers.ChainedScheduler(
            [torch_schedulers.ExponentialLR(o, 0.97), torch_schedulers.StepLR(o, 7, 0.5)]
        ),
        "ReduceLROnPlateau": lambda o: torch_schedulers.ReduceLROnPlateau(o, patience=2, factor=0.5, min_lr=1e-3),
    }[name]


def _hugging_face(name):
    kwargs = {
        "cosine_with_min_lr": {"min_lr": 1e-3},
        "cosine_warmup_with_min_lr": {"min_lr_rate": 0.1},
        "warmup_stable_decay": {"num_decay_steps": 10},
        "reduce_lr_on_plateau": {"patience": 2},
        "greedy": {"patience": 2, "min_lr": 1e-4},
    }.get(name, {})
    return lambda o: transformers.get_scheduler(name, o, 4, STEPS, scheduler_specific_kwargs=kwargs)


TORCH_SCHEDULERS = sorted(
    name
    for name, value in vars(torch_schedulers).items()
    if isinstance(value, type)
    and issubclass(value, torch_schedulers.LRScheduler | torch_schedulers.ReduceLROnPlateau)
    and not name.startswith("_")
    and name != "LRScheduler"
)


def test_the_matrix_covers_every_scheduler_torch_has():
    for name in TORCH_SCHEDULERS:
        _torch(name)  # a KeyError names a scheduler torch added and this matrix lacks


def _learning_rates(make, with_drops):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    optimizer = torch.optim.SGD([{"params": params[:1], "lr": 0.1}, {"params": params[1:], "lr": 0.05}], momentum=0.9)
    scheduler = make(optimizer)
    scales, rates = [1.0, 1.0], []
    for step in range(1, STEPS + 1):
        optimizer.step()
        if isinstance(scheduler, torch_schedulers.ReduceLROnPlateau | transformers.optimization.GreedyLR):
            scheduler.step(1.0 if step < 20 else 0.5 ** (step - 19))  # a plateau, then progress
        else:
            scheduler.step()
        if with_drops and step in DROPS:
            # the second group is at its floor after the second drop
            new = [scales[0] * DROPS[step], scales[1] * DROPS[step] if step < 20 else scales[1]]
            apply_lr_scales(scheduler, scales, new)
            scales = new
        rates.append(([group["lr"] for group in optimizer.param_groups], list(scales)))
    return rates


def _warmup_then_cyclic(optimizer):
    """A warm-up before a schedule whose bases are its own (CyclicLR's base_lr, not the optimizer's lr)."""
    warmup = torch_schedulers.LinearLR(optimizer, start_factor=0.1, total_iters=5)
    cyclic = torch_schedulers.CyclicLR(optimizer, base_lr=[0.001, 0.0005], max_lr=[0.1, 0.05], step_size_up=6)
    return torch_schedulers.SequentialLR(optimizer, [warmup, cyclic], milestones=[5])


@pytest.mark.parametrize(
    "make",
    [_torch(name) for name in TORCH_SCHEDULERS]
    + [_hugging_face(s.value) for s in SchedulerType]
    + [_warmup_then_cyclic],
    ids=[*TORCH_SCHEDULERS, *(f"hf-{s.value}" for s in SchedulerType), "SequentialLR-warmup-CyclicLR"],
)
def test_a_drop_multiplies_every_scheduler_exactly(make):
    reference = _learning_rates(make, with_drops=False)
    dropped = _learning_rates(make, with_drops=True)
    for step, ((free, _), (rates, scales)) in enumerate(zip(reference, dropped, strict=True), start=1):
        for group in range(2):
            assert rates[group] == pytest.approx(free[group] * scales[group], rel=1e-9, abs=1e-15), (step, group)
    assert dropped[-1][1] != [1.0, 1.0]


def test_schedulers_a_drop_cannot_scale_exactly_are_refused():
    params = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = torch.optim.SGD(params, lr=0.1)
    for scheduler in (
        torch_schedulers.CosineAnnealingLR(optimizer, T_max=10, eta_min=1e-3),
        torch_schedulers.SequentialLR(
            optimizer,
            [
                torch_schedulers.ConstantLR(optimizer),
                torch_schedulers.CosineAnnealingWarmRestarts(optimizer, 5, eta_min=1e-4),
            ],
            [3],
        ),
    ):
        with pytest.raises(ValueError, match=r"eta_min=0 and AutoDropConfig\(min_lr=\.\.\.\)"):
            AutoDrop(params, AutoDropConfig(), scheduler)
    for not_a_scheduler in (optimizer, object(), "linear"):
        with pytest.raises(TypeError, match="scheduler must be a learning-rate scheduler"):
            AutoDrop(params, AutoDropConfig(), not_a_scheduler)


def test_a_trainer_given_its_own_scheduler_keeps_every_drop(tmp_path):
    model = tiny_bert()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    one_cycle = torch_schedulers.OneCycleLR(optimizer, max_lr=1e-3, total_steps=60)
    args = TrainingArguments(
        str(tmp_path),
        max_steps=60,
        per_device_train_batch_size=8,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    callback = AutoDropCallback(AutoDropConfig.paper(window_size=2, buffer_size=3, threshold=5.0))
    trainer = Trainer(
        model=model, args=args, train_dataset=TokenParity(), optimizers=(optimizer, one_cycle), callbacks=[callback]
    )
    with pytest.warns(UserWarning, match="multiply the 'linear' schedule") as record:
        trainer.train()
    assert record[0].filename == __file__  # the warning points here, at the user's line
    assert len(callback.autodrop.drops) >= 3
    free = torch_schedulers.OneCycleLR(
        torch.optim.AdamW(tiny_bert().parameters(), lr=1e-3), max_lr=1e-3, total_steps=60
    )
    for _ in range(60):
        free.optimizer.step()
        free.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(free.get_last_lr()[0] * callback.autodrop.scale, rel=1e-9)


# ----------------------------------------------------------------------------- 7. files stay valid
def _strict(text):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_every_json_file_is_strict_json_even_when_logging_starts_before_the_first_angle(tmp_path):
    args = AutoDropTrainingArguments(
        str(tmp_path),
        lr_scheduler_type="autodrop",
        max_steps=20,
        logging_steps=1,
        per_device_train_batch_size=8,
        report_to=[],
        save_strategy="steps",
        save_steps=10,
        use_cpu=True,
        disable_tqdm=True,
        autodrop_window_size="1",
    )
    trainer = AutoDropTrainer(model=tiny_bert(), args=args, train_dataset=TokenParity(64))
    trainer.train()
    trainer.save_state()
    files = [tmp_path / "trainer_state.json", *tmp_path.glob("checkpoint-*/trainer_state.json")]
    assert len(files) == 3
    for path in files:
        log = _strict(path.read_text())["log_history"]
        assert "autodrop/angular_velocity" not in log[0] and "autodrop/lr_scale" in log[0]
    for line in (tmp_path / "autodrop_history.jsonl").read_text().splitlines():
        _strict(line)


def test_a_partial_last_history_line_is_dropped_with_one_warning(tmp_path):
    path = tmp_path / "autodrop_history.jsonl"
    records = [{"step": s, "angle": None, "dropped": False} for s in (2, 4, 6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"step": 8, "ang')
    with pytest.warns(UserWarning, match="the last line is incomplete") as record:
        assert read_history(path) == records
    assert len(record) == 1
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "\n\n")
    assert read_history(path) == records  # blank lines: nothing to warn about
    path.write_text('{"step": 2}\nnot json\n{"step": 4}\n')
    with pytest.raises(ValueError, match=r"autodrop_history\.jsonl, line 2: not a JSON record"):
        read_history(path)
    path.write_text('{"step": 2, "dropped": false}\n{"step": 4, "dropped": true}\n{"step": 6, "dr')
    with pytest.warns(UserWarning, match="incomplete"):
        truncate_history(path, 4)  # what a resumed run does at on_train_begin
    assert read_history(path) == [{"step": 2, "dropped": False}, {"step": 4, "dropped": True}]


def test_plot_draws_a_history_with_a_partial_last_line(tmp_path, capsys):
    from autodrop_hf.tools.cli import main

    records = [
        {
            "step": s,
            "angle": 25.0 + s % 3,
            "noise_floor": 25.8,
            "statistic": None,
            "smoothed": None,
            "lr": 1e-3,
            "lr_scale": 1.0,
            "dropped": s == 20,
        }
        for s in range(2, 41, 2)
    ]
    (tmp_path / "autodrop_history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"st')
    main(["plot", str(tmp_path)])
    assert "1 line(s) that are not window records left out (line 21)" in capsys.readouterr().err
    assert (tmp_path / "autodrop.png").stat().st_size > 10_000


def test_a_window_longer_than_the_run_is_said_at_the_start():
    params = [torch.nn.Parameter(torch.zeros(3))]
    with pytest.warns(
        UserWarning, match="cannot give an angle in this run: 90 optimizer steps after warm-up"
    ) as record:
        AutoDrop(params, AutoDropConfig(window_size=64), momentum=0.9, num_training_steps=100, num_warmup_steps=10)
    assert record[0].filename == __file__
    with pytest.warns(UserWarning, match="cannot give a decision"):
        AutoDrop(params, AutoDropConfig(window_size=8), momentum=0.9, num_training_steps=60)


# ----------------------------------------------------------------------------- 8. clear errors at the edges
@pytest.mark.parametrize(("encoding", "guess"), [("utf-16", "UTF-16"), ("latin-1", "Latin-1")])
def test_text_files_in_another_encoding_name_the_file(tmp_path, encoding, guess):
    folder = tmp_path / "SST-2"
    folder.mkdir()
    text = "sentence\tlabel\nun film très réussi\t1\n"
    (folder / "train.tsv").write_bytes(text.encode(encoding))
    (folder / "dev.tsv").write_text(text)
    with pytest.raises(GlueDataError, match=f"SST-2/train.tsv: not UTF-8 text .* looks like {guess}"):
        read_glue_dir(tmp_path, "sst2")
    (tmp_path / "train.de").write_bytes("ein schönes haus\n".encode(encoding))
    (tmp_path / "train.en").write_text("a nice house\n")
    with pytest.raises(TranslationDataError, match=f"train.de: not UTF-8 text .* looks like {guess}"):
        read_parallel_text(tmp_path, "train", "de", "en")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--steps", "0"], "argument --steps: expected an integer from 100 to 2147483648, got 0"),
        (["--steps", "-5"], "argument --steps: expected an integer from 100 to 2147483648, got -5"),
        (["--theorem_steps", "1"], "argument --theorem_steps: expected an integer from 100 to 2147483648, got 1"),
        (["--steps", "ten"], "expected an integer from 100 to 2147483648, got 'ten'"),
    ],
)
def test_nqm_refuses_step_counts_it_cannot_use(tmp_path, arguments, message):
    result = subprocess.run(
        [sys.executable, "-m", "autodrop_hf.tools.cli", "nqm", "--output", str(tmp_path), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and message in result.stderr
    assert not list(tmp_path.iterdir())


def test_numpy_and_tensor_hyperparameters_and_bad_step_counts():
    config = AutoDropConfig(drop_factor=np.float32(0.9), buffer_size=torch.tensor(5), drift_z=np.float64(1.5))
    assert (config.drop_factor, config.buffer_size, config.drift_z) == (pytest.approx(0.9), 5, 1.5)
    params = [torch.nn.Parameter(torch.zeros(3))]
    for bad in (math.nan, math.inf, "1000", np.float64(100.0)):
        with pytest.raises(ValueError, match="num_training_steps must be None or an integer >= 1"):
            AutoDrop(params, config, momentum=0.9, num_training_steps=bad)
    assert AutoDrop(params, config, momentum=0.9, num_training_steps=np.int32(3000)).window_size == 3


# ----------------------------------------------------------------------------- DeepSpeed
def test_a_deepspeed_scheduler_section_is_refused_and_zero3_partitions_are_watched(tmp_path):
    from autodrop_hf.hf.callback import check_deepspeed

    class Arguments:  # TrainingArguments(deepspeed=...) as the callback reads it
        def __init__(self, deepspeed):
            self.deepspeed = deepspeed

    check_deepspeed(Arguments(None))
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    check_deepspeed(Arguments(str(path)))
    with pytest.raises(ValueError, match=r"'scheduler' section.*remove that section"):
        check_deepspeed(Arguments({"scheduler": {"type": "WarmupLR"}, "zero_optimization": {"stage": 1}}))
    from accelerate.utils import DeepSpeedPlugin

    launched = Arguments(None)  # accelerate launch --use_deepspeed --deepspeed_config_file: parsed by Accelerate
    scheduled = {"scheduler": {"type": "WarmupLR"}, "zero_optimization": {"stage": 1}}
    launched.deepspeed_plugin = DeepSpeedPlugin(hf_ds_config=dict(scheduled))
    with pytest.raises(ValueError, match=r"'scheduler' section"):
        check_deepspeed(launched)
    real = TrainingArguments(str(tmp_path), deepspeed=dict(scheduled), use_cpu=True, report_to=[])
    with pytest.raises(ValueError, match=r"'scheduler' section"):  # as Transformers parses it (a dict, here)
        check_deepspeed(real)
    placeholder = torch.nn.Parameter(torch.empty(0))
    placeholder.ds_tensor = torch.zeros(40)  # ZeRO-3: an empty parameter, this process's partition beside it
    placeholder.ds_numel = 80  # the whole parameter: two processes' partitions
    autodrop = AutoDrop([placeholder], AutoDropConfig(), momentum=0.9)
    assert autodrop.angular_velocity.num_parameters == 40
    with pytest.warns(UserWarning, match="watches about 40 elements"):  # counted from the whole parameter
        AutoDrop([placeholder], AutoDropConfig(sample_fraction=0.5), momentum=0.9)


def test_a_history_file_in_a_missing_folder_is_created_and_a_folder_or_unwritable_path_is_refused(tmp_path):
    params = [torch.nn.Parameter(torch.zeros(3))]
    nested = tmp_path / "out" / "deeper" / "autodrop_history.jsonl"
    autodrop = AutoDrop(params, momentum=0.9, history_file=nested)  # the README's out/autodrop_history.jsonl
    assert nested.exists() and autodrop.history_file == nested
    with pytest.raises(ValueError, match=r"history_file='.*out' is a folder: give a file, such as .*autodrop_history"):
        AutoDrop(params, momentum=0.9, history_file=tmp_path / "out")
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    with pytest.raises(ValueError, match=r"history_file='.*a_file/history.jsonl' cannot be written"):
        AutoDrop(params, momentum=0.9, history_file=blocked / "history.jsonl")


def test_a_string_base_lr_is_named_and_a_huge_seed_is_an_argparse_error(tmp_path):
    params = [torch.nn.Parameter(torch.zeros(3))]
    with pytest.raises(
        ValueError, match=r"base_lr must be a number or one per parameter group, got '1e-3' \(a string\)"
    ):
        AutoDrop(params, AutoDropConfig(min_lr=1e-5), momentum=0.9, base_lr="1e-3")
    result = subprocess.run(
        [sys.executable, "-m", "autodrop_hf.tools.cli", "nqm", "--output", str(tmp_path / "n"), "--seed", str(10**20)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "argument --seed: expected an integer from 0 to" in result.stderr
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    command = [sys.executable, "-m", "autodrop_hf.tools.cli", "nqm", "--output", str(blocked / "n"), "--steps", "100"]
    result = subprocess.run([*command, "--theorem_steps", "100"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("autodrop-hf nqm: ") and "a_file" in result.stderr


def test_the_scheduler_attributes_a_drop_scales_exist_on_the_real_classes():
    """Each attribute name of SCALED_LISTS is a per-group list on the classes that keep it (a rename in PyTorch
    or Transformers fails here, not silently at a drop); a drop halves each, and OneCycleLR's group keys."""
    weights = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    optimizer = torch.optim.SGD([{"params": [w]} for w in weights], lr=0.1, momentum=0.9)
    keepers = {
        "max_lrs": [torch_schedulers.CyclicLR(optimizer, 0.01, 0.1), transformers.optimization.GreedyLR(optimizer)],
        "min_lrs": [
            torch_schedulers.ReduceLROnPlateau(optimizer, min_lr=1e-4),
            transformers.optimization.GreedyLR(optimizer),
        ],
        "_init_lrs": [transformers.optimization.GreedyLR(optimizer)],
    }
    assert set(keepers) == set(SCALED_LISTS)
    for name, schedulers in keepers.items():
        for scheduler in schedulers:
            before = list(getattr(scheduler, name))
            assert len(before) == 2 and all(v > 0 for v in before), (name, type(scheduler).__name__)
            apply_lr_scales(scheduler, [1.0, 1.0], [0.5, 0.5])
            assert getattr(scheduler, name) == pytest.approx([v * 0.5 for v in before]), name
    one_cycle = torch_schedulers.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    groups = [{key: group[key] for key in ONE_CYCLE_GROUP_KEYS} for group in optimizer.param_groups]
    apply_lr_scales(one_cycle, [1.0, 1.0], [0.5, 0.5])
    for group, before in zip(optimizer.param_groups, groups, strict=True):
        after = {key: group[key] for key in ONE_CYCLE_GROUP_KEYS}
        assert after == pytest.approx({key: value * 0.5 for key, value in before.items()})
