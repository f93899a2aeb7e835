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

- Top-k interpolation blocks (a block with a ``last_mask`` and an ``f1`` ``nn.Sequential``:
  MID-L :class:`midl.blocks.MIDLayer`, its Gumbel variant, the channel-wise MID-L and the random
  top-k ablation), y = alpha_hat * F1(x) + (1 - alpha_hat) * F2(x): where alpha_hat = 0 the
  output is F2(x), so F1's last layer (Linear(r, d), or a 1x1 convolution for channels) need
  only produce the selected rows/channels. The gate, F1's first layer and the whole of F2 are
  still needed for every neuron (a sigmoid gate is < 1, so F2 never drops out). Skipped per
  sample: FLOPs(F1's last layer) * (1 - ANR), with ANR the nonzero-gate fraction over the
  evaluated inputs; for MID-L on (B, d) inputs that is 2 * r * (d - k).
- A block with a ``conditional_flops(dense_flops, active_fraction)`` method: its own rule.
- Any other block (dense baselines, Switch, whose counted FLOPs already cover only the routed
  expert): conditional = dense.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from midl.backbones import blocks_of

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


def skippable_module(block: nn.Module) -> nn.Module | None:
    """The layer a sparse implementation of ``block`` could run for selected rows only.

    Returns F1's last layer for top-k interpolation blocks (a ``last_mask`` attribute and an
    ``f1`` ``nn.Sequential``, see the module docstring), else ``None``.
    """
    f1 = getattr(block, "f1", None)
    if hasattr(block, "last_mask") and isinstance(f1, nn.Sequential) and len(f1) > 0:
        return f1[-1]
    return None


def conditional_block_flops(block: nn.Module, dense_flops: float, active_fraction: float,
                            skippable_flops: float = 0.0) -> float:
    """FLOPs per sample a sparse implementation of ``block`` would need (see module docstring).

    Args:
        block: the block.
        dense_flops: its shape-based FLOPs per sample (from :func:`count_flops`).
        active_fraction: its nonzero-gate ANR over the evaluated inputs, in [0, 1].
        skippable_flops: FLOPs per sample of :func:`skippable_module` (F1's last layer) in the
            dense count; ignored for blocks without one.

    Returns:
        Conditional FLOPs per sample: ``dense_flops - skippable_flops * (1 - active_fraction)``
        for top-k interpolation blocks, the block's own rule if it has a
        ``conditional_flops`` method, else ``dense_flops``.

    Raises:
        ValueError: if ``active_fraction`` is outside [0, 1].
    """
    if not 0.0 <= active_fraction <= 1.0:
        raise ValueError(f"active_fraction={active_fraction} must lie in [0, 1]")
    rule = getattr(block, "conditional_flops", None)
    if callable(rule):
        return float(rule(dense_flops, active_fraction))
    if skippable_module(block) is not None:
        return dense_flops - skippable_flops * (1.0 - active_fraction)
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
        skippable = skippable_module(block)
        skippable_flops = 0.0 if skippable is None else report.modules.get(names[id(skippable)],
                                                                            0.0)
        cond = dense if fraction is None else conditional_block_flops(
            block, dense, fraction, skippable_flops)
        blocks[name] = cond
        saved += dense - cond
    return {"total": report.total - saved, "blocks": blocks}


__all__ = ["FLOP_CONVENTION", "FlopReport", "conditional_block_flops", "conditional_flops",
           "count_flops", "skippable_module"]
