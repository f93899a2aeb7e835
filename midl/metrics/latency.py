"""Inference latency of a model's forward pass (the paper's Tables 5, 8 and 10).

Method: ``model.eval()`` under ``torch.inference_mode()``; ``warmup`` untimed forward passes,
then ``repeats`` timed ones, each timed on its own. On CPU each pass is timed with
``time.perf_counter`` and the torch thread count is recorded (and optionally set for the
measurement); on GPU with CUDA events around each pass and a synchronisation before reading
them. The result gives the median and the spread (quartiles, min, max, mean, standard
deviation) in milliseconds per forward pass of the whole batch, together with the device
name, thread count and library versions.
"""

from __future__ import annotations

import platform
import statistics
import time
from typing import Any

import torch
from torch import Tensor, nn

from midl.runs.provenance import cpu_model


def device_name(device: torch.device) -> str:
    """A readable name of ``device``: the GPU's name, or the CPU's processor string."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def library_versions() -> dict[str, str]:
    """Versions of Python and torch (the libraries a timing depends on)."""
    return {"python": platform.python_version(), "torch": torch.__version__}


def _summary(times_ms: list[float]) -> dict[str, float]:
    ordered = sorted(times_ms)
    q1, median, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return {"median_ms": median, "q1_ms": q1, "q3_ms": q3, "iqr_ms": q3 - q1,
            "min_ms": ordered[0], "max_ms": ordered[-1], "mean_ms": statistics.fmean(ordered),
            "std_ms": statistics.stdev(ordered) if len(ordered) > 1 else 0.0}


def measure_latency(model: nn.Module, inputs: Tensor, warmup: int = 10, repeats: int = 100,
                    num_threads: int | None = None) -> dict[str, Any]:
    """Time ``model(inputs)`` in eval mode on ``inputs``' device.

    Args:
        model: the model; it is moved to ``inputs``' device and put in eval mode (its
            training flag is restored afterwards).
        inputs: one batch (B, ...); B is the batch size reported.
        warmup: untimed passes before timing (>= 0).
        repeats: timed passes (>= 2).
        num_threads: on CPU, the torch intra-op thread count to time with (restored
            afterwards); ``None`` keeps the current one.

    Returns:
        ``{"median_ms", "q1_ms", "q3_ms", "iqr_ms", "min_ms", "max_ms", "mean_ms", "std_ms"}``
        in milliseconds per forward pass of the batch, plus ``batch_size``, ``warmup``,
        ``repeats``, ``device`` ('cpu' / 'cuda:0'), ``device_name``, ``num_threads``,
        ``timer`` and ``versions``.

    Raises:
        ValueError: if ``warmup`` < 0 or ``repeats`` < 2.
    """
    if warmup < 0 or repeats < 2:
        raise ValueError(f"need warmup >= 0 and repeats >= 2, got {warmup=} {repeats=}")
    device = inputs.device
    was_training = model.training
    old_threads = torch.get_num_threads()
    model.to(device).eval()
    if num_threads is not None and device.type == "cpu":
        torch.set_num_threads(num_threads)
    times: list[float] = []
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(inputs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
                ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
                for start, end in zip(starts, ends, strict=True):
                    start.record()
                    model(inputs)
                    end.record()
                torch.cuda.synchronize(device)
                times = [s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)]
                timer = "cuda events + synchronize"
            else:
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    model(inputs)
                    times.append((time.perf_counter() - t0) * 1e3)
                timer = "time.perf_counter"
        threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(old_threads)
        model.train(was_training)
    return {**_summary(times), "batch_size": int(inputs.shape[0]), "warmup": warmup,
            "repeats": repeats, "device": str(device), "device_name": device_name(device),
            "num_threads": threads if device.type == "cpu" else None, "timer": timer,
            "versions": library_versions()}


__all__ = ["device_name", "library_versions", "measure_latency"]
