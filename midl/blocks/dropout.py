"""The "MLP + Dropout" baseline block (Srivastava et al. 2014, JMLR 15(1)).

Pure PyTorch. This is the block the paper compares MID-L against in Tables 2, 3 and 8.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DropoutBlock(nn.Module):
    """Linear(d, d) -> ReLU -> Dropout(p): the paper's "MLP + Dropout" block.

    Args:
        dim: feature size d of input and output.
        p: dropout probability in [0, 1); default 0.5, the hidden-unit rate of
            Srivastava et al. (2014).

    Shapes:
        input (..., d), output (..., d).

    Raises:
        ValueError: if ``p`` is outside [0, 1) or ``dim`` < 1.
    """

    def __init__(self, dim: int, p: float = 0.5) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim={dim!r} must be a positive int")
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p={p} is out of range: the dropout probability must lie in [0, 1)")
        self.dim = dim
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(p))

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x`` of shape (..., d)."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"DropoutBlock expects inputs of shape (..., {self.dim}), "
                             f"got {tuple(x.shape)}")
        return self.net(x)

    def active_neuron_ratio(self) -> Tensor:
        """Active neuron ratio (ANR): 1.0, since every neuron is computed for every input.

        Dropout masks neurons at random during training only; at inference the layer is dense,
        which is how the paper reports it (100% in Tables 2 and 8).
        """
        return torch.ones(())
