"""One run grid per table: the sweep of ``configs/experiment/<table>.yaml`` (what Hydra runs) is
the source, and the table's rows and columns (:mod:`midl.reporting.tables`, what the report
expects) must ask for exactly its runs: no row without a sweep job, no job without a row."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from midl.reporting.render import _expected_keys
from midl.reporting.tables import TABLES

EXPERIMENTS = Path(__file__).resolve().parents[1] / "configs" / "experiment"
GRID_TABLES = sorted(n for n in TABLES if (EXPERIMENTS / f"{n}.yaml").exists())


def sweep_grid(name: str) -> set[tuple[str, str, float]]:
    """(setting, block, label noise) of every job of the experiment's sweep (seeds aside)."""
    params = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())["hydra"]["sweeper"][
        "params"]
    axes = [str(params[k]).split(",") for k in ("+experiment/setting", "block",
                                                 "data.label_noise")]
    return {(s.strip(), b.strip(), float(n)) for s, b, n in itertools.product(*axes)}


def test_the_paper_tables_have_sweep_files():
    assert {f"table{i}" for i in range(2, 12)} | {"baselines"} <= set(GRID_TABLES)


@pytest.mark.parametrize("name", GRID_TABLES)
def test_a_tables_rows_ask_for_exactly_its_sweeps_runs(name):
    expected = {(k.setting, k.block, float(k.noise)) for k in
                _expected_keys(TABLES[name], [0], None) if k.regime == "standard"}
    assert expected == sweep_grid(name)
