"""The table pipeline end to end (sweep -> analyses -> report) through the Makefile on a
representative pair of tables at SCALE=smoke, plus a composition check of every job of every
table's sweep at every scale (no training).

The full ``make tables SCALE=smoke`` (every table, about 100 tiny runs) is too slow for the test
suite on a 2-core machine; run it separately (see results/README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from midl.config import validate
from midl.evaluation import CONFIG_DIR
from midl.reporting.tables import REGIME_TABLES, TABLES

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MIDL_DATA_DIR", ROOT.parent / "shared" / "data"))
TABLE_FILES = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")
                     if p.stem.startswith("table")
                     or p.stem in ("figures", "baselines", "transformer"))
SCALES = sorted(p.stem for p in (CONFIG_DIR / "scale").glob("*.yaml"))


def test_every_table_has_a_sweep_file_and_a_make_target():
    expected = [f"table{i}" for i in range(2, 13)] + ["baselines", "figures", "transformer"]
    assert sorted(TABLE_FILES) == sorted(expected)
    # the regimes tables: several sweeps (configs/experiment/regimes_*.yaml), one make target
    assert set(TABLES) | {"table12", "figures"} == set(expected) | set(REGIME_TABLES)
    makefile = (ROOT / "Makefile").read_text()
    for name in [*expected, "tables", "regimes"]:
        assert f"\n{name}:" in makefile, name
    assert SCALES == ["cpu", "paper", "precision", "quick", "smoke"]  # precision: make precision


def _jobs(name: str, scale: str) -> list[list[str]]:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"+experiment={name}", f"+scale={scale}"],
                      return_hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    params = {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    assert set(params) == {"+experiment/setting", "block", "data.label_noise", "seed"}
    assert params["seed"] == (["0"] if name == "figures"
                              else str(cfg.scale.seeds).split(","))
    # every setting with the first block, the first setting with every block (the product
    # adds nothing to composition and costs minutes), the highest noise, the first seed
    jobs = [(s, params["block"][0]) for s in params["+experiment/setting"]]
    jobs += [(params["+experiment/setting"][0], b) for b in params["block"][1:]]
    return [[f"+experiment/setting={s}", f"block={b}",
             f"data.label_noise={params['data.label_noise'][-1]}", f"seed={params['seed'][0]}"]
            for s, b in jobs]


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", TABLE_FILES)
def test_every_sweep_job_composes_and_validates(name, scale):
    for job in _jobs(name, scale):
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[*job, f"+experiment={name}", f"+scale={scale}"])
        cfg.paths.output_dir = "/tmp/unused"  # ${hydra:runtime.output_dir} outside Hydra
        validate(cfg)
        assert cfg.task_name.startswith("grid_")  # the setting names the run folders
        for node in ("data", "model", "block", "trainer"):
            OmegaConf.to_container(cfg[node], resolve=True)  # every interpolation resolves
        setting = job[0].split("=", 1)[1]  # the scale gives epochs per setting
        assert cfg.trainer.max_epochs == cfg.scale.epochs[
            "lowdata" if setting.startswith("lowdata") else setting]


needs_cifar = pytest.mark.skipif(not (DATA / "cifar-10-batches-py").is_dir(),
                                 reason=f"CIFAR-10 not under {DATA}")


@needs_cifar
@pytest.mark.slow
def test_make_table7_and_table10_smoke_end_to_end(tmp_path):
    """Sweep, analyses and report through the Makefile; a second call retrains nothing."""
    out, results = tmp_path / "outputs", tmp_path / "results"
    cmd = ["make", "-s", "-o", "install", "-o", ".venv/.installed", "table7", "table10",
           "SCALE=smoke", f"OUTPUTS={out}", f"RESULTS={results}", f"DATA_DIR={DATA}",
           f"CACHE_DIR={tmp_path / 'cache'}", "ARGS=callbacks.progress_bar.refresh_rate=0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIDL_")}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("table7", "table10"):
        spec = TABLES[name]
        md = (results / "smoke" / f"{name}.md").read_text()
        for row in spec.rows:
            line = next(line for line in md.splitlines() if line.startswith(f"| {row.label} |"))
            assert line.count(" | ") == len(spec.columns), line
            assert "missing" not in line, line
        for column in spec.columns:
            assert column.label in md
        assert (results / "smoke" / f"{name}.csv").exists()
        assert (results / "smoke" / f"{name}.tex").exists()
    seeds = str(yaml.safe_load((CONFIG_DIR / "scale" / "smoke.yaml").read_text())
                ["scale"]["seeds"]).split(",")
    n = len(seeds)
    t7 = (results / "smoke" / "table7.md").read_text()
    assert f"Runs: {2 * n} complete of {2 * n} expected; 0 failed" in t7
    t7_cells = len(TABLES["table7"].rows) * len(TABLES["table7"].columns)
    assert t7.count(f"(n={n})") == t7_cells              # every row x column
    t10 = (results / "smoke" / "table10.md").read_text()
    assert "n/a (no GPU)" in t10 and t10.count("(n=1)") == 4  # efficiency_seeds: 0
    metrics = sorted(out.glob("grid_cifar10_cnn/multirun/*/metrics.json"))
    assert len(metrics) == 2 * n
    before = {p: p.stat().st_mtime_ns for p in metrics}
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in metrics} == before   # nothing retrained
    summary = [json.loads(line) for line in again.stdout.splitlines()
               if line.startswith('{"table"')]
    assert summary and all(s["ran"] == 0 for s in summary)          # analyses skipped
