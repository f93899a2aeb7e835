"""A stale result is never reused: a finished run or a checkpoint is reused
only when its recorded configuration hash equals the current one; otherwise the run refuses,
naming the differing settings and how to proceed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from conftest import compose_train
from midl.runs.checkpoints import StaleCheckpointError
from midl.runs.folder import StaleResultError
from midl.runs.provenance import config_hash
from midl.train import train

QUIET = ["callbacks.progress_bar.refresh_rate=0", "logger=none"]


def test_finished_run_of_other_settings_is_refused_not_reused(tmp_path):
    record = train(compose_train([*QUIET, "trainer.max_epochs=1", "seed=7"], tmp_path))
    assert record["config_hash"] == config_hash(record["config"])
    assert record["result_config"]["block"]["top_k"] == 0.5
    before = (tmp_path / "metrics.json").read_bytes()

    with pytest.raises(StaleResultError) as error:  # configs/block/midl.yaml edited, say
        train(compose_train([*QUIET, "trainer.max_epochs=1", "seed=7", "block.top_k=0.125"],
                            tmp_path))
    message = str(error.value)
    assert "block.top_k: recorded 0.5, now 0.125" in message
    assert "force=true" in message and "new folder" in message
    assert (tmp_path / "metrics.json").read_bytes() == before

    # the same settings (paths, logger and progress bar aside) are reused as they are
    same = train(compose_train(["logger=csv", "trainer.max_epochs=1", "seed=7"], tmp_path))
    assert same == json.loads(before)
    # force=true redoes it with the new settings
    redone = train(compose_train([*QUIET, "trainer.max_epochs=1", "seed=7", "block.top_k=0.125",
                                  "force=true"], tmp_path))
    assert redone["config"]["block"]["top_k"] == 0.125


def test_resume_with_other_settings_is_refused(tmp_path):
    train(compose_train([*QUIET, "trainer.max_epochs=1"], tmp_path))
    (tmp_path / "metrics.json").unlink()  # as if killed after its checkpoint
    with pytest.raises(StaleCheckpointError) as error:
        train(compose_train([*QUIET, "trainer.max_epochs=2", "optimizer.lr=0.01"], tmp_path))
    message = str(error.value)
    assert "last.ckpt" in message and "optimizer.lr: recorded 0.001, now 0.01" in message
    assert "trainer.max_epochs: recorded 1, now 2" in message
    assert not (tmp_path / "metrics.json").exists()
    # more epochs alone continue the same training (midl.runs.checkpoints.RESUME_MAY_CHANGE)
    extended = train(compose_train([*QUIET, "trainer.max_epochs=2"], tmp_path))
    assert extended["resumed_from"] == str(tmp_path / "checkpoints" / "last.ckpt")
    assert extended["epochs_trained"] == 2


def test_cli_rerun_after_a_config_change_refuses_and_keeps_the_folder_consistent(tmp_path):
    """The issue's reproduction with the command line: the same folder, top_k changed."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "MIDL_OUTPUT_DIR": str(tmp_path)}

    def midl_train(*overrides: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "midl.train", *QUIET, "debug=limit",
                               "seed=7", f"hydra.run.dir={run_dir}", *overrides],
                              env=env, cwd=tmp_path, capture_output=True, text=True)

    first = midl_train("block.top_k=0.5")
    assert first.returncode == 0, first.stderr[-3000:]
    record = (run_dir / "metrics.json").read_text()
    second = midl_train("block.top_k=0.125")
    assert second.returncode != 0
    assert "block.top_k: recorded 0.5, now 0.125" in second.stderr
    assert (run_dir / "metrics.json").read_text() == record
    assert not (run_dir / "error.txt").exists()  # a refusal is not a failed run
    hydra_config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert hydra_config["block"]["top_k"] == 0.5  # the folder agrees with its metrics.json
