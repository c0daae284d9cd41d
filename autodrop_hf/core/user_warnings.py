"""Warnings that point at the user's line, not at the library frames between it and the cause."""

from __future__ import annotations

import sys
import warnings

#: Packages whose frames a warning skips: the user's code called into them.
_LIBRARY_PACKAGES = ("autodrop_hf", "transformers", "accelerate", "torch")


def _is_library(filename: str) -> bool:
    parts = filename.replace("\\", "/").split("/")
    return any(package in parts for package in _LIBRARY_PACKAGES) or filename.startswith("<frozen ")


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside the library and its hosts."""
    frame, level = sys._getframe(1), 2  # stacklevel 2: the caller of warn()
    while frame is not None and _is_library(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level if frame is not None else 2)
