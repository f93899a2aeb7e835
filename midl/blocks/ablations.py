"""MID-L ablation blocks of Tables 4 and 9: F1 only, F2 only, fixed alpha, random top-k.

Pure PyTorch. Each block reuses MID-L's paths (:func:`~midl.blocks.midl.lightweight_path`,
:func:`~midl.blocks.midl.rich_path`) and top-k helpers and changes one thing, so that each
ablation is one ``block=`` choice. The Gumbel-softmax gating ablation is
:class:`~midl.blocks.gumbel.GumbelMIDLayer`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from midl.blocks._checks import check_dim, check_range
from midl.blocks.midl import lightweight_path, resolve_top_k, rich_path, top_k_mask


def _rank(dim: int, rank: int | None) -> int:
    rank = dim // 2 if rank is None else rank
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= dim:
        raise ValueError(f"rank={rank!r} is out of range: F1's rank must lie in [1, {dim}]")
    return rank


def _check_input(block: nn.Module, x: Tensor) -> None:
    if x.shape[-1] != block.dim:
        raise ValueError(f"{type(block).__name__} expects inputs of shape (..., {block.dim}), "
                         f"got {tuple(x.shape)}")


class F1Only(nn.Module):
    """Ablation "F1 only": y = F1(x), MID-L's lightweight path alone (Tables 4 and 9).

    F1 = Linear(d, r) -> Linear(r, d), r = d // 2 by default (Section 4.4).

    Args:
        dim: feature size d of input and output.
        rank: inner size r of F1 in [1, d]; default d // 2.

    Shapes: input (..., d), output (..., d).

    Active neuron ratio (ANR): 1.0, every neuron is computed (100% in Tables 4 and 9).

    Raises:
        ValueError: if ``dim`` < 1 or ``rank`` is outside [1, d].
    """

    def __init__(self, dim: int, rank: int | None = None) -> None:
        super().__init__()
        self.dim = check_dim("dim", dim)
        self.rank = _rank(dim, rank)
        self.f1 = lightweight_path(dim, self.rank)

    def forward(self, x: Tensor) -> Tensor:
        """Apply F1 to ``x`` of shape (..., d)."""
        _check_input(self, x)
        return self.f1(x)

    def active_neuron_ratio(self) -> Tensor:
        """ANR = 1.0: every neuron is computed for every input."""
        return torch.ones(())


class F2Only(nn.Module):
    """Ablation "F2 only": y = F2(x), MID-L's rich path alone (Tables 4 and 9).

    F2 = Linear(d, d) -> ReLU -> Linear(d, d) (Section 4.4).

    Args:
        dim: feature size d of input and output.

    Shapes: input (..., d), output (..., d).

    Active neuron ratio (ANR): 1.0, every neuron is computed (100% in Tables 4 and 9).

    Raises:
        ValueError: if ``dim`` < 1.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = check_dim("dim", dim)
        self.f2 = rich_path(dim)

    def forward(self, x: Tensor) -> Tensor:
        """Apply F2 to ``x`` of shape (..., d)."""
        _check_input(self, x)
        return self.f2(x)

    def active_neuron_ratio(self) -> Tensor:
        """ANR = 1.0: every neuron is computed for every input."""
        return torch.ones(())


class _Interpolation(nn.Module):
    """MID-L's two paths and interpolation with a gate given by a subclass (no gate network)."""

    def __init__(self, dim: int, alpha: float, rank: int | None, gate_dropout: float) -> None:
        super().__init__()
        self.dim = check_dim("dim", dim)
        self.alpha = check_range("alpha", alpha, 0.0, 1.0)
        self.rank = _rank(dim, rank)
        check_range("gate_dropout", gate_dropout, 0.0, 1.0, high_open=True)
        self.f1 = lightweight_path(dim, self.rank)
        self.f2 = rich_path(dim)
        self.gate_dropout = nn.Dropout(gate_dropout)
        self.last_mask: Tensor | None = None

    def interpolate(self, x: Tensor, alpha_hat: Tensor) -> Tensor:
        """alpha_hat * F1(x) + (1 - alpha_hat) * F2(x), gate dropout on alpha_hat in training."""
        alpha_hat = self.gate_dropout(alpha_hat)
        return alpha_hat * self.f1(x) + (1.0 - alpha_hat) * self.f2(x)


