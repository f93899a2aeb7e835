"""Interleaved latency sessions: several models timed in alternating order (ABAB ...) in one
process, so that a slow phase of a shared machine hits every arm alike, and the ratio of
their per-session medians (the claims audit's latency ratio, :mod:`midl.claims`).

Each session times every model once (``warmup`` untimed passes, then ``repeats`` timed ones,
:func:`midl.metrics.latency.measure_latency`); the order alternates between sessions (forward,
then reversed), and ``sessions`` >= 5 per model. A table's models, one per arm and seed, are
named ``f"{arm}/seed={s}"``; the ratio of arm a to arm b is then taken per session
(:func:`arm_ratios`). ``python -m midl.timing`` runs the sessions
of a table's models and writes them to ``results/<scale>/latency_sessions.json``
(:data:`FILE`), which the claims audit reads (:func:`load_sessions`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from midl.reporting.effects import Effect, one_sample_effect

MIN_SESSIONS = 5
FILE = "latency_sessions.json"  # under results/<scale>/
FORMAT = 2  # 2: provenance per table (1: one for the file)


class SessionsError(RuntimeError):
    """Sessions that cannot be run, written or read (unknown table, a file of another format,
    an existing file without ``--force``)."""


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


def arm_ratios(record: Mapping[str, Any], a: str, b: str) -> list[float]:
    """Per-session ratios of arm ``a`` to arm ``b`` in a record whose models are named
    ``"<arm>/seed=<s>"``: in each session the geometric mean over the seeds both arms have of
    median(a, seed) / median(b, seed). Sessions, not seeds, are the units of replication
    (seeds with freshly initialised weights time the same architecture).

    Raises:
        KeyError: if the arms share no seed.
    """
    def seeds(arm: str) -> set[str]:
        return {n.split("/", 1)[1] for n in record["sessions"][0]["median_ms"]
                if n.split("/", 1)[0] == arm}

    common = sorted(seeds(a) & seeds(b))
    if not common:
        raise KeyError(f"no seed timed for both {a!r} and {b!r}")
    out = []
    for session in record["sessions"]:
        ms = session["median_ms"]
        logs = [math.log(ms[f"{a}/{s}"] / ms[f"{b}/{s}"]) for s in common]
        out.append(math.exp(sum(logs) / len(logs)))
    return out


def load_sessions(path: str | Path) -> dict[str, Any] | None:
    """A sessions file written by ``python -m midl.timing`` (JSON: nothing in it runs), or
    None where there is none.

    Raises:
        SessionsError: for a file of another format.
    """
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise SessionsError(f"{path}: format {data.get('format')!r}, expected {FORMAT}")
    return data


def ratio_effect(ratios: Sequence[float]) -> Effect:
    """The geometric-mean ratio with its 95% t-interval over sessions, on logs (the audit's
    ratio statistics); estimate, low, high in ratio units."""
    e = one_sample_effect(np.log(np.asarray(ratios, dtype=float)))
    for name in ("estimate", "low", "high", "boot_low", "boot_high"):
        value = getattr(e, name)
        setattr(e, name, None if value is None else math.exp(value))
    e.log, e.method = True, "one-sample t on log per-session ratios (interleaved sessions)"
    return e
