"""The MID-L block: Matrix-Interpolated Dropout Layer (Shaeri & Middel, arXiv 2505.11416).

Pure PyTorch: nothing here imports Lightning or Hydra, so the layer can be used on its own::

    from midl.blocks import MIDLayer
    layer = MIDLayer(dim=256, top_k=0.5)          # keep 50% of the gates per sample
    y = layer(torch.randn(64, 256))               # (B, d) -> (B, d)
    y = layer(torch.randn(8, 100, 256))           # (B, T, d) -> (B, T, d), one gate per position

Paper references: Section 3.1 (block architecture), Section 4.3 (forward and backward
formulation), Section 4.4 (implementation notes: F1 low-rank d -> d/2 -> d, F2 a two-layer MLP,
dropout p = 0.1 after the sparse gate, top-k fixed or annealed) and Appendix A (pseudo-code).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from midl.blocks._checks import check_choice, check_dim, check_int, check_range

Estimator = Literal["ste", "masked"]
ACTIVATIONS: dict[str | None, type[nn.Module]] = {None: nn.Identity, "relu": nn.ReLU,
                                                  "gelu": nn.GELU}
"""The activation phi applied after the mix (``activation``): none (Appendix A) or one of
these (Section 4.3's phi)."""
F2_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU}
"""F2's hidden activation (``f2_activation``): ReLU (Section 4.4) or GELU (a Transformer FFN)."""
ESTIMATORS: tuple[str, ...] = ("ste", "masked")
LinearFactory = Callable[[int, int], nn.Module]


def resolve_top_k(top_k: float | int, dim: int, name: str = "top_k") -> int:
    """Turn a top-k setting into a number of kept neurons.

    Args:
        top_k: a fraction of ``dim`` in (0, 1] given as a float (``0.5`` keeps half, ``1.0``
            keeps all), or a count in [1, dim] given as an int (``1`` keeps one neuron).
        dim: the number of neurons d.
        name: the setting's name, used in error messages.

    Returns:
        k, an int in [1, dim]. A fraction is rounded to the nearest count, at least 1.

    Raises:
        TypeError: if ``top_k`` is not an int or a float (bool is refused).
        ValueError: if a fraction is outside (0, 1] or a count outside [1, dim].
    """
    if isinstance(top_k, bool) or not isinstance(top_k, (int, float)):
        raise TypeError(f"{name} must be a fraction in (0, 1] or an int in [1, {dim}], "
                        f"got {top_k!r} of type {type(top_k).__name__}")
    if isinstance(top_k, int):
        if not 1 <= top_k <= dim:
            raise ValueError(f"{name}={top_k} is out of range: an integer top-k must lie in "
                             f"[1, {dim}] (d={dim}); use a float for a fraction of d")
        return top_k
    if not (0.0 < top_k <= 1.0) or math.isnan(top_k):
        raise ValueError(f"{name}={top_k} is out of range: a fractional top-k must lie in (0, 1]")
    return max(1, min(dim, round(top_k * dim)))


def top_k_mask(alpha: Tensor, k: int) -> Tensor:
    """Hard top-k mask M_top-k(alpha) of Section 4.3.

    Args:
        alpha: gate values, shape (..., d).
        k: number of entries kept per row, 1 <= k <= d.

    Returns:
        A tensor of alpha's shape and dtype with exactly k ones per row (along the last
        dimension) at the k largest entries, zeros elsewhere. Not differentiable.
    """
    indices = alpha.topk(k, dim=-1, sorted=False).indices
    return torch.zeros_like(alpha).scatter_(-1, indices, 1.0)


def fp32_linear(layer: nn.Linear, x: Tensor) -> Tensor:
    """``layer(x)`` computed in float32 with autocast disabled: the gate logits of the top-k blocks.

    Under bf16 autocast a gate computed in bf16 keeps 8 significant bits, and sigmoid outputs
    crowd near 0.5, so the top-k selection would tie often and differ from the float32 one.
    Computing the gate logits (and what follows: sigmoid, top-k) in float32 keeps the
    selection that of a float32 model; the paths F1 and F2 still run in the autocast dtype.
    Gradients flow back to ``x`` and the layer's parameters through the casts.

    The layer is called as a module (its hooks run) on ``x`` cast to the layer's weight dtype:
    float32 for a float32 model under autocast, the model's own dtype otherwise.

    Args:
        layer: an ``nn.Linear``.
        x: input, shape (..., in_features), any floating dtype.

    Returns:
        tensor of shape (..., out_features) in the layer's weight dtype (float32 under
        autocast of a float32 model).
    """
    if not torch.is_autocast_enabled(x.device.type):  # the plain path: no casts, no context
        return layer(x)
    with torch.autocast(device_type=x.device.type, enabled=False):
        return layer(x.to(layer.weight.dtype))


