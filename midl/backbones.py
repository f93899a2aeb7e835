"""Backbones with one swappable block slot: MLP, CNN ("CNN + MLP") and LSTM.

Every backbone is built as ``Backbone(input_shape, num_classes, block, ...)`` where ``block``
is a factory ``block(dim) -> nn.Module`` mapping (B, d) to (B, d) (see :mod:`midl.blocks`). The
slot sits right before the classification head, where the paper places MID-L or a baseline
(Section 4.4: "replacing standard fully connected layers"). Pure PyTorch.

The paper leaves widths and depths unspecified; the defaults here are config values
(``configs/model/``) chosen once and shared by every table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

BlockFactory = Callable[[int], nn.Module]


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive int")


def _check_probability(name: str, p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name}={p} is out of range: a dropout probability must lie in [0, 1)")


class Backbone(nn.Module):
    """Base class: ``features(x) -> (B, d)``, then ``block``, then ``head``.

    Subclasses set ``self.features`` (input to a (B, d) vector with d = ``hidden_dim``);
    this class owns the block slot and the head Linear(d, num_classes).
    """

    def __init__(self, num_classes: int, hidden_dim: int, block: BlockFactory) -> None:
        super().__init__()
        _check_positive(num_classes=num_classes, hidden_dim=hidden_dim)
        self.hidden_dim = hidden_dim
        self.features: nn.Module = nn.Identity()
        self.block = block(hidden_dim)
        self.head = nn.Linear(hidden_dim, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        """Last-layer embedding (the block's output), shape (B, d); used for t-SNE."""
        return self.block(self.features(x))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits, shape (B, num_classes)."""
        return self.head(self.embed(x))


class MLP(Backbone):
    """flatten -> [Linear -> ReLU -> Dropout] x depth -> block -> Linear(d, classes).

    Args:
        input_shape: shape of one sample, e.g. (1, 28, 28) or (n_features,).
        num_classes: number of classes.
        block: block factory for the slot.
        hidden_dim: width d of the hidden layers and of the block.
        depth: number of Linear -> ReLU layers before the block (>= 1).
        dropout: dropout after each hidden layer, in [0, 1); default 0 (the block regularises).

    Shapes: input (B, *input_shape), output (B, num_classes).
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, block: BlockFactory,
                 hidden_dim: int = 256, depth: int = 1, dropout: float = 0.0) -> None:
        super().__init__(num_classes, hidden_dim, block)
        _check_positive(depth=depth)
        _check_probability("dropout", dropout)
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden_dim), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden_dim
        self.features = nn.Sequential(*layers)


class CNN(Backbone):
    """The paper's "CNN + MLP": a small conv stack -> flatten -> Linear -> ReLU -> block -> head.

    Each stage is Conv3x3 -> BatchNorm -> ReLU -> MaxPool2 (the pool is skipped once the map is
    1 pixel wide), so the spatial size halves per stage.

    Args:
        input_shape: (C, H, W) of one image.
        num_classes: number of classes.
        block: block factory for the slot.
        channels: output channels of each conv stage, e.g. (32, 64, 128).
        hidden_dim: width d of the Linear after the conv stack and of the block.
        dropout: dropout on the flattened conv features, in [0, 1).
        channel_block: optional factory ``channel_block(C) -> nn.Module`` mapping
            (B, C, H, W) to itself (e.g. :class:`midl.blocks.MIDLChannel`); an instance is
            inserted after the ReLU (before the pool) of each stage in ``channel_stages``.
            Default ``None``: no channel block (the plain "CNN + MLP").
        channel_stages: indices of the stages (negative counts from the end) that get a
            channel block; ``None`` (default) means every stage.
        channels_last: run the conv stack in the channels-last memory format (NHWC): the conv
            weights are stored so and each input batch is converted on entry. Same function
            (outputs equal to float rounding); faster for oneDNN's bf16 (AMX) convolutions on
            the CPU and for cuDNN's tensor-core kernels (``make bench``: fast_path section).

    Shapes: input (B, C, H, W), output (B, num_classes).

    Raises:
        ValueError: if ``input_shape`` is not (C, H, W), a size is not positive, or a
            channel stage index is out of range.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, block: BlockFactory,
                 channels: Sequence[int] = (32, 64, 128), hidden_dim: int = 256,
                 dropout: float = 0.0, channel_block: BlockFactory | None = None,
                 channel_stages: Sequence[int] | None = None,
                 channels_last: bool = False) -> None:
        super().__init__(num_classes, hidden_dim, block)
        if len(input_shape) != 3:
            raise ValueError(f"CNN needs image inputs of shape (C, H, W), got {tuple(input_shape)}")
        _check_probability("dropout", dropout)
        n_stages = len(channels)
        stages = range(n_stages) if channel_stages is None else channel_stages
        for i in stages:
            if not -n_stages <= i < n_stages:
                raise ValueError(f"channel_stages entry {i} is out of range: the CNN has "
                                 f"{n_stages} stages (indices in [{-n_stages}, {n_stages - 1}])")
        gated = {i % n_stages for i in stages} if channel_block is not None else set()
        in_channels, height, width = input_shape
        layers: list[nn.Module] = []
        for stage, out_channels in enumerate(channels):
            _check_positive(channels=out_channels)
            layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                       nn.BatchNorm2d(out_channels), nn.ReLU()]
            if stage in gated:
                layers.append(channel_block(out_channels))
            if min(height, width) >= 2:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            in_channels = out_channels
        layers += [nn.Flatten(), nn.Dropout(dropout),
                   nn.Linear(in_channels * height * width, hidden_dim), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.channels_last = bool(channels_last)
        if channels_last:
            self.to(memory_format=torch.channels_last)  # 4-d conv weights only

    def embed(self, x: Tensor) -> Tensor:
        """Last-layer embedding, shape (B, d); the input batch enters channels-last if set
        (same parameter names either way, so checkpoints load in both formats)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return super().embed(x)


