"""The shared shape of the dense blocks (Dropout, its parameter-matched twin, a Transformer's
feed-forward layer): an ``nn.Sequential`` applied to (..., d), every neuron active."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DenseBlock(nn.Module):
    """A block that applies ``self.net`` (set by the subclass) to inputs of shape (..., d).

    Raises:
        ValueError: from ``forward``, for an input whose last dimension is not d.
    """

    def __init__(self, dim: int, net: nn.Module) -> None:
        super().__init__()
        self.dim = dim
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x`` of shape (..., d); returns (..., d)."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"{type(self).__name__} expects inputs of shape (..., {self.dim}), "
                             f"got {tuple(x.shape)}")
        return self.net(x)

    def active_neuron_ratio(self) -> Tensor:
        """Active neuron ratio (ANR): 1.0, since every neuron is computed for every input.

        Dropout masks neurons at random during training only; at inference the layer is dense,
        which is how the paper reports it (100% in Tables 2 and 8).
        """
        return torch.ones(())
