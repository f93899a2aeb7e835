"""Active neuron ratio (ANR) and per-neuron activation frequency of gated blocks.

Two ANR definitions are reported, and every table column must say which one it uses:

- ``anr`` (*nonzero-gate ANR*): the fraction of neurons whose sparse gate alpha_hat is nonzero,
  i.e. the mean of the top-k mask. For MID-L this equals k / d by construction (0.5 with
  top-k 50%). This is what each block's ``active_neuron_ratio()`` returns.
- ``anr_tau`` (*threshold ANR*): the fraction of neurons whose sparse gate alpha_hat exceeds a
  threshold tau (default 0.5). It can lie below k / d, which is the only way a figure such as
  the paper's 41.8% at top-k 50% (Table 6) can arise.

Both are averaged over test inputs (and over positions for sequence inputs). The gate is read
from a block's ``last_alpha`` (dense gate alpha, (..., d)) and ``last_mask`` (bool top-k mask,
(..., d)) after a forward pass in eval mode, where alpha_hat = alpha * mask (gate dropout is the
identity). Blocks without a learned dense gate (dense baselines such as ``DropoutBlock``, the
fixed-alpha ablation with its constant gate 0.5, or a random top-k that keeps only
``last_mask``) have nothing to threshold: the threshold ANR then falls back to the
nonzero-gate ANR, i.e. the block's own ``active_neuron_ratio()`` (1.0 for dense layers and
fixed alpha, i.e. 100%; k / d for random top-k). Their constant gate 0.5 is not above
tau = 0.5, so the reports say so next to the column.
"""

from __future__ import annotations

from torch import Tensor, nn

DEFAULT_TAU = 0.5


def gate_tensors(block: nn.Module) -> tuple[Tensor | None, Tensor] | None:
    """The last forward pass's gate of ``block``, flattened to rows of neurons.

    Args:
        block: a block (see :mod:`midl.blocks`).

    Returns:
        ``(alpha, mask)`` of shape (N, d) where N counts samples times positions: the dense
        gate (float; ``None`` for blocks that keep only a mask, such as a random top-k) and
        the top-k mask (bool); ``None`` if the block exposes no ``last_mask`` or has not run.
    """
    mask = getattr(block, "last_mask", None)
    if mask is None:
        return None
    d = mask.shape[-1]
    alpha = getattr(block, "last_alpha", None)
    if alpha is not None:
        alpha = alpha.detach().reshape(-1, d)
    return alpha, mask.detach().reshape(-1, d).bool()


def block_anr(block: nn.Module, tau: float | None = None) -> Tensor | None:
    """ANR of ``block``'s last forward pass, a scalar fraction in [0, 1].

    Args:
        block: a block with ``active_neuron_ratio()``.
        tau: ``None`` for the nonzero-gate ANR (fraction of alpha_hat != 0); a float for the
            threshold ANR (fraction of alpha_hat = alpha * mask > tau).

    Returns:
        A 0-d float tensor, or ``None`` if the block reports nothing. Blocks without a dense
        gate ``last_alpha`` report their ``active_neuron_ratio()`` under both definitions.
    """
    gate = gate_tensors(block)
    if tau is None or gate is None or gate[0] is None:
        ratio = block.active_neuron_ratio()
        return None if ratio is None else ratio.detach().float()
    alpha, mask = gate
    return ((alpha * mask) > tau).float().mean()


class GateStatistics:
    """Accumulates one block's gate over many batches (call :meth:`update` after each forward).

    Counts, per neuron, the rows (inputs, or input positions) in which the neuron is selected
    (alpha_hat != 0) and in which alpha_hat > tau.

    Args:
        tau: threshold of the threshold ANR, default 0.5.
    """

    def __init__(self, tau: float = DEFAULT_TAU) -> None:
        self.tau = tau
        self.rows = 0
        self.selected: Tensor | None = None
        self.above_tau: Tensor | None = None
        self.fallback_sum = 0.0
        self.fallback_updates = 0

    def update(self, block: nn.Module) -> None:
        """Add ``block``'s last forward pass (rows N = samples x positions)."""
        gate = gate_tensors(block)
        if gate is None:
            ratio = block.active_neuron_ratio()
            if ratio is not None:
                # Dense blocks have no per-row gate: average their reported ratio per update.
                self.fallback_sum += float(ratio)
                self.fallback_updates += 1
            return
        alpha, mask = gate
        selected = mask.sum(0).double().cpu()
        # Without a dense gate there is nothing to threshold: count the selected neurons.
        above = selected if alpha is None else ((alpha * mask) > self.tau).sum(0).double().cpu()
        self.selected = selected if self.selected is None else self.selected + selected
        self.above_tau = above if self.above_tau is None else self.above_tau + above
        self.rows += mask.shape[0]

    @property
    def has_gate(self) -> bool:
        """Whether per-neuron gate statistics were seen (False for dense baselines)."""
        return self.selected is not None

    def compute(self) -> dict[str, object]:
        """The accumulated statistics.

        Returns:
            ``{"anr": float, "anr_tau": float, "tau": float, "rows": int | None,
            "frequency": list[float] | None}``: both ANRs as fractions in [0, 1], and the per-neuron
            activation frequency (fraction of rows in which each of the d neurons is selected;
            ``None`` for blocks without a gate, whose neurons are all always active).

        Raises:
            RuntimeError: if nothing was accumulated.
        """
        if self.selected is None:
            if self.fallback_updates == 0:
                raise RuntimeError("GateStatistics.compute() called before any update()")
            ratio = self.fallback_sum / self.fallback_updates
            return {"anr": ratio, "anr_tau": ratio, "tau": self.tau, "rows": None,
                    "frequency": None}
        assert self.above_tau is not None
        frequency = self.selected / self.rows
        return {"anr": float(frequency.mean()),
                "anr_tau": float((self.above_tau / self.rows).mean()),
                "tau": self.tau, "rows": self.rows, "frequency": frequency.tolist()}


def activation_frequency(mask: Tensor) -> Tensor:
    """Per-neuron activation frequency from a stack of top-k masks.

    Args:
        mask: bool or 0/1 tensor of shape (..., d).

    Returns:
        Float tensor (d,): the fraction of rows (all leading dimensions) in which each neuron
        is selected.
    """
    return mask.reshape(-1, mask.shape[-1]).float().mean(0)


__all__ = ["DEFAULT_TAU", "GateStatistics", "activation_frequency", "block_anr", "gate_tensors"]
