"""FLOPs per sample against hand-computed counts (2 FLOPs per multiply-accumulate)."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from midl.backbones import LSTM, MLP
from midl.blocks import DropoutBlock, MIDLayer, MIDLChannel
from midl.metrics.flops import conditional_block_flops, conditional_flops, count_flops


class Host(nn.Module):
    """A container whose only child is named ``block``."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


@pytest.mark.parametrize("batch", [1, 3])
def test_linear_is_2ab_per_sample(batch):
    a, b = 7, 5
    report = count_flops(nn.Linear(a, b), torch.randn(batch, a))
    assert report.total == 2 * a * b
    assert report.batch_size == batch


def test_conv2d_matches_hand_count():
    # out = 6x6 with 3x3 kernels on a padded 12x12 map, stride 2: each of the 5 * 6 * 6 outputs
    # takes 3 * 3 * 3 multiply-accumulates.
    conv = nn.Conv2d(3, 5, kernel_size=3, stride=2, padding=1)
    report = count_flops(conv, torch.randn(2, 3, 12, 12))
    assert report.total == 2 * (3 * 3 * 3) * 5 * (6 * 6)
    grouped = nn.Conv2d(4, 6, kernel_size=3, groups=2, bias=False)  # 8x8 -> 6x6
    assert count_flops(grouped, torch.randn(1, 4, 8, 8)).total == 2 * (2 * 3 * 3) * 6 * (6 * 6)


def test_one_layer_lstm_matches_hand_count():
    # Per step the four gates need W_ih x (4h x in) and W_hh h (4h x h).
    n_in, hidden, steps = 5, 7, 4
    lstm = nn.LSTM(n_in, hidden, batch_first=True)
    with torch.backends.mkldnn.flags(enabled=True):  # oneDNN's fused kernel would count 0
        report = count_flops(lstm, torch.randn(2, steps, n_in))
    assert report.total == steps * 2 * (4 * hidden * n_in + 4 * hidden * hidden)


def test_lstm_backbone_counts_lstm_block_and_head():
    net = LSTM((6, 3), 4, functools.partial(DropoutBlock), hidden_dim=8).eval()
    report = count_flops(net, torch.randn(1, 6, 3))
    lstm = 6 * 2 * (4 * 8 * 3 + 4 * 8 * 8)
    assert report.blocks == {"block": 2 * 8 * 8}
    assert report.total == lstm + 2 * 8 * 8 + 2 * 8 * 4


def test_midl_block_dense_and_conditional_counts():
    d, r, k = 16, 8, 4
    net = MLP((10,), 3, functools.partial(MIDLayer, top_k=k, rank=r), hidden_dim=d).eval()
    report = count_flops(net, torch.randn(1, 10))
    # gate d x d, F1 d x r and r x d, F2 two d x d
    block = 2 * (d * d + d * r + r * d + 2 * d * d)
    assert report.blocks == {"block": block}
    assert report.total == 2 * 10 * d + block + 2 * d * 3
    assert report.rows_per_sample == {"block": 1.0}
    # a sparse implementation skips F1's second Linear for the d - k unselected rows
    cond = conditional_flops(net, report, {"block": k / d})
    assert cond["blocks"]["block"] == block - 2 * r * (d - k)
    assert cond["total"] == report.total - 2 * r * (d - k)
    assert conditional_block_flops(net.block, block, 1.0, 2 * r * d) == block
    assert conditional_block_flops(net.block, block, 0.25, 2 * r * d) == block - 1.5 * r * d


def test_channel_midl_skips_f1_output_channels_at_every_position():
    # MID-L per channel on a (B, C, H, W) map: F1's last 1x1 conv r -> C runs at H * W places
    channels, rank, hw = 8, 4, 5 * 5
    host = Host(MIDLChannel(channels, top_k=2, rank=rank)).eval()
    report = count_flops(host, torch.randn(1, channels, 5, 5))
    cond = conditional_flops(host, report, {"block": 2 / channels})
    assert cond["blocks"]["block"] == report.blocks["block"] - 2 * rank * (channels - 2) * hw


def test_dense_block_conditional_equals_dense_and_bad_fraction_raises():
    block = DropoutBlock(8)
    assert conditional_block_flops(block, 128.0, 1.0) == 128.0
    with pytest.raises(ValueError, match="active_fraction"):
        conditional_block_flops(block, 128.0, 1.5)
    with pytest.raises(ValueError, match="batch"):
        count_flops(nn.Linear(2, 2), torch.tensor(1.0))
