"""AutoDrop for PyTorch and Hugging Face Transformers: drop the learning rate when the angular
velocity of training saturates (Wang, Teng, Choromanska)."""

from .autodrop import AutoDrop
from .config import AutoDropConfig
from .scheduler import AutoDropLR

__version__ = "0.1.0"

__all__ = ["AutoDrop", "AutoDropConfig", "AutoDropLR", "__version__"]
