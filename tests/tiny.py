"""A tiny BERT and a generated classification set: a real Trainer run in seconds, offline."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification

VOCAB, LENGTH = 64, 12
#: The flags of every script run in the tests: no reporters, no checkpoints, no progress bars.
QUIET_RUN = ("--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true")
#: AutoDrop in a script run of a few steps: windows of 2 steps, a decision every 2 angles.
FAST_AUTODROP_RUN = ("--lr_scheduler_type", "autodrop", "--autodrop_window_size", "2", "--autodrop_buffer_size", "2")


def quiet_training_values(output_dir, **values) -> dict:
    """Keywords of training arguments for a quiet test run on the CPU (no reporters, checkpoints or progress
    bars; batches of 8, LR 1e-3, seed 0), with ``values`` over them."""
    quiet = {"output_dir": str(output_dir), "per_device_train_batch_size": 8, "learning_rate": 1e-3, "seed": 0}
    quiet |= {"report_to": [], "save_strategy": "no", "use_cpu": True, "disable_tqdm": True}
    return {**quiet, **values}


def tiny_bert(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=LENGTH,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


class TokenParity(torch.utils.data.Dataset):
    """Label 1 when token 7 appears more often than token 9: learnable, not trivial."""

    def __init__(self, size: int = 256, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(5, VOCAB, (size, LENGTH), generator=generator)
        self.labels = ((self.input_ids == 7).sum(1) > (self.input_ids == 9).sum(1)).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index], "labels": self.labels[index]}


def save_tiny_model_dir(path, words) -> str:
    """A from-config tiny BERT encoder (no task head, like a pretrained checkpoint) and a WordPiece
    tokenizer over ``words``, saved for ``from_pretrained``."""
    from transformers import BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(words))]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    sizes = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    config = BertConfig(vocab_size=len(vocab), max_position_embeddings=64, **sizes)
    BertModel(config).save_pretrained(path)
    return str(path)
