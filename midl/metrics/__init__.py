"""Measurements of trained models: one concept per module.

- :mod:`midl.metrics.anr`: active neuron ratio (nonzero-gate and threshold definitions) and
  per-neuron activation frequency.
- :mod:`midl.metrics.flops`: FLOPs per inference sample (shape-based and gate-conditional).
- :mod:`midl.metrics.latency`: forward-pass latency (median and spread, ms).
- :mod:`midl.metrics.memory`: peak inference memory (MB, method named in the output).
- :mod:`midl.metrics.smi`: sliced mutual information and per-neuron MI with labels (nats).
- :mod:`midl.metrics.calibration`: expected calibration error and Brier score.
- :mod:`midl.metrics.memorization`: how many flipped training labels a model has fitted.
"""

from midl.metrics.anr import DEFAULT_TAU, GateStatistics, activation_frequency, block_anr
from midl.metrics.calibration import (
    BrierScore,
    brier_score,
    expected_calibration_error,
    reliability_bins,
)
from midl.metrics.flops import FlopReport, conditional_block_flops, conditional_flops, count_flops
from midl.metrics.latency import measure_latency
from midl.metrics.memorization import memorization
from midl.metrics.memory import peak_memory
from midl.metrics.smi import per_neuron_mutual_information, sliced_mutual_information

__all__ = [
    "DEFAULT_TAU",
    "BrierScore",
    "FlopReport",
    "GateStatistics",
    "activation_frequency",
    "block_anr",
    "brier_score",
    "conditional_block_flops",
    "conditional_flops",
    "count_flops",
    "expected_calibration_error",
    "measure_latency",
    "memorization",
    "peak_memory",
    "per_neuron_mutual_information",
    "reliability_bins",
    "sliced_mutual_information",
]
