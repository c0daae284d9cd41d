"""TRL's SFTTrainer and PEFT's LoRA with AutoDrop: drops, logs, and a resume bit for bit."""

import shutil

import datasets
import pytest
import torch
from test_trainer import LearningRateProbe
from tiny import TokenParity, quiet_training_values, tiny_bert
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from autodrop_hf import AutoDrop, AutoDropCallback, AutoDropTrainer, AutoDropTrainingArguments
from autodrop_hf.hf.callback import STATE_FILE

pytest.importorskip("trl")
peft = pytest.importorskip("peft")
from autodrop_hf import AutoDropSFTConfig, AutoDropSFTTrainer  # noqa: E402

WORDS = ["<pad>", "<eos>", *(f"w{i}" for i in range(30))]
# The paper's rule with a loose threshold: drops every few windows, to test the plumbing.
AUTODROP = dict(
    lr_scheduler_type="autodrop",
    autodrop_preset="paper",
    autodrop_window_size="2",
    autodrop_buffer_size=3,
    autodrop_threshold=5.0,
)


def _tokenizer():
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="w0"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>")


def _texts(count=64):
    generator = torch.Generator().manual_seed(0)
    return datasets.Dataset.from_dict(
        {
            "text": [
                " ".join(f"w{int(i)}" for i in torch.randint(2, 30, (12,), generator=generator)) for _ in range(count)
            ]
        }
    )


def _causal_lm():
    torch.manual_seed(0)
    sizes = {"n_positions": 32, "n_embd": 16, "n_layer": 1, "n_head": 2}
    config = GPT2Config(vocab_size=len(WORDS), pad_token_id=0, eos_token_id=1, bos_token_id=1, **sizes)
    return GPT2LMHeadModel(config)


def _sft(output_dir, resume=None, **overrides):
    values = dict(
        output_dir=str(output_dir),
        max_steps=40,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        warmup_steps=2,
        logging_steps=5,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        max_length=32,
        seed=0,
        data_seed=0,
        disable_tqdm=True,
        **AUTODROP,
    )
    probe = LearningRateProbe()
    args = AutoDropSFTConfig(**{**values, **overrides})
    trainer = AutoDropSFTTrainer(
        model=_causal_lm(), args=args, train_dataset=_texts(), processing_class=_tokenizer(), callbacks=[probe]
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer, probe.lrs


def _detector(trainer) -> AutoDrop:
    return next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, AutoDropCallback)).autodrop


def test_sft_trainer_drops_logs_and_resumes_bit_for_bit(tmp_path):
    straight, lrs = _sft(tmp_path / "straight")
    autodrop = _detector(straight)
    assert len(autodrop.drops) >= 2
    logged = [e for e in straight.state.log_history if "loss" in e]
    assert logged[-1]["autodrop/num_drops"] == len(autodrop.drops)
    _sft(tmp_path / "first", save_strategy="steps", save_steps=17)
    resumed, resumed_lrs = _sft(tmp_path / "first", resume=str(tmp_path / "first/checkpoint-17"))
    assert _detector(resumed).drops == autodrop.drops and _detector(resumed).angles == autodrop.angles
    assert resumed_lrs == {s: lr for s, lr in lrs.items() if s > 17}
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def _lora(output_dir, resume=None, **overrides):
    model = peft.get_peft_model(
        tiny_bert(), peft.LoraConfig(r=2, target_modules=["query", "value"], task_type="SEQ_CLS")
    )
    values = quiet_training_values(output_dir, max_steps=40, warmup_steps=2, data_seed=0, **AUTODROP)
    probe = LearningRateProbe()
    args = AutoDropTrainingArguments(**{**values, **overrides})
    trainer = AutoDropTrainer(model=model, args=args, train_dataset=TokenParity(), callbacks=[probe])
    trainer.train(resume_from_checkpoint=resume)
    return trainer, probe.lrs


def test_lora_watches_only_the_adapters_and_resumes_from_an_adapter_checkpoint(tmp_path):
    straight, lrs = _lora(tmp_path / "straight")
    autodrop = _detector(straight)
    trainable = [p for p in straight.model.parameters() if p.requires_grad]
    assert autodrop.angular_velocity.num_parameters == sum(p.numel() for p in trainable)
    assert sum(p.numel() for p in trainable) < sum(p.numel() for p in straight.model.parameters()) / 10
    assert autodrop.drops
    _lora(tmp_path / "first", save_strategy="steps", save_steps=17)
    checkpoint = tmp_path / "first/checkpoint-17"
    assert (checkpoint / "adapter_model.safetensors").exists() and (checkpoint / STATE_FILE).exists()
    moved = shutil.copytree(checkpoint, tmp_path / "elsewhere/checkpoint-17")
    resumed, resumed_lrs = _lora(tmp_path / "second", resume=str(moved))
    assert _detector(resumed).drops == autodrop.drops and resumed_lrs == {s: lr for s, lr in lrs.items() if s > 17}
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