class FixedAlpha(_Interpolation):
    """Ablation "fixed alpha = 0.5": y = 0.5 F1(x) + 0.5 F2(x), no gate network, no top-k.

    Every neuron of every sample gets the same constant gate ``alpha``. MID-L's gate dropout
    (p = 0.1, Section 4.4) is kept on the constant gate in training, so the only change from
    MID-L is the missing gate network and top-k; in eval mode y = alpha F1 + (1 - alpha) F2.

    Args:
        dim: feature size d of input and output.
        alpha: the constant gate in [0, 1]; default 0.5 (Tables 4 and 9).
        rank: inner size r of F1 in [1, d]; default d // 2.
        gate_dropout: dropout on the gate in [0, 1); default 0.1 (as MID-L).

    Shapes: input (..., d), output (..., d).

    Active neuron ratio (ANR): the fraction of neurons with a nonzero gate, as for MID-L; with
    no top-k every gate is ``alpha`` > 0, so ANR = 1.0 (0.0 for ``alpha=0``). Tables 4 and 9
    list 50% for this variant, which this definition does not reproduce: the paper does not
    say how it counted.

    Raises:
        ValueError: if ``dim`` < 1, ``alpha`` is outside [0, 1], ``rank`` outside [1, d], or
            ``gate_dropout`` outside [0, 1).
    """

    def __init__(self, dim: int, alpha: float = 0.5, rank: int | None = None,
                 gate_dropout: float = 0.1) -> None:
        super().__init__(dim, alpha, rank, gate_dropout)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x`` of shape (..., d)."""
        _check_input(self, x)
        alpha_hat = torch.full_like(x, self.alpha)
        return self.interpolate(x, alpha_hat)

    def active_neuron_ratio(self) -> Tensor:
        """ANR = 1.0 if alpha > 0 else 0.0 (fraction of neurons with a nonzero gate)."""
        return torch.tensor(1.0 if self.alpha > 0 else 0.0)


class RandomTopK(_Interpolation):
    """Ablation "no alpha gating (random top-k)": a uniformly random top-k mask per sample.

    alpha_hat = ``alpha`` * M, where M has exactly k ones per row (per sample, and per position
    for sequences) at a uniformly random k-subset of the d neurons, drawn afresh at every
    forward pass, in training and in eval (Section 5.3: "a fixed random Top-k mask per sample
    without the use of the learned alpha gating vector"). Then, as in MID-L, gate dropout and
    y = alpha_hat * F1(x) + (1 - alpha_hat) * F2(x): kept neurons mix both paths with weight
    ``alpha``, the others use F2 alone.

    Design choice: the paper does not say which gate value kept neurons get; we use 0.5, the
    mean of a sigmoid gate and the value of the fixed-alpha ablation.

    Args:
        dim: feature size d of input and output.
        top_k: kept neurons per row: a float fraction of d in (0, 1] or an int count in
            [1, d]; default 0.5 (Table 4's top-k = 50%).
        alpha: gate value of kept neurons in [0, 1]; default 0.5.
        rank: inner size r of F1 in [1, d]; default d // 2.
        gate_dropout: dropout on alpha_hat in [0, 1); default 0.1 (as MID-L).

    Shapes: input (..., d), output (..., d). After each pass ``last_mask`` (bool, (..., d))
    holds the mask drawn.

    Active neuron ratio (ANR): the mean of the mask, k / d (as for MID-L).

    Raises:
        ValueError/TypeError: for ``dim`` < 1, a top-k out of range (see
            :func:`~midl.blocks.midl.resolve_top_k`), ``alpha`` outside [0, 1], ``rank``
            outside [1, d], or ``gate_dropout`` outside [0, 1).
    """

    def __init__(self, dim: int, top_k: float | int = 0.5, alpha: float = 0.5,
                 rank: int | None = None, gate_dropout: float = 0.1) -> None:
        super().__init__(dim, alpha, rank, gate_dropout)
        self.k = resolve_top_k(top_k, dim, "top_k")

    def random_mask(self, x: Tensor) -> Tensor:
        """A 0/1 float32 mask of x's shape with exactly k ones per row, at uniformly random
        places (float32 scores also under autocast: bf16 uniforms would tie)."""
        return top_k_mask(torch.rand(x.shape, device=x.device), self.k)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x`` of shape (..., d)."""
        _check_input(self, x)
        mask = self.random_mask(x)
        self.last_mask = mask.bool()
        return self.interpolate(x, self.alpha * mask)

    def active_neuron_ratio(self) -> Tensor | None:
        """ANR = mean of the last mask (k / d); None before the first pass."""
        if self.last_mask is None:
            return None
        return self.last_mask.float().mean()

    def extra_repr(self) -> str:
        return f"dim={self.dim}, k={self.k}/{self.dim}, alpha={self.alpha}, rank={self.rank}"
