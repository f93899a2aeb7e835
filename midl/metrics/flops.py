"""FLOPs per inference sample: shape-based counts and gate-conditional counts.

Convention: one multiply-accumulate (MAC) = 2 FLOPs, the convention of the TensorFlow profiler
the paper cites (Appendix D.2) and of ``torch.utils.flop_counter.FlopCounterMode``. The counter
sees matrix products and convolutions (``mm``, ``addmm``, ``bmm``, ``convolution``, attention,
...): Linear(a, b) costs 2ab per sample, Conv2d 2 * C_in/groups * k_h * k_w * C_out * H_out *
W_out, an LSTM step 2 * 4h * (input + h). Bias additions, activations, normalisation and
element-wise gating are not counted (they are O(d) against the O(d^2) products).

Shape-based counters cannot see masking: a masked neuron costs as much as a kept one. The
*conditional FLOPs* are what a sparse implementation that skips masked work would need,
derived analytically per block from the gate statistics:

- MID-L (:class:`midl.blocks.MIDLayer`, y = alpha_hat * F1(x) + (1 - alpha_hat) * F2(x)):
  where alpha_hat = 0 the output is F2(x), so F1's second Linear(r, d) need only produce the k
  selected rows. The gate Linear(d, d), F1's first Linear(d, r) and the whole of F2 are still
  needed for every neuron (alpha_hat < 1 always, so F2 never drops out). Skipped per sample:
  2 * r * (d - k_mean) * P, with k_mean the mean number of nonzero alpha_hat per row over the
  evaluated inputs and P the rows (positions) per sample.
- A block with a ``conditional_flops(dense_flops, active_fraction)`` method: its own rule.
- Any other block (dense baselines): conditional = dense.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from midl.backbones import blocks_of
from midl.blocks import MIDLayer

FLOP_CONVENTION = ("FLOPs per sample, 2 per multiply-accumulate (torch.utils.flop_counter."
                   "FlopCounterMode: matmul/conv/attention; bias, activations and element-wise "
                   "ops not counted)")


@dataclass
class FlopReport:
    """FLOPs of one forward pass, per sample.

    Attributes:
        total: whole-model FLOPs per sample (float, since a batch's count is divided by B).
        blocks: FLOPs per sample of each block (``blocks_of(model)``), keyed by module name.
        modules: FLOPs per sample of every module the counter saw, keyed by module name
            ('' is the whole model).
        batch_size: the batch the count was taken on.
        rows_per_sample: rows (positions) a block's gate covers per sample, per block.
    """

    total: float
    blocks: dict[str, float] = field(default_factory=dict)
    modules: dict[str, float] = field(default_factory=dict)
    batch_size: int = 1
    rows_per_sample: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


def _batch_size(inputs: Tensor) -> int:
    if inputs.dim() == 0:
        raise ValueError("inputs must have a batch dimension, got a 0-d tensor")
    return int(inputs.shape[0])


@torch.no_grad()
def count_flops(model: nn.Module, inputs: Tensor) -> FlopReport:
    """Count FLOPs per sample of ``model(inputs)`` with ``FlopCounterMode`` (2 FLOPs per MAC).

    The model is run once in its current mode (call ``model.eval()`` first for inference
    counts) with oneDNN and cuDNN disabled for the pass, since their fused RNN kernels are
    invisible to the counter (an LSTM would count 0). Shape-based counts are linear in the
    batch size, so the batch's count divided by B is the count per sample.

    Args:
        model: any module; its blocks are found with :func:`midl.backbones.blocks_of`.
        inputs: a batch (B, ...) on the model's device.

    Returns:
        A :class:`FlopReport` (FLOPs per sample).

    Raises:
        ValueError: if ``inputs`` has no batch dimension.
    """
    batch = _batch_size(inputs)
    prefix = type(model).__name__
    counter = FlopCounterMode(display=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # oneDNN's TF32 notice when toggling its flags
        with torch.backends.mkldnn.flags(enabled=False), \
                torch.backends.cudnn.flags(enabled=False), counter:
            model(inputs)
    counts = counter.get_flop_counts()

    def flops_of(name: str) -> float:
        key = prefix if name == "" else f"{prefix}.{name}"
        return sum(counts.get(key, {}).values()) / batch

    names = {id(m): n for n, m in model.named_modules()}
    modules = {n: flops_of(n) for n, _ in model.named_modules()
               if (prefix if n == "" else f"{prefix}.{n}") in counts}
    blocks: dict[str, float] = {}
    rows: dict[str, float] = {}
    for block in blocks_of(model):
        name = names[id(block)]
        blocks[name] = flops_of(name)
        mask = getattr(block, "last_mask", None)
        if mask is not None:
            rows[name] = mask.numel() / mask.shape[-1] / batch
    total = sum(counts.get("Global", {}).values()) / batch
    return FlopReport(total=total, blocks=blocks, modules=modules, batch_size=batch,
                      rows_per_sample=rows)


def conditional_block_flops(block: nn.Module, dense_flops: float, active_fraction: float,
                            rows_per_sample: float = 1.0) -> float:
    """FLOPs per sample a sparse implementation of ``block`` would need (see module docstring).

    Args:
        block: the block.
        dense_flops: its shape-based FLOPs per sample (from :func:`count_flops`).
        active_fraction: its nonzero-gate ANR over the evaluated inputs, in [0, 1].
        rows_per_sample: gate rows (positions) per sample, P (1 for (B, d) inputs).

    Returns:
        Conditional FLOPs per sample (<= ``dense_flops`` for MID-L).

    Raises:
        ValueError: if ``active_fraction`` is outside [0, 1].
    """
    if not 0.0 <= active_fraction <= 1.0:
        raise ValueError(f"active_fraction={active_fraction} must lie in [0, 1]")
    rule = getattr(block, "conditional_flops", None)
    if callable(rule):
        return float(rule(dense_flops, active_fraction))
    if isinstance(block, MIDLayer):
        skipped = 2.0 * block.rank * block.dim * (1.0 - active_fraction) * rows_per_sample
        return dense_flops - skipped
    return dense_flops


def conditional_flops(model: nn.Module, report: FlopReport,
                      active_fractions: dict[str, float]) -> dict[str, object]:
    """Whole-model and per-block conditional FLOPs per sample.

    Args:
        model: the model ``report`` was counted on.
        report: from :func:`count_flops`.
        active_fractions: nonzero-gate ANR per block name over the evaluated inputs; blocks
            left out count as dense.

    Returns:
        ``{"total": float, "blocks": {name: float}}``: ``total`` is the dense total minus
        the work skipped in every block.
    """
    names = {id(m): n for n, m in model.named_modules()}
    blocks: dict[str, float] = {}
    saved = 0.0
    for block in blocks_of(model):
        name = names[id(block)]
        dense = report.blocks.get(name, 0.0)
        fraction = active_fractions.get(name)
        cond = dense if fraction is None else conditional_block_flops(
            block, dense, fraction, report.rows_per_sample.get(name, 1.0))
        blocks[name] = cond
        saved += dense - cond
    return {"total": report.total - saved, "blocks": blocks}


__all__ = ["FLOP_CONVENTION", "FlopReport", "conditional_block_flops", "conditional_flops",
           "count_flops"]
