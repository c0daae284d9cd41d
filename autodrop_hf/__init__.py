"""AutoDrop for PyTorch and Hugging Face Transformers: drop the learning rate when the angular
velocity of training saturates (Wang, Teng, Choromanska).

The core (``AutoDrop``, ``AutoDropConfig``, ``AutoDropLR``) imports only PyTorch; the Trainer
integration is imported on first use, so a plain loop does not pay for importing Transformers.
"""

from importlib import import_module
from typing import Any

from .core.autodrop import AutoDrop
from .core.autodrop_scheduler import AutoDropScheduler
from .core.config import AutoDropConfig
from .core.noise_floor import MomentumFilter
from .core.scheduler import AutoDropLR

__version__ = "0.2.0"

_LAZY = {
    "AutoDropCallback": "hf.callback",
    "AutoDropTrainer": "hf.trainer",
    "AutoDropSeq2SeqTrainer": "hf.trainer",
    "AutoDropTrainerMixin": "hf.trainer",
    "AutoDropTrainingArguments": "hf.training_args",
    "AutoDropSeq2SeqTrainingArguments": "hf.training_args",
    "AutoDropArgumentsMixin": "hf.training_args",
    "AutoDropSFTConfig": "hf.trl",  # needs TRL
    "AutoDropSFTTrainer": "hf.trl",
}

__all__ = ["AutoDrop", "AutoDropConfig", "AutoDropLR", "AutoDropScheduler", "MomentumFilter", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