def lightweight_path(dim: int, rank: int, linear: LinearFactory = nn.Linear) -> nn.Sequential:
    """MID-L's F1 (Section 4.4): the low-rank map ``linear(dim, rank) -> linear(rank, dim)``.

    ``linear`` builds one layer from (in, out) sizes; ``nn.Linear`` acts on (..., d) inputs, a
    1x1 convolution (``functools.partial(nn.Conv2d, kernel_size=1)``) on (B, C, H, W) maps.
    """
    return nn.Sequential(linear(dim, rank), linear(rank, dim))


def rich_path(dim: int, linear: LinearFactory = nn.Linear, hidden: int | None = None,
              activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """MID-L's F2 (Section 4.4): ``linear(dim, hidden) -> activation -> linear(hidden, dim)``,
    by default ``hidden = dim`` and ReLU (the paper's two-layer MLP); a Transformer's
    feed-forward sub-layer is the same shape with ``hidden = 4 dim`` and GELU."""
    hidden = dim if hidden is None else hidden
    return nn.Sequential(linear(dim, hidden), activation(), linear(hidden, dim))


def apply_mask(alpha: Tensor, mask: Tensor, estimator: Estimator = "ste") -> Tensor:
    """Sparse gate alpha_hat = alpha * mask with the gradient rule of ``estimator``.

    ``"ste"``: forward value alpha * mask, backward as if the selection were the identity (every
    gate gets gradient); ``"masked"``: the mask is a constant (only kept gates get gradient).
    ``mask`` is a 0/1 tensor of alpha's shape (or broadcastable to it).
    """
    alpha_hat = alpha * mask
    if estimator == "ste":
        # Forward value alpha * mask, backward gradient as if the selection were identity.
        alpha_hat = alpha + (alpha_hat - alpha).detach()
    return alpha_hat


class MIDLayer(nn.Module):
    """MID-L block: y = alpha_hat * F1(x) + (1 - alpha_hat) * F2(x), per sample and neuron.

    Forward (Sections 3.1, 4.3, 4.4; Appendix A):

    - F1 (lightweight): Linear(d, r) -> Linear(r, d), low rank, r = d/2 by default.
    - F2 (rich): Linear(d, d) -> ReLU -> Linear(d, d).
    - Gate: alpha = sigmoid(W_alpha x), shape (..., d), one gate per neuron and sample
      (per position for sequence inputs). Always computed in float32, also under bf16/fp16
      autocast (see :func:`fp32_linear`), so the top-k selection does not tie on rounded gates.
    - Sparsity: alpha_hat = alpha * M_top-k(alpha) keeps the k largest gates per row.
    - Regularisation: ``nn.Dropout(gate_dropout)`` on alpha_hat in training (Section 4.4,
      p = 0.1). It is PyTorch's inverted dropout, so kept gates are scaled by 1 / (1 - p) in
      training and may slightly exceed 1; in eval mode it is the identity.

    Gradient through the top-k selection (``estimator``):

    - ``"ste"`` (straight-through, Section 3.1): the hard mask is applied in the forward pass
      while the backward pass treats the selection as the identity, so dL/dalpha reaches every
      gate, kept or not.
    - ``"masked"`` (Appendix A's pseudo-code, ``alpha * mask``): the mask is a constant, so only
      kept gates receive gradient. With F1 = W1 x + b1 and F2 = W2 x + b2 this gives exactly
      Section 4.3's dL/dW1 = diag(alpha_hat) dL/dz x^T and dL/dW2 = diag(1 - alpha_hat) dL/dz x^T.

    Top-k may be fixed or annealed (Section 4.4): with ``top_k_start`` set, k moves linearly
    from ``top_k_start`` to ``top_k`` over ``anneal_epochs`` epochs; call :meth:`set_epoch`
    at the start of each epoch (the Lightning module does).

    After every forward pass the layer keeps, detached, ``last_alpha`` (the dense gate alpha,
    shape (..., d)) and ``last_mask`` (the top-k mask as bool, shape (..., d)), so metrics such
    as the active neuron ratio can be read without a second pass.

    Args:
        dim: feature size d of input and output.
        top_k: kept gates per sample: a float fraction of d in (0, 1] or an int count in
            [1, d]. Default 0.5 (Table 12).
        rank: inner size r of F1; default d // 2 (Section 4.4).
        gate_dropout: dropout probability on alpha_hat in [0, 1); default 0.1 (Table 12).
        estimator: ``"ste"`` (default) or ``"masked"``, see above.
        top_k_start: optional start value of an annealed top-k, same forms as ``top_k``.
        anneal_epochs: epochs over which top-k moves from ``top_k_start`` to ``top_k``.
        gate_bias: whether W_alpha has a bias (Appendix A's ``nn.Linear`` has one).
        fused: compute the three projections that read x (W_alpha, F1's down-projection, F2's
            first layer) as one matrix multiplication with concatenated weights, and the
            interpolation as one ``torch.lerp``. Same parameters, state_dict and results (to
            float rounding) as the reference path (``fused=False``, the default), which follows
            the paper's formula term by term. The per-call weight concatenation (and the split
            of its weight gradient) can cost what the single GEMM saves on a CPU, hence the
            default; the option is there for devices where kernel launches dominate
            (``python -m midl.bench`` times both; results in ``results/bench/``).
            Under autocast the reference path runs (the gate must stay in float32).
        activation: phi applied to the mixed output: ``None`` (default; Appendix A's
            pseudo-code returns the mix itself), ``"relu"`` or ``"gelu"`` (Section 4.3 writes
            y = phi(alpha_hat * F1(x) + (1 - alpha_hat) * F2(x))).
        f2_expansion: F2's hidden width as a multiple of d (default 1: the paper's
            Linear(d, d) -> ReLU -> Linear(d, d)); 4 with ``f2_activation="gelu"`` makes F2 a
            Transformer's feed-forward sub-layer Linear(d, 4d) -> GELU -> Linear(4d, d)
            (``configs/block/midl_ffn.yaml``). F1 and the gate keep their sizes.
        f2_activation: F2's hidden activation, ``"relu"`` (default) or ``"gelu"``.

    Shapes:
        input (B, d) or (B, T, d), or any (..., d); output of the same shape.

    Raises:
        ValueError: for d < 1, r outside [1, d], gate_dropout outside [0, 1), an unknown
            estimator or activation, a negative ``anneal_epochs``, or a top-k out of range
            (see :func:`resolve_top_k`); the message names the setting and the allowed range.
    """

    def __init__(
        self,
        dim: int,
        top_k: float | int = 0.5,
        rank: int | None = None,
        gate_dropout: float = 0.1,
        estimator: Estimator = "ste",
        top_k_start: float | int | None = None,
        anneal_epochs: int = 0,
        gate_bias: bool = True,
        fused: bool = False,
        activation: str | None = None,
        f2_expansion: int = 1,
        f2_activation: str = "relu",
    ) -> None:
        super().__init__()
        check_dim("dim", dim)
        rank = check_int("rank", dim // 2 if rank is None else rank, 1, dim)  # F1's rank
        check_range("gate_dropout", gate_dropout, 0.0, 1.0, high_open=True)
        check_choice("estimator", estimator, ESTIMATORS)
        check_int("anneal_epochs", anneal_epochs, 0)
        self.dim = dim
        self.rank = rank
        self.estimator = estimator
        self.k_final = resolve_top_k(top_k, dim, "top_k")
        self.k_start = (self.k_final if top_k_start is None
                        else resolve_top_k(top_k_start, dim, "top_k_start"))
        self.anneal_epochs = anneal_epochs
        self.k = self.k_start if anneal_epochs > 0 else self.k_final
        self.fused = bool(fused)
        check_choice("activation", activation, tuple(ACTIVATIONS))  # None: no phi after the mix
        self.activation = activation
        self.phi = ACTIVATIONS[activation]()

        self.f1 = lightweight_path(dim, rank)
        check_int("f2_expansion", f2_expansion, 1)
        check_choice("f2_activation", f2_activation, tuple(F2_ACTIVATIONS))
        self.f2 = rich_path(dim, hidden=f2_expansion * dim,
                            activation=F2_ACTIVATIONS[f2_activation])
        self.gate = nn.Linear(dim, dim, bias=gate_bias)
        self.gate_dropout = nn.Dropout(gate_dropout)

        self.last_alpha: Tensor | None = None
        self.last_mask: Tensor | None = None

    def set_epoch(self, epoch: int) -> None:
        """Set k for ``epoch`` (0-based) of a linear top-k annealing schedule.

        k = round(k_start + (k_final - k_start) * min(epoch / anneal_epochs, 1)); without
        annealing k stays at its final value.
        """
        if self.anneal_epochs == 0:
            return
        progress = min(max(epoch, 0) / self.anneal_epochs, 1.0)
        self.k = round(self.k_start + (self.k_final - self.k_start) * progress)

    def sparse_gate(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the dense gate, the top-k mask and the sparse gate for input ``x``.

        Args:
            x: input, shape (..., d).

        Returns:
            ``(alpha, mask, alpha_hat)``, each of shape (..., d): alpha = sigmoid(W_alpha x),
            the hard top-k mask (0/1 floats), and alpha_hat = alpha * mask with the gradient
            rule of ``self.estimator`` (before gate dropout).
        """
        alpha = torch.sigmoid(fp32_linear(self.gate, x))  # float32 under autocast too
        mask = top_k_mask(alpha.detach(), self.k)
        return alpha, mask, apply_mask(alpha, mask, self.estimator)

    def forward(self, x: Tensor) -> Tensor:
        """Apply MID-L to ``x`` of shape (..., d); returns a tensor of the same shape."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"{type(self).__name__} expects inputs of shape (..., {self.dim}), "
                             f"got {tuple(x.shape)}")
        if (self.fused and self._fusable()
                and not torch.is_autocast_enabled(x.device.type)):  # fp32 gate: reference path
            y = self._forward_fused(x)
        else:
            y = self._forward_reference(x)
        return y if self.activation is None else self.phi(y)  # no call for Appendix A's form

    def _forward_reference(self, x: Tensor) -> Tensor:
        """The paper's formula term by term: five separate Linear calls."""
        alpha, mask, alpha_hat = self.sparse_gate(x)
        alpha_hat = self.gate_dropout(alpha_hat)
        self.last_alpha = alpha.detach()
        self.last_mask = mask.detach().bool()
        return alpha_hat * self.f1(x) + (1.0 - alpha_hat) * self.f2(x)

    def _fusable(self) -> bool:
        """Whether the fused path applies: the stock gate and paths, and this class's gate rule
        (a subclass overriding :meth:`sparse_gate` keeps its own, via the reference path)."""
        if type(self).sparse_gate is not MIDLayer.sparse_gate or "sparse_gate" in vars(self):
            return False
        f1, f2 = self.f1, self.f2
        return (type(self.gate) is nn.Linear
                and type(f1) is nn.Sequential and len(f1) == 2
                and type(f2) is nn.Sequential and len(f2) == 3
                and all(type(m) is nn.Linear for m in (f1[0], f1[1], f2[0], f2[2]))
                and type(f2[1]) is nn.ReLU)

    def _forward_fused(self, x: Tensor) -> Tensor:
        """Same function as :meth:`_forward_reference`, with one GEMM for everything reading x.

        [l | h1 | h2] = x [W_alpha | W_f1a | W_f2a]^T + [b_alpha | b_f1a | b_f2a]; the
        concatenation copies the weights once per call (d x (2d + r), about a third of one
        GEMM's memory traffic at batch 64); its backward splits the weight gradient again.
        y = lerp(F2(x), F1(x), alpha_hat) = F2 + alpha_hat (F1 - F2), the interpolation in one
        kernel.
        """
        gate, down1, up2 = self.gate, self.f1[0], self.f2[0]
        weight = torch.cat((gate.weight, down1.weight, up2.weight))
        biases = (gate.bias, down1.bias, up2.bias)
        if any(b is None for b in biases):
            bias = None if all(b is None for b in biases) else torch.cat([
                b if b is not None else m.weight.new_zeros(m.out_features)
                for b, m in zip(biases, (gate, down1, up2), strict=True)])
        else:
            bias = torch.cat(biases)
        logits, h1, h2 = F.linear(x, weight, bias).split(
            (gate.out_features, down1.out_features, up2.out_features), dim=-1)
        alpha = torch.sigmoid(logits)
        mask = top_k_mask(alpha.detach(), self.k)
        alpha_hat = self.gate_dropout(apply_mask(alpha, mask, self.estimator))
        self.last_alpha = alpha.detach()
        self.last_mask = mask.bool()
        f1 = self.f1[1](h1)
        f2 = self.f2[2](torch.relu(h2))
        return torch.lerp(f2, f1, alpha_hat)

    def active_neuron_ratio(self) -> Tensor | None:
        """Active neuron ratio (ANR) of the last forward pass, as a fraction in [0, 1].

        Definition used here: the fraction of neurons whose sparse gate alpha_hat is nonzero,
        i.e. the mean of the top-k mask over samples (and positions) and neurons. It equals
        k / d by construction. ``None`` before the first forward pass.
        """
        if self.last_mask is None:
            return None
        return self.last_mask.float().mean()

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, k={self.k}/{self.dim}, rank={self.rank}, "
                f"estimator={self.estimator!r}, fused={self.fused}, "
                f"activation={self.activation!r}")
