"""Channel-wise MID-L for conv feature maps (the paper's open extension, Appendix C).

Pure PyTorch. Appendix C lists "extending [MID-L] to structured modules (e.g., channels,
heads)" as unexplored; this block gates whole channels: one gate per channel and sample, with
MID-L's two paths built from 1x1 convolutions, so it can sit inside a CNN's feature extractor
(``midl.backbones.CNN(channel_block=...)``) and not only in the head.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from midl.blocks._checks import check_dim, check_range
from midl.blocks.midl import (
    ESTIMATORS,
    Estimator,
    apply_mask,
    fp32_linear,
    lightweight_path,
    resolve_top_k,
    rich_path,
    top_k_mask,
)

_conv1x1 = functools.partial(nn.Conv2d, kernel_size=1)


class MIDLChannel(nn.Module):
    """y = alpha_hat[c] * F1(x) + (1 - alpha_hat[c]) * F2(x), one gate per channel and sample.

    - F1: Conv1x1(C, r) -> Conv1x1(r, C), r = C // 2 (MID-L's low-rank path, Section 4.4).
    - F2: Conv1x1(C, C) -> ReLU -> Conv1x1(C, C) (MID-L's rich path).
    - Gate: alpha = sigmoid(W_alpha GAP(x)), shape (B, C), from the global average pool of
      x over its spatial positions (as in squeeze-and-excitation; a per-pixel gate would be
      MID-L applied at every position instead).
    - Top-k over channels, the estimator (``"ste"``/``"masked"``) and gate dropout exactly as
      :class:`~midl.blocks.MIDLayer`.

    A 1x1 convolution is MID-L's Linear applied at every position, so for inputs (B, C)
    (read as (B, C, 1, 1)) the block is MID-L with F1/F2 as above; it therefore also fits the
    head slot (``block=midl_channel``).

    Args:
        dim: number of channels C.
        top_k: kept channels per sample: a float fraction of C in (0, 1] or an int in [1, C];
            default 0.5.
        rank: inner channels r of F1 in [1, C]; default C // 2.
        gate_dropout: dropout on alpha_hat in [0, 1); default 0.1.
        estimator: ``"ste"`` (default) or ``"masked"``.
        gate_bias: whether W_alpha has a bias; default True.

    Shapes:
        input (B, C, H, W) or (B, C); output of the same shape. ``last_alpha`` and
        ``last_mask`` have shape (B, C).

    Active neuron ratio (ANR): the fraction of channels with a nonzero sparse gate,
    averaged over samples, k / C.

    Raises:
        ValueError: for C < 1, ``rank`` outside [1, C], ``gate_dropout`` outside [0, 1), an
            unknown estimator, a top-k out of range, or an input that is not (B, C[, H, W]).
    """

    def __init__(self, dim: int, top_k: float | int = 0.5, rank: int | None = None,
                 gate_dropout: float = 0.1, estimator: Estimator = "ste",
                 gate_bias: bool = True) -> None:
        super().__init__()
        self.dim = check_dim("dim", dim)
        rank = dim // 2 if rank is None else rank
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= dim:
            raise ValueError(f"rank={rank!r} is out of range: F1's rank must lie in [1, {dim}]")
        check_range("gate_dropout", gate_dropout, 0.0, 1.0, high_open=True)
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator={estimator!r} is unknown: choose one of {ESTIMATORS}")
        self.rank = rank
        self.estimator = estimator
        self.k = resolve_top_k(top_k, dim, "top_k")
        self.f1 = lightweight_path(dim, rank, linear=_conv1x1)
        self.f2 = rich_path(dim, linear=_conv1x1)
        self.gate = nn.Linear(dim, dim, bias=gate_bias)
        self.gate_dropout = nn.Dropout(gate_dropout)
        self.last_alpha: Tensor | None = None
        self.last_mask: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x`` of shape (B, C, H, W) or (B, C); returns the same shape."""
        if x.dim() not in (2, 4) or x.shape[1] != self.dim:
            raise ValueError(f"MIDLChannel expects inputs of shape (B, {self.dim}, H, W) or "
                             f"(B, {self.dim}), got {tuple(x.shape)}")
        flat = x.dim() == 2
        if flat:
            x = x[:, :, None, None]
        alpha = torch.sigmoid(fp32_linear(self.gate, x.mean(dim=(2, 3))))  # float32 gate
        mask = top_k_mask(alpha.detach(), self.k)
        alpha_hat = self.gate_dropout(apply_mask(alpha, mask, self.estimator))
        self.last_alpha = alpha.detach()
        self.last_mask = mask.detach().bool()
        alpha_hat = alpha_hat[:, :, None, None]
        y = alpha_hat * self.f1(x) + (1.0 - alpha_hat) * self.f2(x)
        return y[:, :, 0, 0] if flat else y

    def active_neuron_ratio(self) -> Tensor | None:
        """ANR = mean of the channel mask over samples and channels (k / C); None before a
        forward pass."""
        if self.last_mask is None:
            return None
        return self.last_mask.float().mean()

    def extra_repr(self) -> str:
        return (f"channels={self.dim}, k={self.k}/{self.dim}, rank={self.rank}, "
                f"estimator={self.estimator!r}")
