"""`midl (masked)`, Appendix A's gradient estimator, as a row of the ablation Tables 4 and 9."""

from __future__ import annotations

from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir

from midl.reporting.tables import TABLES

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def test_block_is_midl_with_the_masked_estimator():
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        masked = compose("train", overrides=["block=midl_masked"]).block
        plain = compose("train", overrides=["block=midl"]).block
    assert plain.estimator == "ste" and masked.estimator == "masked"
    assert {k: v for k, v in masked.items() if k != "estimator"} == {
        k: v for k, v in plain.items() if k != "estimator"}


def test_ablation_tables_sweep_and_show_it():
    for table in ("table4", "table9"):
        experiment = yaml.safe_load((CONFIG_DIR / "experiment" / f"{table}.yaml").read_text())
        assert "midl_masked" in experiment["hydra"]["sweeper"]["params"]["block"].split(",")
        rows = {r.label: r for r in TABLES[table].rows}
        assert rows["midl (masked)"].block == "midl_masked"
        assert rows["midl (masked)"].paper_match is None  # not in the paper
