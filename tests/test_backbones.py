"""Backbones: the block slot, shapes, and one fast_dev_run step each through Hydra."""

from __future__ import annotations

import functools

import pytest
import torch

from midl.backbones import CNN, LSTM, MLP, blocks_of
from midl.blocks import DropoutBlock, MIDLayer
from midl.train import train

BLOCK = functools.partial(MIDLayer, top_k=0.5)


@pytest.mark.parametrize("cls, shape", [(MLP, (1, 8, 8)), (CNN, (3, 32, 32)), (LSTM, (1, 8, 8)),
                                        (LSTM, (12, 5))])
def test_backbone_output_shape_and_slot(cls, shape):
    net = cls(input_shape=shape, num_classes=7, block=BLOCK, hidden_dim=16)
    y = net(torch.randn(3, *shape))
    assert y.shape == (3, 7)
    assert isinstance(net.block, MIDLayer) and net.block.dim == 16
    assert blocks_of(net) == [net.block]
    assert net.embed(torch.randn(3, *shape)).shape == (3, 16)


def test_lstm_token_input_ignores_padding():
    torch.manual_seed(0)
    net = LSTM(input_shape=(6,), num_classes=2, block=functools.partial(DropoutBlock, p=0.0),
               vocab_size=20, hidden_dim=8).eval()
    tokens = torch.tensor([[5, 3, 9, 0, 0, 0]])
    longer_padding = torch.tensor([[5, 3, 9, 0, 0, 0, 0, 0, 0]])
    torch.testing.assert_close(net(tokens), net(longer_padding))
    assert not torch.allclose(net(tokens), net(torch.tensor([[5, 3, 8, 0, 0, 0]])))


@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_token_state_is_the_packed_sequence_final_state(num_layers):
    """Each review's embedding is the last layer's hidden state after its own last real token,
    as ``pack_padded_sequence`` gives it (the reference), with the same gradients, for
    sequences of every length in one batch (an all-padding row counts as one pad token)."""
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(1)
    net = LSTM(input_shape=(12,), num_classes=2, block=functools.partial(DropoutBlock, p=0.0),
               vocab_size=30, embed_dim=6, hidden_dim=8, num_layers=num_layers)
    lengths = torch.tensor([12, 7, 1, 0, 12, 3])
    x = torch.randint(1, 30, (6, 12))
    x[torch.arange(12) >= lengths[:, None]] = 0
    ours = net.features(x)
    feats = net.features
    packed = pack_padded_sequence(feats.embedding(x), lengths.clamp(min=1), batch_first=True,
                                  enforce_sorted=False)
    reference = feats.lstm(packed)[1][0][-1]
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    weight = feats.lstm.weight_hh_l0
    (g_ours,) = torch.autograd.grad(ours.square().sum(), weight)
    (g_ref,) = torch.autograd.grad(reference.square().sum(), weight)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-4, atol=1e-6)


def test_backbone_errors_name_the_value():
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        CNN(input_shape=(64,), num_classes=2, block=BLOCK)
    with pytest.raises(ValueError, match="hidden_dim=0"):
        MLP(input_shape=(4,), num_classes=2, block=BLOCK, hidden_dim=0)
    with pytest.raises(ValueError, match="dropout=1.5"):
        MLP(input_shape=(4,), num_classes=2, block=BLOCK, dropout=1.5)


@pytest.mark.parametrize("model", ["mlp", "cnn", "lstm"])
@pytest.mark.parametrize("block", ["midl", "dropout"])
def test_fast_dev_run_through_hydra(compose_cfg, tmp_path, model, block):
    cfg = compose_cfg([f"model={model}", f"block={block}", "debug=fdr"])
    record = train(cfg)
    assert set(record["test"]) >= {"test/acc", "test/f1", "test/loss", "test/anr"}
    expected_anr = 0.5 if block == "midl" else 1.0
    assert record["test"]["test/anr"] == pytest.approx(expected_anr)
    assert (tmp_path / "metrics.json").exists()
