"""Both ANR definitions and per-neuron activation frequency on hand-built gates."""

from __future__ import annotations

import pytest
import torch

from midl.blocks import DropoutBlock, FixedAlpha, MIDLayer, RandomTopK
from midl.metrics.anr import GateStatistics, activation_frequency, block_anr


def midl_with_gate(alpha: torch.Tensor, mask: torch.Tensor) -> MIDLayer:
    layer = MIDLayer(alpha.shape[-1], top_k=2)
    layer.last_alpha, layer.last_mask = alpha, mask.bool()
    return layer


ALPHA = torch.tensor([[0.9, 0.6, 0.4, 0.1],
                      [0.2, 0.7, 0.45, 0.3]])
MASK = torch.tensor([[1, 1, 0, 0],
                     [0, 1, 1, 0]])


def test_nonzero_and_threshold_anr():
    layer = midl_with_gate(ALPHA, MASK)
    assert block_anr(layer).item() == pytest.approx(0.5)  # k / d
    # alpha_hat = alpha * mask above 0.5: 0.9, 0.6 in row 0; 0.7 in row 1
    assert block_anr(layer, tau=0.5).item() == pytest.approx(3 / 8)
    assert block_anr(layer, tau=0.0).item() == pytest.approx(0.5)


def test_gate_statistics_accumulate_rows_and_frequency():
    stats = GateStatistics(tau=0.5)
    stats.update(midl_with_gate(ALPHA, MASK))
    stats.update(midl_with_gate(ALPHA[:1], MASK[:1]))  # 3 rows in all
    result = stats.compute()
    assert result["rows"] == 3
    assert result["frequency"] == pytest.approx([2 / 3, 1.0, 1 / 3, 0.0])
    assert result["anr"] == pytest.approx(0.5)
    assert result["anr_tau"] == pytest.approx((2 + 1 + 2) / 12)


def test_sequence_gates_count_positions():
    layer = MIDLayer(6, top_k=3).eval()
    layer(torch.randn(2, 5, 6))
    stats = GateStatistics()
    stats.update(layer)
    assert stats.compute()["rows"] == 10
    assert activation_frequency(layer.last_mask).shape == (6,)


@pytest.mark.parametrize("block_class", [DropoutBlock, FixedAlpha])
def test_dense_block_reports_one_under_both_definitions(block_class):
    # fixed alpha: gate 0.5 on every neuron, no top-k; it falls back like a dense layer
    block = block_class(4).eval()
    block(torch.randn(3, 4))
    assert block_anr(block).item() == 1.0 and block_anr(block, tau=0.5).item() == 1.0
    stats = GateStatistics()
    stats.update(block)
    assert stats.compute() == {"anr": 1.0, "anr_tau": 1.0, "tau": 0.5, "rows": None,
                               "frequency": None}
    with pytest.raises(RuntimeError, match="before any update"):
        GateStatistics().compute()


def test_trained_style_midl_threshold_anr_is_at_most_nonzero_anr():
    torch.manual_seed(0)
    layer = MIDLayer(32, top_k=0.5).eval()
    layer(torch.randn(64, 32))
    assert block_anr(layer).item() == pytest.approx(0.5)
    assert 0.0 <= block_anr(layer, tau=0.5).item() <= 0.5


def test_mask_only_block_counts_rows_and_falls_back_for_threshold():
    block = RandomTopK(8, top_k=2).eval()
    block(torch.randn(5, 8))
    stats = GateStatistics()
    stats.update(block)
    result = stats.compute()
    assert result["rows"] == 5 and sum(result["frequency"]) == pytest.approx(2.0)
    assert result["anr"] == result["anr_tau"] == pytest.approx(0.25)  # nothing to threshold
    assert block_anr(block, tau=0.5).item() == pytest.approx(0.25)
