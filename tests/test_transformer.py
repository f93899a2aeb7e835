"""MID-L in a Transformer's feed-forward slot (midl/transformer.py, model=transformer)."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from hydra.utils import instantiate
from test_blocks import block_config
from test_data import write_imdb_parquet

from conftest import compose_train
from midl.blocks import FFNBlock, MIDLayer
from midl.transformer import Transformer

SLOT_BLOCKS = ["ffn", "midl_ffn", "midl", "switch", "loramoe", "dropout"]


def _tokens(batch: int = 3, length: int = 16, real: tuple[int, ...] = (16, 9, 4)) -> torch.Tensor:
    x = torch.randint(1, 50, (batch, length))
    for row, n in enumerate(real):
        x[row, n:] = 0                       # right padding, id 0
    return x


def _model(name: str, **kwargs) -> Transformer:
    torch.manual_seed(0)
    return Transformer((16,), 2, instantiate(block_config(name)), vocab_size=50, dim=32,
                       heads=4, **kwargs)


@pytest.mark.parametrize("name", SLOT_BLOCKS)
def test_each_block_fills_the_feed_forward_slot_forward_and_backward(name):
    model = _model(name)
    x = _tokens()
    logits = model(x)
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()
    logits.sum().backward()
    for layer in model.features.layers:
        grads = [p.grad for p in layer.block.parameters() if p.requires_grad]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), name


@pytest.mark.parametrize("name", SLOT_BLOCKS)
def test_padded_positions_change_nothing(name):
    """Whatever a padded position holds between layers, the logits stay the same, and the
    block only ever sees the real tokens (Switch's capacity counts no padding)."""
    model = _model(name).eval()
    x = _tokens()
    seen = []
    for layer in model.features.layers:
        layer.block.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    clean = model(x)
    assert seen == [int((x != 0).sum())] * 2

    def scramble(module, args, out):             # garbage in every padded position
        return out + 1e3 * torch.randn_like(out) * (x == 0).unsqueeze(-1)

    handle = model.features.layers[0].register_forward_hook(scramble)
    noisy = model(x)
    handle.remove()
    torch.testing.assert_close(noisy, clean)
    # more trailing padding (a longer batch) does not change a sequence's logits either
    longer = Transformer((24,), 2, instantiate(block_config(name)), vocab_size=50, dim=32,
                         heads=4).eval()
    state = model.state_dict()
    state["features.positions.weight"] = torch.cat(
        [state["features.positions.weight"], longer.features.positions.weight[16:].detach()])
    longer.load_state_dict(state)
    padded = torch.cat([x, torch.zeros(3, 8, dtype=torch.long)], dim=1)
    if name != "switch":   # Switch routes with a capacity shared by the batch's tokens
        torch.testing.assert_close(longer(padded), clean)


def test_midl_ffn_slot_has_the_parameter_count_its_config_states():
    d = 128
    midl = instantiate(block_config("midl_ffn"))(d)
    ffn = FFNBlock(d)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ffn) == 8 * d * d + 5 * d == 131_712
    assert count(midl) == 10 * d * d + 7.5 * d == 164_800
    # F2 is the FFN's two layers (GELU between), the paper's F2 otherwise unchanged
    assert [type(m) for m in midl.f2] == [torch.nn.Linear, torch.nn.GELU, torch.nn.Linear]
    assert midl.f2[0].out_features == 4 * d
    assert count(MIDLayer(256)) == 263_296          # the default is the paper's layer


def test_attention_dropout_acts_on_the_attention_weights_alone():
    """``attention_dropout`` is the attention module's dropout and nothing else: with every
    other dropout off, two training-mode passes differ only when it is positive."""
    x = _tokens()
    for p, differs in ((0.0, False), (0.5, True)):
        model = Transformer((16,), 2, partial(FFNBlock, dropout=0.0), vocab_size=50, dim=32,
                            heads=4, dropout=0.0, attention_dropout=p).train()
        assert all(layer.attention.dropout == p for layer in model.features.layers)
        assert (not torch.equal(model(x), model(x))) is differs, p
    with pytest.raises(ValueError, match="attention_dropout"):
        _model("ffn", attention_dropout=1.0)


def test_bad_transformer_settings_are_named():
    block = partial(FFNBlock)
    with pytest.raises(ValueError, match="heads=3 must divide"):
        Transformer((16,), 2, block, vocab_size=50, dim=32, heads=3)
    with pytest.raises(ValueError, match="data=imdb"):
        Transformer((1, 28, 28), 10, block, vocab_size=50)
    with pytest.raises(ValueError, match="data=imdb"):
        Transformer((16,), 2, block)


@pytest.mark.parametrize("block", ["ffn", "midl_ffn"])
def test_two_epochs_on_an_imdb_fixture_learn(tmp_path, block):
    from midl.train import train

    write_imdb_parquet(tmp_path / "data" / "imdb", n_train=200, n_test=60)
    cfg = compose_train(["+experiment/setting=imdb_transformer", "+scale=smoke",
                         f"block={block}", f"paths.data_dir={tmp_path / 'data'}",
                         "data.val_size=20", "data.train_size=null", "data.max_length=32",
                         "trainer.max_epochs=2",
                         "callbacks.progress_bar.refresh_rate=0"], tmp_path / "run")
    record = train(cfg)
    assert record["test"]["test/acc"] > 0.75, record["test"]     # chance: 0.5
    assert record["test"]["test/flops"] > 0
