"""Timing statistics shared by the benchmark sections (:mod:`midl.bench.suite`,
:mod:`midl.bench.overhead`, :mod:`midl.bench.fastpath`): candidates timed side by side in
interleaved rounds, and the median and inter-quartile range (IQR) over the rounds.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode


def quartiles(values: list[float]) -> dict[str, float]:
    """Median and IQR (q3 - q1) of ``values``; IQR 0 for fewer than two values."""
    med = statistics.median(values)
    if len(values) < 2:
        return {"median": med, "iqr": 0.0, "n": len(values)}
    q = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": med, "iqr": q[2] - q[0], "n": len(values)}


def time_side_by_side(fns: dict[str, Callable[[], Any]], rounds: int, min_run_time: float,
                      threads: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each function, one median per round, rounds interleaved.

    Each round times every candidate once with ``Timer.blocked_autorange`` (which
    synchronises CUDA), in the order given, so slow phases of a loaded machine hit all
    candidates of a round.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
            out[name].append(timer.blocked_autorange(min_run_time=min_run_time).median)
    return out


def ratio(times: dict[str, list[float]], num: str, den: str) -> dict[str, float]:
    """Median and IQR over rounds of the per-round ratio ``num / den``."""
    return quartiles([a / b for a, b in zip(times[num], times[den], strict=True)])


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (``torch.utils.flop_counter.FlopCounterMode``)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def fmt(q: dict[str, float], scale: float = 1.0, digits: int = 2) -> str:
    """``median±IQR`` of a :func:`quartiles` result, times ``scale``, to ``digits`` places."""
    return f"{q['median'] * scale:.{digits}f}±{q['iqr'] * scale:.{digits}f}"


def fwd(model: nn.Module, x: Tensor) -> Callable[[], Any]:
    """A call of ``model(x)`` in eval style (no grad), to time."""
    def run() -> Tensor:
        with torch.no_grad():
            return model(x)
    return run


def fwd_bwd(model: nn.Module, x: Tensor, grad: Tensor) -> Callable[[], Any]:
    """A forward and backward pass of ``model(x)`` with output gradient ``grad`` (gradients
    reset first), to time."""
    params = [p for p in model.parameters() if p.requires_grad]

    def run() -> None:
        for p in params:
            p.grad = None
        x.grad = None
        model(x).backward(grad)
    return run
