"""Dynamic ReLU baseline block, DY-ReLU-B (Chen et al. 2020, "Dynamic ReLU", ECCV).

Pure PyTorch. The block is Linear(d, d) followed by DY-ReLU-B, an input-dependent piecewise
linear activation with K linear pieces per channel (here per neuron), so it replaces the
"Linear -> ReLU" of the MLP + Dropout baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from midl.blocks._checks import check_dim, check_range


class DynamicReLUBlock(nn.Module):
    """y = max_k (a_k(z) * z + b_k(z)) with z = Linear(x): DY-ReLU-B, neuron-wise coefficients.

    Hyper-function (Chen et al. 2020, Section 3.2 and Figure 2b): the context is the vector z
    itself (the image version pools over space first; here every sample, and every position of
    a sequence, is its own context)::

        delta = 2 * sigmoid(FC(ReLU(FC(z)))) - 1      FC: d -> d/R -> 2 K d,  delta in (-1, 1)
        a_k = alpha_k + lambda_a * delta_a_k          (per neuron)
        b_k = beta_k + lambda_b * delta_b_k

    with initial values alpha = (1, 0, ...), beta = (0, ...), lambda_a = 1.0, lambda_b = 0.5
    (the reference's defaults). When the hyper-function outputs are zero, a = (1, 0) and
    b = (0, 0), so the block is exactly Linear -> ReLU.

    Args:
        dim: feature size d of input and output.
        k: number of linear pieces K >= 1; default 2.
        reduction: reduction ratio R of the hyper-function's hidden layer, >= 1; default 4
            (hidden size max(1, d // R)).
        lambda_a: range of the slope residuals, >= 0; default 1.0.
        lambda_b: range of the intercept residuals, >= 0; default 0.5.
        init_a: the K initial slopes alpha; default (1, 0, ..., 0).
        init_b: the K initial intercepts beta; default (0, ..., 0).

    Shapes:
        input (..., d), output (..., d); the coefficients have shape (..., d, K).

    Active neuron ratio (ANR): 1.0. Every neuron and the hyper-function are computed for
    every input (the activation is dynamic, not sparse).

    Raises:
        ValueError: if ``dim``, ``k`` or ``reduction`` is not a positive int, a lambda is
            negative, or ``init_a``/``init_b`` does not have K entries.
    """

    def __init__(self, dim: int, k: int = 2, reduction: int = 4, lambda_a: float = 1.0,
                 lambda_b: float = 0.5, init_a: Sequence[float] | None = None,
                 init_b: Sequence[float] | None = None) -> None:
        super().__init__()
        self.dim = check_dim("dim", dim)
        self.k = check_dim("k", k)
        self.reduction = check_dim("reduction", reduction)
        self.lambda_a = check_range("lambda_a", lambda_a, 0.0, math.inf)
        self.lambda_b = check_range("lambda_b", lambda_b, 0.0, math.inf)
        init_a = [1.0] + [0.0] * (k - 1) if init_a is None else list(init_a)
        init_b = [0.0] * k if init_b is None else list(init_b)
        for name, values in (("init_a", init_a), ("init_b", init_b)):
            if len(values) != k:
                raise ValueError(f"{name}={values} must have k={k} entries")
        self.register_buffer("init_a", torch.tensor(init_a, dtype=torch.float32))
        self.register_buffer("init_b", torch.tensor(init_b, dtype=torch.float32))
        self.linear = nn.Linear(dim, dim)
        hidden = max(1, dim // reduction)
        self.hyper = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(),
                                   nn.Linear(hidden, 2 * k * dim))

    def coefficients(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Slopes a and intercepts b for pre-activations ``z`` (..., d); each (..., d, K)."""
        delta = 2.0 * torch.sigmoid(self.hyper(z)) - 1.0
        delta = delta.unflatten(-1, (self.dim, 2 * self.k))
        a = self.init_a + self.lambda_a * delta[..., :self.k]
        b = self.init_b + self.lambda_b * delta[..., self.k:]
        return a, b

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x`` of shape (..., d); returns the same shape."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"DynamicReLUBlock expects inputs of shape (..., {self.dim}), "
                             f"got {tuple(x.shape)}")
        z = self.linear(x)
        a, b = self.coefficients(z)
        return (a * z.unsqueeze(-1) + b).amax(dim=-1)

    def active_neuron_ratio(self) -> Tensor:
        """ANR = 1.0: every neuron is computed for every input."""
        return torch.ones(())

    def extra_repr(self) -> str:
        return f"dim={self.dim}, k={self.k}, reduction={self.reduction}"
