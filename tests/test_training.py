"""Real training runs that must learn, and the metrics.json every run writes."""

from __future__ import annotations

import json
import os

import pytest

from conftest import require_real
from midl.train import train


def test_default_digits_run_learns_and_writes_metrics_json(compose_cfg, tmp_path):
    cfg = compose_cfg(["callbacks.progress_bar.refresh_rate=0"])
    record = train(cfg)
    assert record["test"]["test/acc"] >= 0.90, record["test"]
    assert record["test"]["test/f1"] >= 0.88
    assert record["test"]["test/anr"] == pytest.approx(0.5)

    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["test"] == record["test"]
    assert written["seed"] == 0
    assert written["config"]["block"]["_target_"] == "midl.blocks.MIDLayer"
    assert written["config"]["paths"]["output_dir"] == str(tmp_path)
    assert {"hash", "dirty"} <= set(written["commit"])
    assert written["hardware"]["cpu_count"] >= 1
    # the CPU model, not just the architecture: records from two machines must be told apart
    assert written["hardware"]["cpu_model"] not in ("", "x86_64", "aarch64")
    assert written["wall_time_s"] > 0
    assert written["epochs_trained"] == cfg.trainer.max_epochs
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert (tmp_path / "csv" / "metrics.csv").exists()
    assert written["tested_checkpoint"].startswith(str(tmp_path / "checkpoints"))

    # an existing result of the same settings is never redone or overwritten (a result of
    # other settings is refused: tests/test_stale_results.py)
    before = (tmp_path / "metrics.json").read_bytes()
    again = train(compose_cfg(["callbacks.progress_bar.refresh_rate=0", "force=false"]))
    assert again == written and (tmp_path / "metrics.json").read_bytes() == before


def test_best_checkpoint_run_also_tests_the_final_weights(compose_cfg, tmp_path):
    """``test`` is of the best val/acc checkpoint, ``test_last`` of the final weights (the
    label-noise tables show both): each equals the accuracy of its checkpoint's weights."""
    import torch

    from midl.factory import build

    cfg = compose_cfg(["callbacks.progress_bar.refresh_rate=0", "trainer.max_epochs=4",
                       "optimizer.lr=0.05"])  # a large step: the last epoch is not the best
    record = train(cfg)
    datamodule, module = build(cfg)
    datamodule.setup("test")

    def accuracy(checkpoint: str) -> float:
        state = torch.load(tmp_path / "checkpoints" / checkpoint, weights_only=True)
        module.load_state_dict(state["state_dict"])
        module.eval()
        with torch.no_grad():
            batches = [datamodule.on_after_batch_transfer(b, 0)
                       for b in datamodule.test_dataloader()]  # uint8 -> float inputs
            pairs = [(module(x).argmax(1), y) for x, y in batches]
        return float(sum((p == y).sum() for p, y in pairs) / sum(len(y) for _, y in pairs))

    best = os.path.basename(record["tested_checkpoint"])
    assert accuracy(best) != accuracy("last.ckpt")  # else the test could not tell them apart
    assert record["test"]["test/acc"] == pytest.approx(accuracy(best), abs=1e-6)
    assert record["test_last"]["test/acc"] == pytest.approx(accuracy("last.ckpt"), abs=1e-6)
    assert set(record["test_last"]) == set(record["test"])


@pytest.mark.slow
def test_mnist_mlp_midl_one_epoch_reaches_95_percent(compose_cfg):
    root = require_real("MNIST/raw")
    cfg = compose_cfg(["+experiment=mnist_mlp", "trainer.max_epochs=1", f"paths.data_dir={root}",
                       "callbacks.progress_bar.refresh_rate=0", "logger=none"])
    record = train(cfg)
    assert record["test"]["test/acc"] >= 0.95, record["test"]
    assert record["test"]["test/anr"] == pytest.approx(0.5)


@pytest.mark.parametrize("gpu", [False, True])
def test_nvml_cuda_check_is_cleared_only_without_a_gpu(monkeypatch, gpu):
    import torch

    from midl.factory import cheap_cuda_checks

    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert cheap_cuda_checks() is (not gpu)
    assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == ("1" if gpu else "0")


def test_compile_option_compiles_the_network_in_place(compose_cfg):
    """``compile=true`` compiles the network with ``nn.Module.compile``: same parameter
    names in checkpoints as without it."""
    from midl.factory import build

    _, compiled = build(compose_cfg(["compile=true"]))
    _, eager = build(compose_cfg([]))
    assert compiled.net._compiled_call_impl is not None and eager.net._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(eager.state_dict())
