"""An interrupted run resumes from last.ckpt and ends exactly where an uninterrupted one does."""

from __future__ import annotations

from midl.config import run_name
from midl.train import train

FAST = ["callbacks.progress_bar.refresh_rate=0", "trainer.max_epochs=3"]


def test_resumed_run_matches_uninterrupted_run(tmp_path, compose_cfg):
    from conftest import compose_train

    whole = train(compose_train(FAST, tmp_path / "whole"))

    # the same run, stopped after its first epoch (as if killed before testing) ...
    part_dir = tmp_path / "part"
    train(compose_train([*FAST, "trainer.max_epochs=1"], part_dir))
    (part_dir / "metrics.json").unlink()
    assert (part_dir / "checkpoints" / "last.ckpt").exists()
    # ... and rerun: it resumes at epoch 1 and trains epochs 1 and 2 only
    resumed = train(compose_train(FAST, part_dir))
    assert resumed["resumed_from"] == str(part_dir / "checkpoints" / "last.ckpt")
    assert resumed["epochs_trained"] == whole["epochs_trained"] == 3
    assert resumed["test"] == whole["test"]


def test_run_name_from_overrides():
    assert run_name("") == "default"
    assert run_name("block=midl,seed=3") == "block=midl,seed=3"
    assert run_name("data.data_dir=/a/b,seed=1") == "data.data_dir=_a_b,seed=1"
