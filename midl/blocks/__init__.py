"""Blocks that fill the swappable slot of every backbone (``configs/block/``).

A block is an ``nn.Module`` built as ``block(dim)`` that maps (..., d) to (..., d). It may
also provide, for its last forward pass:

- ``active_neuron_ratio() -> Tensor | None``: a scalar fraction in [0, 1] (the ANR);
- ``aux_loss() -> Tensor``: a scalar added to the training loss (e.g. a load-balancing term);
- ``set_epoch(epoch: int)``: called at the start of every training epoch (e.g. top-k annealing).

Blocks are pure PyTorch: no Lightning or Hydra imports.
"""

from midl.blocks.dropout import DropoutBlock
from midl.blocks.midl import MIDLayer, resolve_top_k, top_k_mask

__all__ = ["DropoutBlock", "MIDLayer", "resolve_top_k", "top_k_mask"]
