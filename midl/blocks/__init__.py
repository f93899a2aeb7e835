"""Blocks that fill the swappable slot of every backbone (``configs/block/``).

A block is an ``nn.Module`` built as ``block(dim)`` that maps (..., d) to (..., d). It may
also provide, for its last forward pass:

- ``active_neuron_ratio() -> Tensor | None``: a scalar fraction in [0, 1] (the ANR);
- ``aux_loss() -> Tensor``: a scalar added to the training loss (e.g. a load-balancing term);
- ``set_epoch(epoch: int)``: called at the start of every training epoch (e.g. top-k annealing).
- ``extra_metrics() -> dict[str, Tensor]``: further scalars of the last pass worth logging
  (Concrete Dropout's learned ``p``, Switch's expert utilisation), logged by
  ``midl/module.py`` as ``{stage}/{name}/{key}``.

Blocks are pure PyTorch: no Lightning or Hydra imports.

Available blocks (``block=<name>``; each docstring gives its reference and ANR definition):

=================  ===========================  ==============================================
name               class                        what
=================  ===========================  ==============================================
midl               :class:`MIDLayer`            MID-L (the paper)
dropout            :class:`DropoutBlock`        Linear -> ReLU -> Dropout (Srivastava 2014)
dropout_wide       :class:`WideDropoutBlock`    Dropout MLP with MID-L's parameter count
ffn                :class:`FFNBlock`            Transformer feed-forward sub-layer (baseline)
midl_ffn           :class:`MIDLayer`            MID-L whose F2 is that feed-forward layer
concrete_dropout   :class:`ConcreteDropoutBlock`  learned dropout rate (Gal et al. 2017)
dynamic_relu       :class:`DynamicReLUBlock`    Linear -> DY-ReLU-B (Chen et al. 2020)
switch             :class:`SwitchBlock`         top-1 routed FFN experts (Fedus et al. 2022)
loramoe            :class:`LoRAMoEBlock`        base Linear + routed LoRA experts (Dou 2023)
f1_only            :class:`F1Only`              ablation: MID-L's lightweight path only
f2_only            :class:`F2Only`              ablation: MID-L's rich path only
fixed_alpha        :class:`FixedAlpha`          ablation: alpha = 0.5, no gate network
random_topk        :class:`RandomTopK`          ablation: random top-k mask, alpha = 0.5
gumbel             :class:`GumbelMIDLayer`      ablation: Gumbel relaxed top-k gate
midl_channel       :class:`MIDLChannel`         MID-L gating of conv channels (Appendix C)
=================  ===========================  ==============================================
"""

from midl.blocks.ablations import F1Only, F2Only, FixedAlpha, RandomTopK
from midl.blocks.concrete_dropout import ConcreteDropoutBlock
from midl.blocks.dropout import DropoutBlock, WideDropoutBlock
from midl.blocks.dynamic_relu import DynamicReLUBlock
from midl.blocks.ffn import FFNBlock
from midl.blocks.gumbel import GumbelMIDLayer, relaxed_top_k
from midl.blocks.loramoe import LoRAMoEBlock
from midl.blocks.midl import MIDLayer, resolve_top_k, top_k_mask
from midl.blocks.midl_channel import MIDLChannel
from midl.blocks.switch import SwitchBlock

__all__ = [
    "ConcreteDropoutBlock",
    "DropoutBlock",
    "DynamicReLUBlock",
    "F1Only",
    "FFNBlock",
    "F2Only",
    "FixedAlpha",
    "GumbelMIDLayer",
    "LoRAMoEBlock",
    "MIDLChannel",
    "MIDLayer",
    "RandomTopK",
    "SwitchBlock",
    "WideDropoutBlock",
    "relaxed_top_k",
    "resolve_top_k",
    "top_k_mask",
]
