"""A table cell takes exactly the runs of the table's configuration: runs
found under a cell's key but configured otherwise are listed as not counted, two records of
one configuration and seed are an error, records without a hash are read from their config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import real_data_dir
from midl import report
from midl.reporting.render import build_table, markdown
from midl.reporting.runs import DuplicateRunError, RunKey, collect_runs, expected_config
from midl.reporting.tables import TABLES
from midl.runs.provenance import NOT_RESULT_KEYS, config_differences, config_hash, result_config

PAPER = yaml.safe_load(report.PAPER_REFERENCE.read_text())
SETTING, SCALE = "mnist_mlp", "smoke"


def make_run(root: Path, name: str, block: str, seed: int = 0, acc: float = 0.9,
             config: dict | None = None, with_hash: bool = True) -> Path:
    """A complete run folder of the baselines table at smoke scale, as midl.train writes it."""
    path = root / "grid_mnist_mlp" / "multirun" / name
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(
        [f"+experiment/setting={SETTING}", f"block={block}", "data.label_noise=0.0",
         f"seed={seed}", f"+scale={SCALE}"]))
    if config is None:
        config = expected_config(RunKey(SETTING, block, 0.0, seed, SCALE))
        config["paths"]["output_dir"] = str(path)  # as a real run records it
    record = {"test": {"test/acc": acc, "test/anr": 0.5}, "seed": seed, "config": config,
              "commit": {"hash": "abc", "dirty": False}}
    if with_hash:
        record["config_hash"] = config_hash(config)
    (path / "metrics.json").write_text(json.dumps(record))
    return path


def table(root: Path):
    return build_table(TABLES["baselines"], collect_runs([root]), [0], SCALE, PAPER)


def test_hash_ignores_paths_and_excluded_keys_but_not_settings(tmp_path):
    base = expected_config(RunKey(SETTING, "midl", 0.0, 0, SCALE))
    moved = json.loads(json.dumps(base))
    moved["paths"] = {k: f"/elsewhere/{k}" for k in base["paths"]}
    moved["data"]["data_dir"] = "/elsewhere/data_dir"          # follow paths.*
    moved["data"]["cache_dir"] = "/elsewhere/cache_dir"
    moved["trainer"]["default_root_dir"] = "/elsewhere/output_dir"
    moved["tags"], moved["force"], moved["resume"] = ["other"], True, False
    moved["logger"] = None
    moved["trainer"]["accelerator"] = "gpu"
    moved["model"]["channels_last"] = not base["model"].get("channels_last", False)
    assert config_hash(moved) == config_hash(base)
    assert {"paths", "logger", "hydra", "tags", "force", "resume"} <= set(NOT_RESULT_KEYS)
    changed = json.loads(json.dumps(base))
    changed["block"]["top_k"] = 0.05
    assert config_hash(changed) != config_hash(base)
    assert config_differences(changed, base) == [("block.top_k", 0.05, 0.5)]
    other_seed = expected_config(RunKey(SETTING, "midl", 0.0, 1, SCALE))
    assert config_hash(other_seed) != config_hash(base)
    assert result_config(base)["data"]["data_dir"] == "<paths.data_dir>"


def test_run_of_other_settings_is_listed_not_chosen(tmp_path):
    real = make_run(tmp_path, "block=midl,seed=0", "midl", acc=0.95)
    # the same key (setting, block, noise, seed, scale), another top_k, sorted first
    config = expected_config(RunKey(SETTING, "midl", 0.0, 0, SCALE))
    config["block"]["top_k"] = 0.05
    topk = make_run(tmp_path, "block.top_k=0.05,block=midl,seed=0", "midl", acc=0.51,
                    config=config)
    result = table(tmp_path)
    cell = result.cells[("mnist / midl", "acc")]
    assert cell.values == [pytest.approx(95.0)]
    assert [r.path for r in result.counted if r.key.block == "midl"] == [real.resolve()]
    assert [n.run.path for n in result.not_counted] == [topk.resolve()]
    text = markdown(result, ["header"])
    assert f"- not counted: `{topk.resolve()}` differs in block.top_k=0.05" in text
    assert "1 not counted" in text


def test_only_a_differing_run_leaves_the_cell_missing(tmp_path):
    config = expected_config(RunKey(SETTING, "midl", 0.0, 0, SCALE))
    config["block"]["top_k"] = 0.05
    path = make_run(tmp_path, "block.top_k=0.05,block=midl,seed=0", "midl", config=config)
    result = table(tmp_path)
    assert result.cells[("mnist / midl", "acc")].n == 0
    assert RunKey(SETTING, "midl", 0.0, 0, SCALE) in result.missing
    assert [n.run.path for n in result.not_counted] == [path.resolve()]


def test_two_records_of_one_configuration_and_seed_are_an_error(tmp_path):
    first = make_run(tmp_path, "block=midl,seed=0", "midl")
    second = make_run(tmp_path, "block=midl,seed=0,trainer.enable_progress_bar=false", "midl")
    with pytest.raises(DuplicateRunError) as error:
        table(tmp_path)
    assert str(first.resolve()) in str(error.value) and str(second.resolve()) in str(error.value)
    assert "seed 0" in str(error.value)
    # the command line says so (exit 2), no traceback
    out = tmp_path / "out"
    assert report.main(["baselines", str(tmp_path), "--scale", SCALE, "--out", str(out)]) == 2


def test_old_record_without_hash_is_read_from_its_config(tmp_path):
    make_run(tmp_path, "block=midl,seed=0", "midl", acc=0.8, with_hash=False)
    result = table(tmp_path)
    assert result.cells[("mnist / midl", "acc")].values == [pytest.approx(80.0)]
    assert not result.not_counted


def test_corrupt_metrics_json_is_listed(tmp_path):
    path = make_run(tmp_path, "block=midl,seed=0", "midl")
    (path / "metrics.json").write_text('{"test": {"test/acc"')
    result = table(tmp_path)
    assert [r.path for r in result.incomplete] == [path.resolve()]
    assert "metrics.json unreadable" in markdown(result, ["header"])


@pytest.mark.skipif(not (real_data_dir() / "MNIST" / "raw").exists(), reason="needs MNIST")
def test_issue_reproduction_real_runs(tmp_path):
    """The issue's commands: a sweep of midl and dropout, then one midl run with top_k 0.05;
    the report counts the real midl run and lists the other."""
    env = {**os.environ, "MIDL_OUTPUT_DIR": str(tmp_path / "outputs"),
           "MIDL_DATA_DIR": str(real_data_dir()), "MIDL_CACHE_DIR": str(tmp_path / "cache")}
    common = ["+experiment/setting=mnist_mlp", "+scale=smoke", "data.label_noise=0.0", "seed=0",
              "logger=none", "callbacks.progress_bar.refresh_rate=0"]
    for extra in (["block=midl,dropout"], ["block=midl", "block.top_k=0.05"]):
        subprocess.run([sys.executable, "-m", "midl.train", "-m", *common, *extra], env=env,
                       check=True, capture_output=True, cwd=tmp_path)
    sweep = tmp_path / "outputs" / "grid_mnist_mlp" / "multirun"
    result = build_table(TABLES["baselines"], collect_runs([sweep]), [0], SCALE, PAPER)
    midl = [r for r in result.counted if r.key.block == "midl"]
    assert len(midl) == 1 and "top_k" not in midl[0].path.name
    assert result.cells[("mnist / midl", "anr")].values == [pytest.approx(50.0)]
    assert [n.text() for n in result.not_counted] == ["differs in block.top_k=0.05"]


def test_analyses_go_to_the_run_the_table_counts(tmp_path, monkeypatch):
    from midl.reporting import analyses

    real = make_run(tmp_path, "block=midl,seed=0", "midl")
    config = expected_config(RunKey(SETTING, "midl", 0.0, 0, SCALE))
    config["block"]["top_k"] = 0.05
    # sorted after the real run: a by-key index (last wins) would pick it
    make_run(tmp_path, "block=midl,seed=0,top_k=0.05", "midl", config=config)
    ran = []
    monkeypatch.setattr(analyses, "run_analysis",
                        lambda run, analysis, *a, **k: ran.append((analysis, run.path)))
    monkeypatch.setattr(analyses, "save_run_record", lambda *a, **k: None, raising=False)
    analyses.main(["table8", str(tmp_path), "--scale", SCALE])
    assert ran and {path for _, path in ran} == {real.resolve()}
