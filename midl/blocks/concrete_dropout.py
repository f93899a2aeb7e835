"""Concrete Dropout baseline block (Gal, Hron & Kendall 2017, "Concrete Dropout", NeurIPS).

Pure PyTorch. The dropout rate is learned through a continuous (relaxed Bernoulli) mask and a
regulariser that is added to the training loss through :meth:`ConcreteDropoutBlock.aux_loss`.
The layout follows the authors' reference code (github.com/yaringal/ConcreteDropout): the
relaxed mask drops the *input* of the wrapped layer, here Linear(d, d) -> ReLU, so the block
replaces the "Linear -> ReLU -> Dropout" slot of the MLP + Dropout baseline.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from midl.blocks._checks import check_dim, check_range


class ConcreteDropoutBlock(nn.Module):
    """y = ReLU(Linear(x * z / (1 - p))) with a relaxed Bernoulli keep mask z and learned p.

    Forward in training (Gal et al. 2017, Eq. 5 and the reference code), per input entry:

        u ~ U(0, 1)
        drop = sigmoid((log(p + eps) - log(1 - p + eps) + log(u + eps) - log(1 - u + eps)) / t)
        z = 1 - drop,   x_tilde = x * z / (1 - p)

    with p = sigmoid(p_logit), temperature t = 0.1 and eps = 1e-7. In eval mode the mask is
    the identity (the inverted scaling keeps expectations equal); set ``mc_dropout=True`` to
    keep sampling masks at test time (MC dropout, as in the paper's uncertainty experiments).

    Regulariser (returned by :meth:`aux_loss`, computed from the current parameters)::

        weight_regularizer * ||W||^2 / (1 - p)
            + dropout_regularizer * K * (p log p + (1 - p) log(1 - p))

    where W is the Linear's weight matrix (the kernel only, as in the authors' Keras code) and
    K = d is the input dimension. The second term is the negative entropy of Bernoulli(p),
    scaled by K, and pushes p towards 0.5.

    Args:
        dim: feature size d of input and output.
        init_p: initial dropout probability in (0, 1); default 0.1 (the reference's
            ``init_min = init_max = 0.1``).
        temperature: temperature t of the relaxation, > 0; default 0.1.
        eps: numerical epsilon inside the logs, >= 0; default 1e-7.
        weight_regularizer: coefficient of the weight term, >= 0; default 1e-6 (the reference
            PyTorch code's default, l^2 / N for prior length-scale l and N training points).
        dropout_regularizer: coefficient of the entropy term, >= 0; default 1e-5 (the
            reference's default, 2 / (tau N) with model precision tau).
        mc_dropout: sample masks in eval mode too; default False.

    Shapes:
        input (..., d), output (..., d).

    Active neuron ratio (ANR): 1.0. Every neuron is computed for every input; the mask is a
    training-time regulariser (as for :class:`~midl.blocks.DropoutBlock`, Tables 2 and 8).
    The learned dropout rate is :attr:`p` (a detached scalar tensor).

    Raises:
        ValueError: if ``dim`` < 1, ``init_p`` is outside (0, 1), ``temperature`` <= 0, or a
            coefficient or ``eps`` is negative; the message names the value and the range.
    """

    def __init__(self, dim: int, init_p: float = 0.1, temperature: float = 0.1,
                 eps: float = 1e-7, weight_regularizer: float = 1e-6,
                 dropout_regularizer: float = 1e-5, mc_dropout: bool = False) -> None:
        super().__init__()
        self.dim = check_dim("dim", dim)
        check_range("init_p", init_p, 0.0, 1.0, low_open=True, high_open=True)
        self.temperature = check_range("temperature", temperature, 0.0, math.inf, low_open=True)
        self.eps = check_range("eps", eps, 0.0, math.inf)
        self.weight_regularizer = check_range("weight_regularizer", weight_regularizer,
                                              0.0, math.inf)
        self.dropout_regularizer = check_range("dropout_regularizer", dropout_regularizer,
                                               0.0, math.inf)
        self.mc_dropout = mc_dropout
        self.p_logit = nn.Parameter(torch.tensor(math.log(init_p) - math.log(1.0 - init_p)))
        self.linear = nn.Linear(dim, dim)
        self.activation = nn.ReLU()
        self.last_keep_mask: Tensor | None = None

    @property
    def p(self) -> Tensor:
        """The current (learned) dropout probability sigmoid(p_logit), detached."""
        return torch.sigmoid(self.p_logit).detach()

    def concrete_mask(self, shape: torch.Size, p: Tensor) -> Tensor:
        """Sample the relaxed keep mask z = 1 - drop of the given shape (values in (0, 1))."""
        eps = self.eps
        u = torch.rand(shape, device=p.device, dtype=p.dtype)
        drop_logit = (torch.log(p + eps) - torch.log(1.0 - p + eps)
                      + torch.log(u + eps) - torch.log(1.0 - u + eps))
        return 1.0 - torch.sigmoid(drop_logit / self.temperature)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x`` of shape (..., d); returns the same shape."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"ConcreteDropoutBlock expects inputs of shape (..., {self.dim}), "
                             f"got {tuple(x.shape)}")
        if self.training or self.mc_dropout:
            p = torch.sigmoid(self.p_logit).to(x.dtype)
            keep = self.concrete_mask(x.shape, p)
            self.last_keep_mask = keep.detach()
            x = x * keep / (1.0 - p)
        return self.activation(self.linear(x))

    def regularizer(self) -> Tensor:
        """The Concrete Dropout regulariser for the current p and weights (a scalar)."""
        p = torch.sigmoid(self.p_logit)
        weight_term = self.weight_regularizer * self.linear.weight.pow(2).sum() / (1.0 - p)
        entropy_term = p * torch.log(p) + (1.0 - p) * torch.log(1.0 - p)
        return weight_term + self.dropout_regularizer * self.dim * entropy_term

    def aux_loss(self) -> Tensor:
        """The regulariser, added to the training loss by the Lightning module."""
        return self.regularizer()

    def active_neuron_ratio(self) -> Tensor:
        """ANR = 1.0: every neuron is computed (the mask is a training-time regulariser)."""
        return torch.ones(())

    def extra_metrics(self) -> dict[str, Tensor]:
        """Scalars worth logging: the learned dropout rate ``p``."""
        return {"p": self.p}

    def extra_repr(self) -> str:
        return f"dim={self.dim}, p={self.p.item():.4f}, temperature={self.temperature}"
