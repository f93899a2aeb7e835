"""A small pre-LayerNorm Transformer encoder for token sequences whose feed-forward sub-layer
is the swappable block slot (the paper's Future Work (i): "extending MID-L to Transformer
architectures"). Pure PyTorch.

Each layer (Xiong et al. 2020, "On layer normalization in the Transformer architecture": the
pre-LN form) is ``x = x + attention(LN(x))`` then ``x = x + block(LN(x))``, with multi-head
self-attention from ``nn.MultiheadAttention`` (``scaled_dot_product_attention`` inside) and
``block`` built by the same factory as every other backbone's slot (``configs/block/``):
``ffn`` (the standard Linear(d, 4d) -> GELU -> Linear(4d, d)), ``midl_ffn`` (MID-L whose F2
is that FFN), ``switch`` and ``loramoe`` (designed for this slot), ``dropout``, ``midl``.

Padding (token id 0) is masked everywhere it could leak: attention ignores padded keys, the
block sees only the real tokens (gathered to an (N, d) batch, so blocks that route or balance
across tokens, such as Switch's expert capacity, never count padding), and the classifier
mean-pools the real tokens. A padded position's state is therefore never read, and the logits
of a sequence do not depend on how much padding follows it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from midl.backbones import Backbone, BlockFactory, _check_positive, _check_probability


class EncoderLayer(nn.Module):
    """One pre-LN layer: self-attention, then the block, each with a residual connection.

    Args:
        dim: model width d.
        heads: attention heads (must divide d).
        block: the feed-forward sub-layer, a module mapping (N, d) -> (N, d).
        dropout: dropout on the attention output, in [0, 1).
        attention_dropout: dropout on the attention weights, in [0, 1) (default 0: the fused
            attention kernel; a positive value takes PyTorch's unfused path, which materializes
            the (B, heads, T, T) weights).

    Shapes: ``forward(x, pad)``: x (B, T, d), pad (B, T) bool (True = padding) -> (B, T, d).
    """

    def __init__(self, dim: int, heads: int, block: nn.Module, dropout: float,
                 attention_dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads={heads} must divide the model width d={dim}")
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=attention_dropout,
                                               batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.block = block

    def forward(self, x: Tensor, pad: Tensor) -> Tensor:
        h = self.norm1(x)
        attended, _ = self.attention(h, h, h, key_padding_mask=pad, need_weights=False)
        x = x + self.dropout(attended)
        real = ~pad
        update = torch.zeros_like(x)
        update[real] = self.block(self.norm2(x[real])).to(x.dtype)  # real tokens only
        return x + update


class TransformerFeatures(nn.Module):
    """Token ids -> embeddings + learned positions -> encoder layers -> final LayerNorm ->
    mean over the real tokens, shape (B, d)."""

    def __init__(self, input_shape: Sequence[int], vocab_size: int, dim: int, layers: int,
                 heads: int, block: BlockFactory, dropout: float,
                 attention_dropout: float = 0.0) -> None:
        super().__init__()
        if len(input_shape) != 1:
            raise ValueError(f"model=transformer reads token ids of shape (T,), got "
                             f"{tuple(input_shape)}: use it with data=imdb")
        _check_positive(vocab_size=vocab_size, max_length=input_shape[0])
        self.tokens = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.positions = nn.Embedding(input_shape[0], dim)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, block(dim), dropout,
                                                 attention_dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        pad = x == 0
        pad = pad & ~pad.all(dim=1, keepdim=True)  # an all-padding sequence attends to itself
        positions = torch.arange(x.shape[1], device=x.device)
        h = self.dropout(self.tokens(x) + self.positions(positions))
        for layer in self.layers:
            h = layer(h, pad)
        h = self.norm(h)
        real = (~pad).unsqueeze(-1).to(h.dtype)
        return (h * real).sum(dim=1) / real.sum(dim=1)


class Transformer(Backbone):
    """Pre-LN Transformer encoder -> mean of the real tokens -> Linear(d, classes); the block
    slot is every layer's feed-forward sub-layer (one block per layer), not a layer before
    the head as in the other backbones.

    Args:
        input_shape: (T,): token ids per sequence (padding id 0, any side).
        num_classes: number of classes.
        block: block factory ``block(d)`` for the feed-forward slot of each layer.
        vocab_size: token ids including padding id 0 (the data module's ``vocab_size``).
        dim: model width d (default 128).
        layers: encoder layers N (default 2).
        heads: attention heads (default 4; must divide d).
        dropout: dropout on embeddings and attention output (default 0.1).
        attention_dropout: dropout on the attention weights (default 0: the fused
            ``scaled_dot_product_attention`` kernel, whose training step is 1.7-1.8x faster
            on one CPU thread than the unfused path that dropout there needs; ``make bench``'s
            transformer section measures it).

    Shapes: input (B, T) int64 token ids; output (B, num_classes); ``embed`` (B, d).

    Raises:
        ValueError: for a non-positive size, heads not dividing d, a dropout outside [0, 1),
            or inputs that are not token ids of shape (T,).
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, block: BlockFactory,
                 vocab_size: int | None = None, dim: int = 128, layers: int = 2,
                 heads: int = 4, dropout: float = 0.1, attention_dropout: float = 0.0) -> None:
        # the slot lives inside the layers: the base class's slot before the head is empty
        super().__init__(num_classes, dim, lambda d: nn.Identity())
        _check_positive(layers=layers, heads=heads)
        _check_probability("dropout", dropout)
        _check_probability("attention_dropout", attention_dropout)
        if vocab_size is None:
            raise ValueError("model=transformer needs token input (vocab_size from the data "
                             "module): use it with data=imdb")
        self.features = TransformerFeatures(input_shape, vocab_size, dim, layers, heads,
                                            block, dropout, attention_dropout)


__all__ = ["EncoderLayer", "Transformer", "TransformerFeatures"]
