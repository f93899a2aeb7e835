"""Switch feed-forward baseline block (Fedus, Zoph & Shazeer 2022, "Switch Transformers", JMLR).

Pure PyTorch. A mixture of E feed-forward experts with top-1 routing; every sample (or every
position of a sequence) is one token.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from midl.blocks._checks import check_dim, check_range


class SwitchBlock(nn.Module):
    """Switch FFN layer: top-1 routed experts with a capacity limit and a load-balancing loss.

    Forward (Fedus et al. 2022, Section 2.1-2.2), for N tokens x_n (all leading dims flattened):

    - Router in float32 (selective precision, Section 2.4): p(x) = softmax(W_r x), no bias;
      expert i(x) = argmax p(x).
    - Expert capacity C = max(1, floor(capacity_factor * N / E)) tokens per expert
      (``eval_capacity_factor`` in eval mode). Tokens are served in order; a token beyond its
      expert's capacity overflows.
    - Routed token: y = x + p_i(x) * E_i(x) with E_i = Linear(d, d_ff) -> ReLU -> Linear(d_ff, d),
      d_ff = ``ffn_mult`` * d (Switch layers sit in a residual branch). Overflow token: y = x,
      passed through unchanged (Section 2.2: "passed to the next layer through the residual
      connection"). With ``residual=False`` a routed token gives p_i(x) * E_i(x) instead, and
      overflow still gives x.

    Auxiliary loss (:meth:`aux_loss`, from the last forward pass)::

        coef * E * sum_i f_i * P_i  +  z_loss_coef * mean_n(logsumexp(W_r x_n)^2)

    f_i: fraction of tokens whose argmax is expert i (before capacity), P_i: mean router
    probability of expert i. The first term is ``coef`` for perfectly uniform routing (its
    minimum) and up to ``coef * E`` when routing collapses onto one expert. The second is the
    optional router z-loss of ST-MoE (Zoph et al. 2022), off by default.

    Args:
        dim: feature size d of input and output.
        num_experts: E >= 1; default 8.
        capacity_factor: capacity factor in training, > 0; default 1.25 (Switch's default).
        eval_capacity_factor: capacity factor in eval mode, > 0; default 2.0 (Mesh TensorFlow's
            ``capacity_factor_eval``).
        ffn_mult: expert hidden size d_ff = ffn_mult * d, >= 1; default 4 (T5/Switch d_ff = 4d).
        coef: load-balancing coefficient, >= 0; default 0.01.
        z_loss_coef: router z-loss coefficient, >= 0; default 0.0 (off; ST-MoE uses 1e-3).
        residual: add the expert output to x for routed tokens; default True.

    Shapes:
        input (..., d), output (..., d).

    Active neuron ratio (ANR): the fraction of expert hidden units computed per token,
    averaged over tokens: a routed token uses 1 of E experts, an overflow token none, so
    ANR = (routed tokens / N) / E (at most 1/E = 0.125 for the defaults). Expert utilisation
    (fraction of tokens each expert processed, after capacity) is :meth:`expert_utilisation`.

    Raises:
        ValueError: if ``dim``, ``num_experts`` or ``ffn_mult`` is not a positive int, a
            capacity factor is <= 0, or a coefficient is negative.
    """

    def __init__(self, dim: int, num_experts: int = 8, capacity_factor: float = 1.25,
                 eval_capacity_factor: float = 2.0, ffn_mult: int = 4, coef: float = 0.01,
                 z_loss_coef: float = 0.0, residual: bool = True) -> None:
        super().__init__()
        self.dim = check_dim("dim", dim)
        self.num_experts = check_dim("num_experts", num_experts)
        self.capacity_factor = check_range("capacity_factor", capacity_factor, 0.0, math.inf,
                                           low_open=True)
        self.eval_capacity_factor = check_range("eval_capacity_factor", eval_capacity_factor,
                                                0.0, math.inf, low_open=True)
        hidden = check_dim("ffn_mult", ffn_mult) * dim
        self.coef = check_range("coef", coef, 0.0, math.inf)
        self.z_loss_coef = check_range("z_loss_coef", z_loss_coef, 0.0, math.inf)
        self.residual = residual
        self.router = nn.Linear(dim, num_experts, bias=False)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
            for _ in range(num_experts))
        self._aux: Tensor | None = None
        self.last_routed: Tensor | None = None       # (N,) bool: token processed by an expert
        self.last_expert_index: Tensor | None = None  # (N,) long: argmax expert of each token

    def capacity(self, num_tokens: int) -> int:
        """Tokens each expert may process for a batch of ``num_tokens`` tokens."""
        factor = self.capacity_factor if self.training else self.eval_capacity_factor
        return max(1, math.floor(factor * num_tokens / self.num_experts))

    @staticmethod
    def load_balancing_loss(probs: Tensor, expert_index: Tensor, num_experts: int) -> Tensor:
        """E * sum_i f_i P_i for router probabilities (N, E) and argmax indices (N,)."""
        f = F.one_hot(expert_index, num_experts).float().mean(0)
        p_mean = probs.float().mean(0)
        return num_experts * (f * p_mean).sum()

    def forward(self, x: Tensor) -> Tensor:
        """Apply the layer to ``x`` of shape (..., d); returns the same shape."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"SwitchBlock expects inputs of shape (..., {self.dim}), "
                             f"got {tuple(x.shape)}")
        tokens = x.reshape(-1, self.dim)
        n = tokens.shape[0]
        with torch.autocast(device_type=x.device.type, enabled=False):
            logits = F.linear(tokens.float(), self.router.weight.float())
            probs = logits.softmax(dim=-1)
        gate, expert_index = probs.max(dim=-1)
        one_hot = F.one_hot(expert_index, self.num_experts)
        position = (one_hot.cumsum(dim=0) * one_hot).sum(-1) - 1  # rank within its expert
        routed = position < self.capacity(n)

        # Overflow tokens keep x; routed tokens start from x (residual) or from 0.
        out = tokens if self.residual else tokens * (~routed).unsqueeze(-1).to(tokens.dtype)
        for i, expert in enumerate(self.experts):
            idx = torch.nonzero(routed & (expert_index == i), as_tuple=True)[0]
            if idx.numel() == 0:
                continue
            update = gate[idx].unsqueeze(-1).to(tokens.dtype) * expert(tokens[idx])
            out = out.index_add(0, idx, update)

        aux = self.coef * self.load_balancing_loss(probs, expert_index, self.num_experts)
        if self.z_loss_coef > 0:
            aux = aux + self.z_loss_coef * torch.logsumexp(logits, dim=-1).pow(2).mean()
        self._aux = aux
        self.last_routed = routed.detach()
        self.last_expert_index = expert_index.detach()
        return out.reshape(x.shape)

    def aux_loss(self) -> Tensor:
        """Load-balancing (+ optional z-) loss of the last forward pass; 0 before any pass."""
        if self._aux is None:
            return torch.zeros((), device=self.router.weight.device)
        return self._aux

    def expert_utilisation(self) -> Tensor | None:
        """Fraction of the last pass's tokens each expert processed (after capacity), (E,)."""
        if self.last_routed is None:
            return None
        counts = torch.bincount(self.last_expert_index[self.last_routed],
                                minlength=self.num_experts)
        return counts.float() / self.last_routed.numel()

    def extra_metrics(self) -> dict[str, Tensor]:
        """Scalars worth logging for the last pass: the fraction of tokens routed (not over
        capacity) and the largest and smallest expert utilisation; empty before a pass."""
        util = self.expert_utilisation()
        if util is None:
            return {}
        return {"routed": self.last_routed.float().mean(), "util_max": util.max(),
                "util_min": util.min()}

    def active_neuron_ratio(self) -> Tensor | None:
        """ANR = (routed tokens / all tokens) / E, see the class docstring; None before a pass."""
        if self.last_routed is None:
            return None
        return self.last_routed.float().mean() / self.num_experts

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, num_experts={self.num_experts}, "
                f"capacity_factor={self.capacity_factor}, residual={self.residual}")
