"""ClassificationModule metrics against independent computations."""

from __future__ import annotations

import functools

import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from midl.backbones import MLP
from midl.blocks import MIDLayer
from midl.module import ClassF1Score, ClassificationModule


def test_class_f1_matches_scikit_learn():
    torch.manual_seed(0)
    logits, y = torch.randn(200, 3), torch.randint(0, 3, (200,))
    for positive in range(3):
        metric = ClassF1Score(3, positive)
        metric.update(logits, y)
        expected = f1_score(y, logits.argmax(1), labels=[positive], average=None)[0]
        assert metric.compute().item() == pytest.approx(expected)


def test_stage_metrics_match_scikit_learn():
    torch.manual_seed(1)
    net = MLP((4,), 3, functools.partial(MIDLayer, top_k=2), hidden_dim=8)
    module = ClassificationModule(net, 3, functools.partial(torch.optim.Adam, lr=1e-3))
    xs, ys, preds = [], [], []
    for _ in range(3):
        x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
        logits = net(x)
        module.test_metrics.update(logits, y)
        module.test_anr.update(net.block.active_neuron_ratio(), weight=len(y))
        xs.append(x), ys.append(y), preds.append(logits.argmax(1))
    y, pred = torch.cat(ys), torch.cat(preds)
    result = module.test_metrics.compute()
    assert result["test/acc"].item() == pytest.approx(accuracy_score(y, pred))
    assert result["test/f1"].item() == pytest.approx(f1_score(y, pred, average="macro"))
    assert module.test_anr.compute().item() == pytest.approx(2 / 8)
    with pytest.raises(ValueError, match="positive_class=3"):
        ClassificationModule(net, 3, torch.optim.Adam, positive_class=3)


def test_block_extra_metrics_are_logged_in_test(compose_cfg):
    from midl.train import train

    record = train(compose_cfg(["block=concrete_dropout", "debug=fdr"]))
    # one training step moves the learned rate only slightly from its initial p = 0.1
    assert record["test"]["test/block/p"] == pytest.approx(0.1, abs=0.01)


def test_training_epoch_means_match_an_independent_pass(tmp_path):
    """With lr = 0 the network is fixed, so the epoch's logged train/loss, train/acc and
    train/anr (summed on the device, logged once per epoch) equal one pass over the
    training set computed here."""
    import lightning.pytorch as pl
    import torch.nn.functional as F

    from midl.data import DigitsDataModule

    torch.manual_seed(0)
    dm = DigitsDataModule(batch_size=50)
    dm.setup("fit")
    net = MLP(dm.input_shape, 10, functools.partial(MIDLayer, top_k=0.25, gate_dropout=0.0),
              hidden_dim=16)
    module = ClassificationModule(net, 10, functools.partial(torch.optim.SGD, lr=0.0))
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, default_root_dir=tmp_path,
                         log_every_n_steps=5)
    trainer.fit(module, datamodule=dm)
    with torch.no_grad():
        x = dm.transform(dm.train_set.x, train=True)
        logits = net.train()(x)
    logged = trainer.callback_metrics
    assert logged["train/loss"].item() == pytest.approx(
        F.cross_entropy(logits, dm.train_set.y).item(), rel=1e-5)
    assert logged["train/acc"].item() == pytest.approx(
        accuracy_score(dm.train_set.y, logits.argmax(1)))
    assert logged["train/anr"].item() == pytest.approx(0.25)
    assert "train/loss_step" in logged and "train/f1" not in logged
