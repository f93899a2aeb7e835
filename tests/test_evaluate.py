"""midl.evaluate on a checkpoint from a one-epoch run on the embedded digits data."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from conftest import CONFIG_DIR
from midl.evaluation import ANALYSES, evaluate, save_analysis
from midl.train import train

TEST_STAGE = ("test/acc", "test/f1", "test/anr", "test/anr_tau", "test/ece", "test/brier",
              "test/flops", "test/flops_conditional")


def compose_evaluate(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return compose("evaluate", overrides=overrides)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A one-epoch MID-L run on digits (small width), its record and run folder."""
    from conftest import compose_train

    run_dir = tmp_path_factory.mktemp("run")
    cfg = compose_train(["trainer.max_epochs=1", "model.hidden_dim=32", "logger=none",
                         "callbacks.progress_bar.refresh_rate=0"], run_dir)
    return train(cfg), run_dir


def test_training_test_stage_logs_every_default_metric(trained_run):
    record, _ = trained_run
    test = record["test"]
    assert set(TEST_STAGE) <= set(test)
    assert test["test/anr"] == pytest.approx(0.5)
    assert 0.0 <= test["test/anr_tau"] <= test["test/anr"]
    assert 0.0 < test["test/ece"] < 1.0 and 0.0 < test["test/brier"] < 2.0
    # d = 32, r = 16 block: gate d*d, F1 2*d*r, F2 2*d*d; input 64 -> 32; head 32 -> 10
    block = 2 * (32 * 32 + 2 * 32 * 16 + 2 * 32 * 32)
    assert test["test/flops"] == 2 * 64 * 32 + block + 2 * 32 * 10
    assert test["test/flops_conditional"] == test["test/flops"] - 2 * 16 * 32 * 0.5


def test_evaluate_writes_every_requested_field_and_both_figures(trained_run):
    record, run_dir = trained_run
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    cfg = compose_evaluate([f'ckpt_path="{ckpt}"', "smi.n_directions=20", "smi.max_samples=300",
                            "latency.warmup=1", "latency.repeats=5", "memory.batch_sizes=[64]",
                            "memory.repeats=1", "tsne.n_samples=150"])
    result = evaluate(cfg)
    assert set(ANALYSES) <= set(result)

    written = json.loads((run_dir / "metrics.json").read_text())
    assert written["test"] == record["test"]  # the run's record is kept
    analysis = written["analysis"]["test"]
    assert analysis["checkpoint"] == str(ckpt.resolve())
    # the same weights give the training run's test metrics
    for key in TEST_STAGE:
        assert analysis["metrics"][key] == pytest.approx(record["test"][key], rel=1e-5), key
    assert analysis["flops"]["dense"] == record["test"]["test/flops"]
    assert analysis["flops"]["conditional"] == record["test"]["test/flops_conditional"]
    assert analysis["flops"]["blocks"]["block"]["anr"] == pytest.approx(0.5)
    assert analysis["calibration"]["ece"] == pytest.approx(record["test"]["test/ece"], abs=1e-5)
    assert analysis["calibration"]["brier"] == pytest.approx(record["test"]["test/brier"],
                                                             abs=1e-5)
    assert set(analysis["latency"]) == {"batch_1", "batch_64"}
    assert analysis["latency"]["batch_64"]["median_ms"] > 0
    assert analysis["latency"]["batch_1"]["device"] == "cpu"
    assert analysis["memory"]["batch_64"]["peak_mb"] > 0
    assert "isolated process" in analysis["memory"]["batch_64"]["method"]
    smi = analysis["smi"]
    assert smi["units"] == "nats" and smi["embedding"]["n_directions"] == 20
    assert smi["embedding"]["n_samples"] == 300 and smi["selected"]["smi"] >= 0
    for part in ("embedding", "selected"):  # the permuted-label bias floor beside every SMI
        assert smi[part]["above_floor"] == pytest.approx(smi[part]["smi"] - smi[part]["floor"])
    assert len(smi["per_neuron_mi"]) == len(smi["activation_frequency"]) == 32
    assert sum(smi["activation_frequency"]) == pytest.approx(16)  # k = 16 of 32 per input
    for figure in (smi["figure3"], analysis["tsne"]["figure4"]):
        path = run_dir / figure
        assert path.suffix == ".png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_analysis_keeps_other_entries(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"test": {"test/acc": 0.5}}))
    save_analysis(tmp_path, "test", {"a": 1})
    save_analysis(tmp_path, "noisy", {"b": 2})
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written == {"test": {"test/acc": 0.5}, "analysis": {"test": {"a": 1},
                                                               "noisy": {"b": 2}}}


def test_unknown_analysis_is_refused(trained_run):
    _, run_dir = trained_run
    cfg = compose_evaluate([f'ckpt_path="{run_dir / "checkpoints" / "last.ckpt"}"',
                            "analysis=[flops,speed]"])
    with pytest.raises(ValueError, match="speed"):
        evaluate(cfg)


def test_other_data_config_is_stored_under_its_own_name(trained_run):
    _, run_dir = trained_run
    cfg = compose_evaluate([f'ckpt_path="{run_dir / "checkpoints" / "last.ckpt"}"',
                            "analysis=[calibration]", "eval_data=digits", "eval_name=digits_b32",
                            "+data.batch_size=32"])
    result = evaluate(cfg)
    written = json.loads((run_dir / "metrics.json").read_text())["analysis"]["digits_b32"]
    assert written["calibration"]["ece"] == pytest.approx(result["calibration"]["ece"])
    assert written["config"]["data"] == {"batch_size": 32}
    with pytest.raises(FileNotFoundError, match="no_such_data"):
        evaluate(compose_evaluate([f'ckpt_path="{run_dir / "checkpoints" / "last.ckpt"}"',
                                   "analysis=[]", "eval_data=no_such_data"]))


def test_model_overrides_rebuild_the_same_network_in_another_layout(tmp_path):
    """``model`` overrides (``+model.channels_last=true``, as the efficiency analysis passes
    for every CNN of a scale) load the run's weights into the network built with them: an
    NCHW-trained CNN evaluated channels-last gives the same outputs to float rounding."""
    import torch

    from conftest import compose_train
    from midl.evaluation import load_checkpoint, load_run_config

    cfg = compose_train(["model=cnn", "model.channels=[4,8]", "model.hidden_dim=16",
                         "trainer.max_epochs=1", "logger=none",
                         "callbacks.progress_bar.refresh_rate=0"], tmp_path)
    train(cfg)
    run_cfg, ckpt = load_run_config(tmp_path), tmp_path / "checkpoints" / "last.ckpt"
    assert run_cfg.model.channels_last is False
    data, plain = load_checkpoint(run_cfg, ckpt)
    _, fast = load_checkpoint(run_cfg, ckpt, model_overrides={"channels_last": True})
    conv = next(m for m in fast.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert fast.net.channels_last and conv.weight.is_contiguous(
        memory_format=torch.channels_last)
    data.setup("test")
    x, _ = data.on_after_batch_transfer(next(iter(data.test_dataloader())), 0)  # normalised
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError):  # an override that changes the weights' shapes
        load_checkpoint(run_cfg, ckpt, model_overrides={"hidden_dim": 8})
