"""Hydra launchers for table sweeps: joblib (local parallel) and submitit (SLURM, local)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from midl.evaluate import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {
    "joblib": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "local_parallel": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "submitit_local": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
    "submitit_slurm": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
    "slurm_gpu": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
}


@pytest.mark.parametrize("launcher", sorted(TARGETS))
def test_launcher_composes_with_a_table_sweep(launcher):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra/launcher={launcher}", "+experiment=table4",
                                          "+scale=cpu"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == TARGETS[launcher]
    assert str(cfg.hydra.sweeper.params.seed) == "0,1,2,3,4"
    if launcher == "slurm_gpu":
        assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.tasks_per_node == 1
    if launcher == "local_parallel":
        assert cfg.hydra.launcher.n_jobs == 2


@pytest.mark.slow
def test_submitit_local_runs_a_tiny_sweep(tmp_path):
    """Two fast_dev_run jobs through submitit's local executor land in the usual folders."""
    env = {**os.environ, "MIDL_OUTPUT_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "midl.train", "-m", "hydra/launcher=submitit_local", "debug=fdr",
         "seed=0,1", "hydra.launcher.timeout_min=10"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for seed in (0, 1):
        record = json.loads((tmp_path / "train" / "multirun" / f"debug=fdr,seed={seed}"
                             / "metrics.json").read_text())
        assert record["seed"] == seed and "test/acc" in record["test"]
    assert (tmp_path / "train" / "multirun" / ".submitit").is_dir()
