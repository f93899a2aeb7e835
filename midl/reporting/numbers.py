"""The one number formatter of every report (tables, summaries, the claims audit)."""

from __future__ import annotations

import math

MISSING = "–"  # a number that is absent (None) or undefined (NaN)


def fmt(value: float | None, digits: int, signed: bool = False) -> str:
    """``value`` with ``digits`` decimals (a sign when ``signed``); :data:`MISSING` for None
    or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
