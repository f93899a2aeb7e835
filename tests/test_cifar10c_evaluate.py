"""The one CIFAR-10-C evaluation entry point: ``midl.evaluate eval_data=cifar10c`` on a
finished CIFAR-10 run (fixture data, a tiny CNN), as ``make tables`` reaches it."""

from __future__ import annotations

import json

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from test_corruptions import write_frost_fixture
from test_data import make_cifar10

from conftest import CONFIG_DIR, compose_train
from midl.evaluation import evaluate, load_checkpoint, load_run_config
from midl.train import train

CORRUPTIONS = ["gaussian_noise", "frost"]


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    """A one-epoch CIFAR-10 run on fixture data (60 training images, 12 test images) with a
    training subset, so its normalisation statistics differ from the full split's."""
    data = tmp_path_factory.mktemp("data")
    make_cifar10(data)
    write_frost_fixture(data / "frost")
    run_dir = tmp_path_factory.mktemp("run")
    cfg = compose_train(["data=cifar10", "model=cnn", "model.channels=[4,8]",
                         "model.hidden_dim=16", f"data.data_dir={data}", "data.val_size=6",
                         "data.train_size=30", "data.batch_size=10", "trainer.max_epochs=1",
                         "logger=none", "callbacks.progress_bar.refresh_rate=0"], run_dir)
    with pytest.warns(UserWarning):  # the fixture's MD5s are not the published ones
        record = train(cfg)
    return record, run_dir


def _evaluate(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("evaluate", overrides=overrides)
    with pytest.warns(UserWarning):
        return evaluate(cfg)


def test_eval_data_cifar10c_reports_each_corruption(cifar_run):
    _, run_dir = cifar_run
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    result = _evaluate([f"ckpt_path='{ckpt}'", "analysis=[]", "eval_data=cifar10c",
                        "eval_name=cifar10c_s3", "+data.severity=3",
                        f"+data.corruptions=[{','.join(CORRUPTIONS)}]"])
    parts = result["test_parts"]
    assert set(parts) == {*CORRUPTIONS, "mean"}
    assert all(0.0 <= parts[n] <= 1.0 for n in CORRUPTIONS)
    # equal blocks: the pooled test accuracy is the mean over the corruptions
    assert result["metrics"]["test/acc"] == pytest.approx(parts["mean"], abs=1e-6)
    assert result["data"]["severity"] == 3 and result["data"]["corruptions"] == CORRUPTIONS
    assert result["data"]["corruption_source"].startswith("generated")
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written["analysis"]["cifar10c_s3"]["test_parts"] == parts


def test_eval_data_keeps_the_runs_training_side_so_normalisation_is_the_same(cifar_run):
    _, run_dir = cifar_run
    cfg = load_run_config(run_dir)
    with pytest.warns(UserWarning):
        dm, module = load_checkpoint(cfg, run_dir / "checkpoints" / "last.ckpt",
                                     {"corruptions": ["contrast"]}, data_config="cifar10c")
        dm.setup("test")
    assert type(dm).__name__ == "CIFAR10CDataModule"
    assert dm.train_size == 30 and dm.val_size == 6  # the run's, not cifar10c.yaml's
    with pytest.warns(UserWarning):
        clean, _ = load_checkpoint(cfg, run_dir / "checkpoints" / "last.ckpt")
        clean.setup("test")
    assert torch.equal(dm.mean, clean.mean) and torch.equal(dm.std, clean.std)
    # the weights were loaded with torch.load(weights_only=True)
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    for key, value in state["state_dict"].items():
        assert torch.equal(module.state_dict()[key], value)


def test_table_analysis_goes_through_midl_evaluate(cifar_run, monkeypatch):
    from midl.reporting import analyses
    from midl.reporting.runs import Run

    _, run_dir = cifar_run
    run = Run(path=run_dir, key=None, status="complete",
              record=json.loads((run_dir / "metrics.json").read_text()))
    import midl.evaluation as ev

    called, original = [], ev.evaluate

    def spy(cfg):
        called.append(cfg.eval_data)
        return original(cfg)

    monkeypatch.setattr(ev, "evaluate", spy)
    with pytest.warns(UserWarning):
        analyses.run_analysis(run, "cifar10c", {"cifar10c_corruptions": ["contrast"]})
    assert called == ["cifar10c"]
    side = json.loads((run_dir / "cifar10c_severity3.json").read_text())
    assert side["severity"] == 3 and set(side["accuracy"]) == {"contrast", "mean"}
    assert analyses.has_result(run, "cifar10c", {"cifar10c_corruptions": ["contrast"]})
