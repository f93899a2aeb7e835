"""Gumbel-softmax gating ablation of MID-L (Tables 4 and 9): a stochastic, relaxed top-k gate.

Pure PyTorch. The relaxed top-k is the successive-softmax relaxation of Xie & Ermon (2019,
"Reparameterizable Subset Sampling via Continuous Relaxations", IJCAI), applied to Gumbel
perturbed gate logits (Jang, Gu & Poole 2017; Maddison et al. 2017).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from midl.blocks._checks import check_range
from midl.blocks.midl import MIDLayer, fp32_linear, top_k_mask


def gumbel_noise(like: Tensor) -> Tensor:
    """Standard Gumbel samples -log(-log U), U ~ U(0, 1), of ``like``'s shape and dtype."""
    u = torch.rand_like(like)
    tiny = torch.finfo(like.dtype).tiny
    exponential = -torch.log(u.clamp_min(tiny))          # Exp(1) samples, > 0
    return -torch.log(exponential.clamp_min(tiny))


def relaxed_top_k(logits: Tensor, k: int, temperature: float) -> Tensor:
    """Xie & Ermon (2019) relaxed k-hot vector of ``logits`` (..., d) along the last dim.

    k successive softmaxes, each after down-weighting what the previous one selected::

        w = logits;  a = 0;  khot = 0
        repeat k times:  w += log(max(1 - a, tiny));  a = softmax(w / t);  khot += a

    Returns a differentiable tensor of logits' shape with entries in [0, 1] and rows summing
    to k; as t -> 0 it tends to the hard top-k mask of ``logits``.
    """
    tiny = torch.finfo(logits.dtype).tiny
    onehot = torch.zeros_like(logits)
    khot = torch.zeros_like(logits)
    w = logits
    for _ in range(k):
        w = w + torch.log((1.0 - onehot).clamp_min(tiny))
        onehot = torch.softmax(w / temperature, dim=-1)
        khot = khot + onehot
    return khot


class GumbelMIDLayer(MIDLayer):
    """MID-L with Gumbel-softmax gating: y = alpha_hat * F1(x) + (1 - alpha_hat) * F2(x).

    Same paths, gate network, gate dropout and (optional) top-k annealing as
    :class:`~midl.blocks.MIDLayer`; only the selection differs. With gate logits l = W_alpha x
    and alpha = sigmoid(l):

    - Training: g ~ Gumbel(0, 1) i.i.d. per entry, s = l + g (a Gumbel-top-k sample, i.e.
      sampling k neurons without replacement from softmax(l)). The hard mask H = top-k(s) is
      used in the forward pass; its gradient is that of the relaxed top-k R = relaxed_top_k(s,
      k, t) (straight-through: M = H + R - stopgrad(R)). alpha_hat = alpha * M, so the gate
      logits receive gradient both through alpha (kept neurons) and through R (all neurons).
    - Eval: no noise, M = top-k(l), which is MID-L's deterministic mask.

    The temperature t is a config value; with ``temperature_start`` set it is annealed
    geometrically (exponentially in the epoch, as in Jang et al. 2017) from
    ``temperature_start`` to ``temperature`` over ``temperature_anneal_epochs`` epochs, via
    :meth:`set_epoch`.

    Args:
        dim: feature size d of input and output.
        top_k: kept gates per sample, fraction in (0, 1] or int in [1, d]; default 0.5.
        temperature: (final) temperature t > 0 of the relaxed top-k; default 0.5 (the final
            temperature of Jang et al.'s annealing schedule).
        temperature_start: optional initial temperature > 0 for annealing; default None.
        temperature_anneal_epochs: epochs of the temperature schedule, >= 0; default 0.
        rank, gate_dropout, top_k_start, anneal_epochs, gate_bias: as for MIDLayer.

    Shapes:
        input (..., d), output (..., d); ``last_alpha`` and ``last_mask`` (..., d).

    Active neuron ratio (ANR): the mean of the hard mask, k / d (as for MID-L).

    Raises:
        ValueError: for a temperature <= 0, a negative ``temperature_anneal_epochs``, or any
            error of :class:`~midl.blocks.MIDLayer`.

    Cost: the relaxed top-k takes k softmaxes over d per row in training (k = 128 for d = 256).
    """

    def __init__(self, dim: int, top_k: float | int = 0.5, temperature: float = 0.5,
                 temperature_start: float | None = None, temperature_anneal_epochs: int = 0,
                 rank: int | None = None, gate_dropout: float = 0.1,
                 top_k_start: float | int | None = None, anneal_epochs: int = 0,
                 gate_bias: bool = True) -> None:
        super().__init__(dim, top_k=top_k, rank=rank, gate_dropout=gate_dropout,
                         estimator="masked", top_k_start=top_k_start,
                         anneal_epochs=anneal_epochs, gate_bias=gate_bias)
        self.temperature_final = check_range("temperature", temperature, 0.0, math.inf,
                                             low_open=True)
        self.temperature_start = (self.temperature_final if temperature_start is None
                                  else check_range("temperature_start", temperature_start,
                                                   0.0, math.inf, low_open=True))
        if isinstance(temperature_anneal_epochs, bool) or temperature_anneal_epochs < 0:
            raise ValueError(f"temperature_anneal_epochs={temperature_anneal_epochs!r} "
                             "must be an int >= 0")
        self.temperature_anneal_epochs = temperature_anneal_epochs
        self.temperature = (self.temperature_start if temperature_anneal_epochs > 0
                            else self.temperature_final)

    def set_epoch(self, epoch: int) -> None:
        """Set k (MID-L's top-k schedule) and the temperature for ``epoch`` (0-based).

        t = t_start * (t_final / t_start) ** min(epoch / temperature_anneal_epochs, 1).
        """
        super().set_epoch(epoch)
        if self.temperature_anneal_epochs == 0:
            return
        progress = min(max(epoch, 0) / self.temperature_anneal_epochs, 1.0)
        ratio = self.temperature_final / self.temperature_start
        self.temperature = self.temperature_start * ratio ** progress

    def sparse_gate(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(alpha, hard_mask, alpha_hat)`` for input ``x`` (..., d), see the class docstring."""
        logits = fp32_linear(self.gate, x)  # float32 under autocast too (MIDLayer.sparse_gate)
        alpha = torch.sigmoid(logits)
        if not self.training:
            mask = top_k_mask(logits.detach(), self.k)
            return alpha, mask, alpha * mask
        scores = logits + gumbel_noise(logits)
        hard = top_k_mask(scores.detach(), self.k)
        relaxed = relaxed_top_k(scores, self.k, self.temperature)
        mask = hard + relaxed - relaxed.detach()
        return alpha, hard, alpha * mask

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, k={self.k}/{self.dim}, rank={self.rank}, "
                f"temperature={self.temperature:g}")
