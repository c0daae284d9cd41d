"""Argument checks shared by the core's constructors: each names the argument and what it accepts."""

from __future__ import annotations

import math
import numbers
from typing import Any


def plain_number(value: Any) -> Any:
    """A NumPy scalar or a 0-d tensor as a Python number; anything else unchanged."""
    if isinstance(value, bool) or isinstance(value, int | float):
        return value
    if isinstance(value, numbers.Number) or (hasattr(value, "item") and getattr(value, "ndim", None) == 0):
        return value.item() if hasattr(value, "item") else value
    return value


def describe(value: Any) -> str:
    return f"{value!r}" if isinstance(value, int | float | str) else f"{value!r} ({type(value).__name__})"


def real(name: str, value: Any, allowed: str, is_allowed) -> float:
    number = plain_number(value)
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise ValueError(f"{name} must be a number with {allowed}, got {describe(value)}.")
    if not math.isfinite(number) or not is_allowed(number):
        raise ValueError(f"{name} must satisfy {allowed}, got {describe(value)}.")
    return float(number)


def integer(name: str, value: Any, minimum: int, allowed: str, maximum: int = 2**31) -> int:
    number = plain_number(value)
    if isinstance(number, float) and number.is_integer() and not isinstance(value, float):
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or not minimum <= number <= maximum:
        raise ValueError(f"{name} must be {allowed}, got {describe(value)}.")
    return number


def number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    return float(value)


def optional_count(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be None or an integer >= {minimum}, got {value!r}.")
    return int(value)
