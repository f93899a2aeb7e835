"""LoRAMoE-style token routing baseline block (Dou et al. 2023, "LoRAMoE", arXiv 2312.09979).

Pure PyTorch. A base linear map plus N low-rank (LoRA, Hu et al. 2022) experts mixed per
token by a softmax router; the paper's Section 5.3 calls it "LoRAMoE-style token routing".
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from midl.blocks._checks import check_dim, check_range
from midl.blocks.midl import fp32_linear


class LoRAMoEBlock(nn.Module):
    """y = W0 x + b0 + sum_i w_i(x) * (lora_alpha / r) * B_i A_i x.

    - Base: Linear(d, d) (W0, b0). LoRAMoE freezes a pretrained W0; there is no pretraining
      here, so W0 trains with everything else.
    - Experts: A_i (r x d) with LoRA's Kaiming-uniform initialisation (a = sqrt(5)), B_i (d x r)
      initialised to zero, so the block equals its base map at initialisation.
    - Router: w(x) = softmax(W_g x), W_g: Linear(d, N, bias=False). With ``top_k`` set, only
      the k largest router logits are kept and the softmax is taken over them (Shazeer et al.
      2017 style top-k routing); the other experts get weight 0 and are not needed.
    - Optional balance loss (:meth:`aux_loss`): LoRAMoE's localized balancing constraint with a
      single expert group and sample type, ``balance_coef * Var(Q) / Mean(Q)`` where Q_i is the
      sum of router weights of expert i over the tokens. Off by default (``balance_coef=0``),
      since the paper's baseline is described as plain token routing.

    Args:
        dim: feature size d of input and output.
        num_experts: N >= 1; default 8.
        rank: LoRA rank r in [1, d]; default 4.
        lora_alpha: LoRA scaling numerator, > 0; the update is scaled by lora_alpha / r;
            default 32.
        top_k: ``None`` (dense softmax over all experts, default) or an int in [1, N].
        balance_coef: coefficient of the balance loss, >= 0; default 0.0.

    Shapes:
        input (..., d), output (..., d); router weights (..., N).

    Active neuron ratio (ANR): the fraction of LoRA experts that contribute to a token,
    averaged over tokens: 1.0 for dense routing, k / N with ``top_k``. (The base map is dense
    for every token.)

    Raises:
        ValueError: if ``dim`` or ``num_experts`` is not a positive int, ``rank`` is outside
            [1, d], ``lora_alpha`` <= 0, ``top_k`` is outside [1, N], or ``balance_coef`` < 0.
    """

    def __init__(self, dim: int, num_experts: int = 8, rank: int = 4, lora_alpha: float = 32.0,
                 top_k: int | None = None, balance_coef: float = 0.0) -> None:
        super().__init__()
        self.dim = check_dim("dim", dim)
        self.num_experts = check_dim("num_experts", num_experts)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= dim:
            raise ValueError(f"rank={rank!r} is out of range: the LoRA rank must lie in [1, {dim}]")
        self.rank = rank
        self.scaling = check_range("lora_alpha", lora_alpha, 0.0, math.inf, low_open=True) / rank
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                                  or not 1 <= top_k <= num_experts):
            raise ValueError(f"top_k={top_k!r} is out of range: must be null (dense routing) "
                             f"or an int in [1, {num_experts}]")
        self.top_k = top_k
        self.balance_coef = check_range("balance_coef", balance_coef, 0.0, math.inf)
        self.base = nn.Linear(dim, dim)
        self.router = nn.Linear(dim, num_experts, bias=False)
        self.lora_a = nn.Parameter(torch.empty(num_experts, rank, dim))
        self.lora_b = nn.Parameter(torch.zeros(num_experts, dim, rank))
        for a in self.lora_a:
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        self.last_weights: Tensor | None = None
        self._weights_graph: Tensor | None = None

    def routing_weights(self, x: Tensor) -> Tensor:
        """Router weights w(x), shape (..., N), rows summing to 1 (zeros off the top-k)."""
        logits = fp32_linear(self.router, x)  # float32 routing under autocast (no top-k ties)
        if self.top_k is None:
            return logits.softmax(dim=-1)
        top = logits.topk(self.top_k, dim=-1)
        weights = torch.zeros_like(logits)
        return weights.scatter(-1, top.indices, top.values.softmax(dim=-1))

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x`` of shape (..., d); returns the same shape."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"LoRAMoEBlock expects inputs of shape (..., {self.dim}), "
                             f"got {tuple(x.shape)}")
        weights = self.routing_weights(x)
        # The LoRA branch in one dtype, x's (bfloat16 under bf16 autocast, else float32):
        # autocast does not reach every op einsum dispatches to (e.g. under FlopCounterMode in
        # the test stage), and a float32 parameter meeting a bfloat16 input fails there.
        dtype = x.dtype
        hidden = torch.einsum("...d,nrd->...nr", x, self.lora_a.to(dtype))
        hidden = hidden * (weights * self.scaling).to(dtype).unsqueeze(-1)
        update = torch.einsum("...nr,ndr->...d", hidden, self.lora_b.to(dtype))
        self._weights_graph = weights
        self.last_weights = weights.detach()
        return self.base(x) + update

    def aux_loss(self) -> Tensor:
        """balance_coef * Var(Q) / Mean(Q) of the last pass (0 when off or before a pass)."""
        if self.balance_coef == 0 or self._weights_graph is None:
            return torch.zeros((), device=self.base.weight.device)
        importance = self._weights_graph.reshape(-1, self.num_experts).sum(0)
        return self.balance_coef * importance.var(unbiased=False) / importance.mean()

    def active_neuron_ratio(self) -> Tensor:
        """Fraction of LoRA experts used per token: 1.0 (dense routing) or top_k / N."""
        return torch.tensor(1.0 if self.top_k is None else self.top_k / self.num_experts)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, num_experts={self.num_experts}, rank={self.rank}, "
                f"scaling={self.scaling:g}, top_k={self.top_k}")
