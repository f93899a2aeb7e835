"""Peak memory during inference (the paper's Tables 5, 8 and 10), in MB (1 MB = 2^20 bytes).

- GPU: ``torch.cuda.max_memory_allocated`` over ``repeats`` forward passes, after
  ``torch.cuda.reset_peak_memory_stats``: the peak of memory held by torch tensors (weights,
  inputs, activations), excluding the CUDA context and the caching allocator's slack.
- CPU: an isolated measurement process (a fresh Python subprocess that loads this file alone
  and imports only torch and the model's classes), so nothing else the calling process did
  (training, other models, data, Lightning) enters the number. The child loads the pickled
  model and inputs, records its resident set size (RSS), resets the kernel's peak-RSS counter
  (``VmHWM``, by writing 5 to ``/proc/self/clear_refs``; Linux >= 4.0), runs the forward
  passes under ``torch.inference_mode`` and reads ``VmHWM`` back. Where the reset is
  unavailable it falls back to ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (a lifetime peak).

Reported: ``peak_mb`` (absolute peak; on CPU this includes the Python interpreter and the torch
runtime, about 530 MB for a CUDA build of torch 2.x before any model is loaded),
``baseline_mb`` (before the first forward pass, model and input loaded), ``delta_mb`` = peak -
baseline (what inference itself added), ``parameters_mb`` (size of the model's parameters and
buffers), and ``method`` naming how the peak was taken.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

MB = float(2**20)
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)
_CHILD = ("import importlib.util, sys; "
          "spec = importlib.util.spec_from_file_location('_midl_memory_probe', sys.argv[1]); "
          "probe = importlib.util.module_from_spec(spec); spec.loader.exec_module(probe); "
          "probe._child_main(sys.argv[2:])")


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def resident_mb() -> float | None:
    """This process's resident set size now (MB), from ``/proc/self/status`` (``VmRSS``);
    None where Linux's ``/proc`` is unavailable."""
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _ru_maxrss_kb() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def _measure_in_this_process(payload_path: str, repeats: int, num_threads: int) -> dict:
    """Child side: load (model, inputs), measure ``repeats`` forward passes, return the result."""
    torch.set_num_threads(num_threads)
    with open(payload_path, "rb") as f:
        model, inputs = pickle.load(f)
    model.eval()
    gc.collect()
    baseline_kb = _status_kb("VmRSS")
    reset = baseline_kb is not None and _reset_peak_rss()
    if not reset:
        baseline_kb = _ru_maxrss_kb()
    with torch.inference_mode():
        for _ in range(repeats):
            model(inputs)
    peak_kb = _status_kb("VmHWM") if reset else _ru_maxrss_kb()
    method = ("isolated process: peak RSS (VmHWM, reset via /proc/self/clear_refs before "
              "inference)" if reset else "isolated process: resource.getrusage ru_maxrss")
    return {"peak_kb": peak_kb, "baseline_kb": baseline_kb, "method": method}


def _child_main(args: list[str]) -> None:
    """Entry of the measurement process: ``payload result repeats threads``."""
    payload, result, repeats, threads = args
    measured = _measure_in_this_process(payload, int(repeats), int(threads))
    with open(result + ".tmp", "w", encoding="utf-8") as f:
        json.dump(measured, f)
    os.replace(result + ".tmp", result)


def _parameters_mb(model: nn.Module) -> float:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors) / MB


def _cpu_peak(model: nn.Module, inputs: Tensor, repeats: int, num_threads: int,
              timeout_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="midl-memory-") as tmp:
        payload, result_path = Path(tmp) / "payload.pkl", Path(tmp) / "result.json"
        with open(payload, "wb") as f:
            pickle.dump((model.cpu(), inputs.cpu()), f, protocol=pickle.HIGHEST_PROTOCOL)
        # Load this file on its own (not as part of the midl.metrics package) so that the child
        # imports nothing beyond torch and the model's classes.
        command = [sys.executable, "-c", _CHILD, __file__, str(payload), str(result_path),
                   str(repeats), str(num_threads)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [_PACKAGE_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])}
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                                  env=env)
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"memory measurement process gave no answer in {timeout_s} s"
                               ) from error
        if done.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"memory measurement process failed ({done.returncode}): "
                               f"{done.stderr.strip()[-2000:]}")
        result = json.loads(result_path.read_text())
    peak, baseline = result["peak_kb"] / 1024, result["baseline_kb"] / 1024
    return {"peak_mb": peak, "baseline_mb": baseline, "delta_mb": max(peak - baseline, 0.0),
            "method": result["method"], "num_threads": num_threads}


def _cuda_peak(model: nn.Module, inputs: Tensor, repeats: int) -> dict[str, Any]:
    device = inputs.device
    model.to(device)
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device) / MB
    with torch.inference_mode():
        for _ in range(repeats):
            model(inputs)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) / MB
    return {"peak_mb": peak, "baseline_mb": baseline, "delta_mb": peak - baseline,
            "method": "torch.cuda.max_memory_allocated", "num_threads": None}


def peak_memory(model: nn.Module, inputs: Tensor, repeats: int = 3,
                num_threads: int | None = None, timeout_s: float = 300.0) -> dict[str, Any]:
    """Peak memory of ``repeats`` eval-mode forward passes of ``model(inputs)``, in MB.

    Args:
        model: the model (picklable on CPU; modules built from ``midl`` classes are). The
            caller's copy is not modified except for being moved to ``inputs``' device.
        inputs: one batch (B, ...); its device selects the method (see module docstring).
        repeats: forward passes measured (>= 1).
        num_threads: CPU only: torch threads in the measurement process (default: the
            caller's current count).
        timeout_s: CPU only: how long to wait for the measurement process.

    Returns:
        ``{"peak_mb", "baseline_mb", "delta_mb", "parameters_mb", "method", "batch_size",
        "device", "num_threads"}``.

    Raises:
        ValueError: if ``repeats`` < 1.
        RuntimeError: if the CPU measurement process fails or times out.
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    device = inputs.device
    was_training = model.training
    model.eval()
    try:
        if device.type == "cuda":
            result = _cuda_peak(model, inputs, repeats)
        else:
            threads = num_threads if num_threads is not None else torch.get_num_threads()
            result = _cpu_peak(model, inputs, repeats, threads, timeout_s)
    finally:
        model.train(was_training)
    return {**result, "parameters_mb": _parameters_mb(model),
            "batch_size": int(inputs.shape[0]), "device": str(device), "repeats": repeats}


__all__ = ["MB", "peak_memory"]
