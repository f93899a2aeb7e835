"""Argument checks shared by the blocks: each error names the bad value and the allowed range."""

from __future__ import annotations

import math


def check_dim(name: str, value: object) -> int:
    """Return ``value`` if it is a positive int (bool refused), else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int")
    return value


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is an int in [low, high] (no upper end for ``high=None``; bool
    refused), else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r} must be an int")
    if value < low or (high is not None and value > high):
        allowed = f"lie in [{low}, {high}]" if high is not None else f"be >= {low}"
        raise ValueError(f"{name}={value!r} is out of range: must {allowed}")
    return value


def check_choice(name: str, value: object, choices: tuple[object, ...]) -> object:
    """Return ``value`` if it is one of ``choices``, else raise ValueError naming them."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is unknown: choose one of {choices}")
    return value


def check_range(name: str, value: object, low: float, high: float, *,
                low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` if it is a real number in the interval, else raise ValueError.

    The interval is [low, high] with either end open as requested; ``math.inf`` is allowed as
    ``high``. NaN is always refused.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name}={value!r} must be a real number")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name}={value!r} is out of range: must lie in {interval}")
    return float(value)
