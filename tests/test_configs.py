"""Every experiment config composes into a buildable run; sweep folders are deterministic."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra.utils import instantiate

from conftest import CONFIG_DIR

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))


def test_there_are_experiments():
    assert {"mnist_mlp", "cifar10_ablation"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes(compose_cfg, experiment):
    cfg = compose_cfg([f"+experiment={experiment}"])
    # single-run experiments name their folder; table sweeps take the name of their setting
    assert cfg.task_name == experiment or experiment.startswith(
        ("table", "baselines", "figures", "regimes", "transformer"))
    # every group the experiment selects resolves to an importable target
    for group in ("data", "model", "block", "trainer"):
        target = cfg[group]._target_
        module, _, name = target.rpartition(".")
        assert getattr(__import__(module, fromlist=[name]), name)
    block = instantiate(cfg.block)(32)
    assert block(__import__("torch").randn(2, 32)).shape == (2, 32)


def test_multirun_writes_deterministic_sweep_folders_and_skips_finished_runs(tmp_path):
    env = {**os.environ, "MIDL_OUTPUT_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "midl.train", "-m", "seed=0,1", "debug=fdr"]
    first = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    sweep = tmp_path / "train" / "multirun"
    # folders are named from the command-line overrides, never from the time
    names = ["debug=fdr,seed=0", "debug=fdr,seed=1"]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == names
    records = [json.loads((sweep / name / "metrics.json").read_text()) for name in names]
    assert [r["seed"] for r in records] == [0, 1]
    assert records[0]["test"]["test/anr"] == 0.5

    second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (second.stdout + second.stderr).count("this run is complete with the same settings") == 2
