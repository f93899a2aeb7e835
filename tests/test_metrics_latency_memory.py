"""Latency and peak memory return positive finite numbers with the device recorded."""

from __future__ import annotations

import functools
import math

import torch

from midl.backbones import MLP
from midl.blocks import MIDLayer
from midl.metrics.latency import measure_latency
from midl.metrics.memory import peak_memory


def small_net() -> MLP:
    return MLP((1, 8, 8), 10, functools.partial(MIDLayer), hidden_dim=32)


def test_latency_is_positive_finite_and_records_the_setting():
    net = small_net().train()
    threads = torch.get_num_threads()
    result = measure_latency(net, torch.randn(4, 1, 8, 8), warmup=2, repeats=5, num_threads=1)
    for key in ("median_ms", "q1_ms", "q3_ms", "min_ms", "max_ms", "mean_ms"):
        assert math.isfinite(result[key]) and result[key] > 0, (key, result)
    assert result["min_ms"] <= result["median_ms"] <= result["max_ms"]
    assert result["device"] == "cpu" and result["device_name"]
    assert result["num_threads"] == 1 and result["batch_size"] == 4
    assert result["versions"]["torch"] == torch.__version__
    assert torch.get_num_threads() == threads and net.training  # restored


def test_peak_memory_is_positive_finite_and_names_its_method():
    result = peak_memory(small_net(), torch.randn(64, 1, 8, 8), repeats=2)
    assert math.isfinite(result["peak_mb"]) and result["peak_mb"] > 0
    assert result["peak_mb"] >= result["baseline_mb"] > 0
    assert result["delta_mb"] >= 0
    assert "isolated process" in result["method"]
    assert result["device"] == "cpu" and result["batch_size"] == 64
    assert result["parameters_mb"] > 0
