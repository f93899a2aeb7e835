"""Interleaved latency sessions: several models timed in alternating order (ABAB ...) in one
process, so that a slow phase of a shared machine hits every arm alike, and the ratio of
their per-session medians (the claims audit's latency ratio, :mod:`midl.claims`).

Each session times every model once (``warmup`` untimed passes, then ``repeats`` timed ones,
:func:`midl.metrics.latency.measure_latency`); the order alternates between sessions (forward,
then reversed), and ``sessions`` >= 5 per model. A run of all the arms' trained models (one
per seed) in one analyses run passes ``{f"{arm}/seed={s}": model}``; the ratio of arm a to arm
b is then taken per session and seed. Written for issue 28; not yet run on a quiet machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from midl.reporting.effects import Effect, one_sample_effect

MIN_SESSIONS = 5


def session_orders(names: Sequence[str], sessions: int) -> list[list[str]]:
    """The timing order of each session: ``names`` forward in even sessions, reversed in odd
    ones (ABAB across sessions: every model is timed first as often as last).

    Raises:
        ValueError: for fewer than :data:`MIN_SESSIONS` sessions or no names.
    """
    if sessions < MIN_SESSIONS:
        raise ValueError(f"at least {MIN_SESSIONS} sessions per model, got {sessions}")
    if not names:
        raise ValueError("no models to time")
    return [list(names) if i % 2 == 0 else list(reversed(names)) for i in range(sessions)]


def interleaved_sessions(models: Mapping[str, Any], time_one: Callable[[Any], float],
                         sessions: int = MIN_SESSIONS) -> dict[str, Any]:
    """Time every model in every session, in :func:`session_orders`.

    Args:
        models: name -> model (anything ``time_one`` accepts).
        time_one: one model's median latency (ms) of one session, e.g. ``lambda m:
            measure_latency(m, inputs, warmup, repeats)["median_ms"]``.
        sessions: sessions per model (>= :data:`MIN_SESSIONS`).

    Returns:
        ``{"sessions": [{"order": [...], "median_ms": {name: ms}}, ...]}``.
    """
    out = []
    for order in session_orders(list(models), sessions):
        out.append({"order": order, "median_ms": {n: float(time_one(models[n]))
                                                  for n in order}})
    return {"sessions": out}


def session_ratios(record: Mapping[str, Any], a: str, b: str) -> list[float]:
    """Per-session ratios median(a) / median(b) of a :func:`interleaved_sessions` record.

    Raises:
        KeyError: if a session lacks either model.
    """
    return [s["median_ms"][a] / s["median_ms"][b] for s in record["sessions"]]


def ratio_effect(ratios: Sequence[float]) -> Effect:
    """The geometric-mean ratio with its 95% t-interval over sessions, on logs (the audit's
    ratio statistics); estimate, low, high in ratio units."""
    e = one_sample_effect(np.log(np.asarray(ratios, dtype=float)))
    for name in ("estimate", "low", "high", "boot_low", "boot_high"):
        value = getattr(e, name)
        setattr(e, name, None if value is None else math.exp(value))
    e.log, e.method = True, "one-sample t on log per-session ratios (interleaved sessions)"
    return e