class _LSTMFeatures(nn.Module):
    """Embedding (for token ids) -> LSTM -> final hidden state of the last layer."""

    def __init__(self, input_shape: Sequence[int], vocab_size: int | None, embed_dim: int,
                 hidden_dim: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        if vocab_size is None:
            # Real-valued input: a sequence of feature vectors. Images (C, H, W) are read row
            # by row, H steps of C * W features.
            self.embedding = None
            if len(input_shape) not in (2, 3):
                raise ValueError("LSTM without vocab_size needs inputs of shape (T, F) or "
                                 f"(C, H, W), got {tuple(input_shape)}")
            input_size = input_shape[-1] * (input_shape[0] if len(input_shape) == 3 else 1)
        else:
            _check_positive(vocab_size=vocab_size, embed_dim=embed_dim)
            self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
            input_size = embed_dim
        self.lstm = nn.LSTM(input_size, hidden_dim, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)

    def forward(self, x: Tensor) -> Tensor:
        if self.embedding is None:
            if x.dim() == 4:  # (B, C, H, W) -> (B, H, C * W)
                x = x.permute(0, 2, 1, 3).flatten(2)
            _, (h_n, _) = self.lstm(x)
            return h_n[-1]
        # Token ids with 0 as padding (right-padded): each sequence's state at its own last
        # real token. The LSTM is causal, so the output at that position is the final hidden
        # state a packed sequence would give (test_backbones), and the padded batch runs
        # oneDNN's fused LSTM on the CPU, much faster than torch's packed-sequence path.
        last = (x != 0).sum(dim=1).clamp(min=1) - 1
        out, _ = self.lstm(self.embedding(x))
        return out[torch.arange(x.shape[0], device=x.device), last]


class LSTM(Backbone):
    """embedding -> LSTM -> final hidden state -> block -> Linear(d, classes).

    Args:
        input_shape: (T,) for token ids, (T, F) for feature sequences, or (C, H, W) for
            images read row by row.
        num_classes: number of classes.
        block: block factory for the slot.
        vocab_size: number of token ids including padding id 0; ``None`` for real-valued input.
        embed_dim: embedding size (token input only).
        hidden_dim: LSTM hidden size d, also the block width.
        num_layers: stacked LSTM layers.
        dropout: dropout between LSTM layers, in [0, 1).

    Shapes: input (B, T) int64 token ids (0 = padding, sequences right-padded), or
    (B, T, F) / (B, C, H, W) floats; output (B, num_classes). Token input runs the LSTM over
    all T positions (padding too; FLOP counts are per padded sequence) and takes each
    sequence's state at its last real token: the packed-sequence result, faster on CPU.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, block: BlockFactory,
                 vocab_size: int | None = None, embed_dim: int = 128, hidden_dim: int = 256,
                 num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__(num_classes, hidden_dim, block)
        _check_positive(num_layers=num_layers)
        _check_probability("dropout", dropout)
        self.features = _LSTMFeatures(input_shape, vocab_size, embed_dim, hidden_dim,
                                      num_layers, dropout)


def blocks_of(model: nn.Module) -> list[nn.Module]:
    """Every submodule of ``model`` that reports an active neuron ratio, in module order."""
    return [m for m in model.modules() if callable(getattr(m, "active_neuron_ratio", None))]


__all__ = ["CNN", "LSTM", "MLP", "Backbone", "BlockFactory", "blocks_of"]
