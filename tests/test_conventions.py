"""The lightning-hydra-template conventions: every config choice composes and builds what it
names; extras print the config tree; an Optuna search optimises val/acc; Make passes one data
root to every target."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import (
    EarlyStopping,
    ModelCheckpoint,
    RichProgressBar,
    TQDMProgressBar,
)
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.profilers import SimpleProfiler
from lightning.pytorch.strategies import DDPStrategy

from conftest import CONFIG_DIR, REPO
from midl.extras import best_validation, config_tree, objective, start_run


def _callbacks(cfg):
    return {name: instantiate(c) for name, c in cfg.callbacks.items()}


def test_callbacks_early_stopping_adds_to_the_defaults(compose_cfg):
    callbacks = _callbacks(compose_cfg(["callbacks=early_stopping"]))
    stopping = callbacks["early_stopping"]
    assert isinstance(stopping, EarlyStopping)
    assert stopping.monitor == "val/acc" and stopping.mode == "max" and stopping.patience == 3
    assert isinstance(callbacks["model_checkpoint"], ModelCheckpoint)   # defaults kept
    assert isinstance(callbacks["progress_bar"], TQDMProgressBar)


def test_callbacks_rich_progress_bar_replaces_tqdm(compose_cfg):
    callbacks = _callbacks(compose_cfg(["callbacks=rich_progress_bar"]))
    bars = [c for c in callbacks.values() if isinstance(c, (RichProgressBar, TQDMProgressBar))]
    assert len(bars) == 1 and isinstance(bars[0], RichProgressBar)   # Lightning allows one
    both = _callbacks(compose_cfg(["callbacks=[early_stopping,rich_progress_bar]"]))
    assert isinstance(both["progress_bar"], RichProgressBar)
    assert isinstance(both["early_stopping"], EarlyStopping)


def test_logger_tensorboard_alone_or_beside_csv(compose_cfg, tmp_path):
    cfg = compose_cfg(["logger=tensorboard"])
    assert list(cfg.logger) == ["tensorboard"]
    logger = instantiate(cfg.logger.tensorboard)
    assert isinstance(logger, TensorBoardLogger)
    assert Path(logger.log_dir) == tmp_path / "tensorboard"
    both = compose_cfg(["logger=[csv,tensorboard]"])
    loggers = [instantiate(lg) for lg in both.logger.values()]
    assert len(loggers) == 2 and isinstance(loggers[0], CSVLogger)   # midl's appending CSV
    assert isinstance(loggers[1], TensorBoardLogger)


def test_debug_overfit_and_profiler(compose_cfg, tmp_path):
    overfit = instantiate(compose_cfg(["debug=overfit"]).trainer, logger=False,
                          enable_checkpointing=False)
    assert overfit.overfit_batches == 3 and overfit.max_epochs == 20
    profiled = instantiate(compose_cfg(["debug=profiler"]).trainer, logger=False,
                           enable_checkpointing=False)
    assert isinstance(profiled.profiler, SimpleProfiler) and profiled.max_epochs == 1
    assert Path(profiled.profiler.dirpath) == tmp_path


def test_trainer_ddp_builds_a_ddp_trainer(compose_cfg):
    cfg = compose_cfg(["trainer=ddp"])
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.accelerator == "gpu"
    assert cfg.trainer.devices == -1
    # the same config on 2 CPU processes (no GPU needed to build it)
    trainer = instantiate(cfg.trainer, accelerator="cpu", devices=2, logger=False,
                          enable_checkpointing=False)
    assert isinstance(trainer.strategy, DDPStrategy) and trainer.num_devices == 2


def test_hparams_search_is_an_optuna_sweep_over_midl():
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("train", overrides=["hparams_search=mnist_midl_optuna"],
                      return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("optuna_sweeper.OptunaSweeper")
    assert sweeper.direction == "maximize"
    assert set(sweeper.params) == {"block.top_k", "block.gate_dropout"}
    assert cfg.optimized_metric == "val/acc" and cfg.hydra.mode == RunMode.MULTIRUN
    assert cfg.data._target_ == "midl.data.MNISTDataModule"
    assert cfg.block._target_ == "midl.blocks.MIDLayer"
    assert get_class(sweeper._target_).__name__ == "OptunaSweeper"


def test_config_tree_lists_every_group_and_extras_flag(compose_cfg, capsys):
    cfg = compose_cfg(["extras.print_config=false"])
    start_run(cfg)
    assert capsys.readouterr().out == ""
    cfg = compose_cfg([])
    assert cfg.extras.print_config is True   # the default prints
    start_run(cfg)
    out = capsys.readouterr().out
    for group in ("data", "model", "block", "trainer", "callbacks", "logger", "paths",
                  "optimizer", "seed"):
        assert f"── {group}" in out, group
    assert "midl.blocks.MIDLayer" in out and "top_k: 0.5" in out
    assert [str(child.label) for child in config_tree(cfg).children][:3] == ["data", "model",
                                                                             "block"]


def test_objective_reads_the_named_metric():
    record = {"test": {"test/acc": 0.9}, "best_val": {"val/acc": 0.95}}
    assert objective(record, None) == 0.9
    assert objective(record, "val/acc") == 0.95
    assert objective({"test/acc": 0.8}, "test/acc") == 0.8       # flat records too
    assert objective({"test": {}}, None) is None
    with pytest.raises(KeyError, match=r"optimized_metric='val/f1'.*\['test/acc', 'val/acc'\]"):
        objective(record, "val/f1")


def test_best_validation_without_a_checkpoint_callback():
    class NoCheckpoint:
        checkpoint_callback = None

    assert best_validation(NoCheckpoint()) == {}


def test_optuna_search_runs_and_optimises_val_acc(tmp_path):
    """Two trials on the embedded digits data: each run records its best val/acc and Optuna's
    best value is the larger of the two (not a test accuracy)."""
    env = {**os.environ, "MIDL_OUTPUT_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "midl.train", "hparams_search=mnist_midl_optuna", "data=digits",
         "hydra.sweeper.n_trials=2", "debug=limit", "extras.print_config=false"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "mnist_midl_optuna" / "multirun"
    records = [json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")]
    assert len(records) == 2
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(r["best_val"]["val/acc"] for r in records)
    assert set(best["best_params"]) == {"block.top_k", "block.gate_dropout"}


def test_a_run_with_the_new_choices_writes_what_they_promise(tmp_path):
    """Rich bar + early stopping + TensorBoard beside CSV + the profiler, one short run."""
    env = {**os.environ, "MIDL_OUTPUT_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "midl.train", "callbacks=[early_stopping,rich_progress_bar]",
         "logger=[csv,tensorboard]", "debug=profiler", "data.train_size=256"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "── callbacks" in proc.stdout                      # the config tree
    run = next((tmp_path / "train" / "runs").iterdir())
    assert (run / "metrics.json").exists() and (run / "csv" / "metrics.csv").exists()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert "FIT Profiler Report" in (run / "fit-profile.txt").read_text()


def test_every_make_target_gets_the_same_data_root(tmp_path):
    """``make -n`` shows the commands: train, test and the tables pass MIDL_DATA_DIR, which
    is $MIDL_DATA_DIR when set."""
    env = {**os.environ, "MIDL_DATA_DIR": str(tmp_path)}
    for target in (["train", "ARGS=+experiment=mnist_mlp"], ["test"], ["table4"], ["bench"]):
        out = subprocess.run(["make", "-n", *target], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=60).stdout
        commands = [line for line in out.splitlines() if "-m midl." in line or "pytest" in line]
        assert commands, (target, out)
        assert all(f"MIDL_DATA_DIR={tmp_path}" in line for line in commands), (target, out)


def test_the_report_targets_pass_absolute_cache_and_svhn_folders(tmp_path):
    """The SVHN stand-in's data folder lies under the cache folder; a record stores it as
    ``<paths.cache_dir>/svhn-fixture``, and the report composes the same only when both
    folders are absolute (a relative default cache folder left every SVHN run "not counted"
    in Table 8 of ``make report`` on a fresh clone)."""
    env = {k: v for k, v in os.environ.items() if k != "MIDL_CACHE_DIR"}
    env["MIDL_DATA_DIR"] = str(tmp_path)   # no SVHN files there: the fixture is used
    out = subprocess.run(["make", "-n", "-o", ".venv/.installed", "report", "SCALE=cpu"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60).stdout
    reports = [line for line in out.splitlines() if "-m midl.report " in line]
    assert reports, out
    for line in reports:
        cache = re.search(r"MIDL_CACHE_DIR=(\S+)", line).group(1)
        svhn = re.search(r"MIDL_SVHN_DIR=(\S+)", line).group(1)
        assert cache.startswith("/") and svhn == f"{cache}/svhn-fixture", line
