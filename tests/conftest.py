"""Shared fixtures: real-data location and Hydra config composition for tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "configs"
# Run records (midl/runs/records.py) never go to the repository's results/runs/ from a test: a
# session default for module-scoped fixtures, and a fresh folder per test (below).
os.environ["MIDL_RECORDS_DIR"] = tempfile.mkdtemp(prefix="midl-records-")


@pytest.fixture(autouse=True)
def _records_dir(tmp_path_factory, monkeypatch):
    """Each test's runs write their records into a folder of their own (no test skips a run
    because another test left a record of the same configuration)."""
    monkeypatch.setenv("MIDL_RECORDS_DIR", str(tmp_path_factory.mktemp("records")))


def real_data_dir() -> Path:
    """The real dataset root: $MIDL_DATA_DIR, else ../shared/data beside the repository."""
    return Path(os.environ.get("MIDL_DATA_DIR") or REPO.parent / "shared" / "data")


def require_real(*relative: str) -> Path:
    """Skip the calling test unless every ``relative`` path exists under the real data root."""
    root = real_data_dir()
    missing = [r for r in relative if not (root / r).exists()]
    if missing:
        pytest.skip(f"real data not found: {', '.join(missing)} under {root} "
                    "(set MIDL_DATA_DIR to the dataset root)")
    return root


def compose_train(overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose ``configs/train.yaml`` as ``python -m midl.train`` would, writing to
    ``output_dir``; the Hydra runtime config is set so ``${hydra:...}`` resolves."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.cache_dir = str(output_dir / "cache")
        del cfg.hydra
    return cfg


@pytest.fixture
def compose_cfg(tmp_path):
    """``compose_cfg(overrides)`` -> a train config writing into this test's tmp_path."""
    return lambda overrides: compose_train(overrides, tmp_path)
