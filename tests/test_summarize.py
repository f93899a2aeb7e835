"""midl.summarize on hand-made run records: groups, means, Welch intervals and the runs it
refuses to mix in are exact."""

from __future__ import annotations

import copy
import csv
import json
import math
import shutil
from pathlib import Path

import pytest
import yaml
from scipy import stats

from midl.summarize import SummaryError, find_runs, main, markdown, summarize

BASE = {  # a resolved config as midl.train records it (trimmed)
    "task_name": "mnist_mlp",
    "seed": 0,
    "data": {"_target_": "midl.data.MNISTDataModule", "data_dir": "/data", "batch_size": 64,
             "label_noise": 0.4, "noise_seed": 0},
    "model": {"_target_": "midl.backbones.MLP", "hidden_dim": 256},
    "block": {"_target_": "midl.blocks.MIDLayer", "_partial_": True, "top_k": 0.5,
              "gate_dropout": 0.1},
    "trainer": {"_target_": "lightning.pytorch.Trainer", "max_epochs": 3,
                "default_root_dir": "/out/x"},
    "callbacks": {"epoch_seed": {"_target_": "midl.callbacks.EpochSeed", "seed": 0}},
    "logger": {"csv": {"_target_": "lightning.pytorch.loggers.CSVLogger"}},
    "paths": {"data_dir": "/data", "output_dir": "/out/x"},
    "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.001},
}
DROPOUT = {"_target_": "midl.blocks.DropoutBlock", "_partial_": True, "p": 0.5}


def make_run(root: Path, name: str, block: str, seed: int, acc: float | None,
             ece: float = 0.1, changes: dict | None = None, table: bool = False,
             status: str = "complete") -> Path:
    """A run folder as midl.train leaves it: .hydra/{overrides,hydra}.yaml, metrics.json."""
    path = root / name
    (path / ".hydra").mkdir(parents=True)
    overrides = [f"block={block}", f"seed={seed}"]
    if table:
        overrides.insert(0, "+experiment/setting=mnist_mlp")
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    choices = {"data": "mnist", "model": "mlp", "block": block, "logger": "csv",
               "hydra/launcher": "basic"}
    if table:
        choices["experiment/setting"] = "mnist_mlp"
    (path / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(
        {"hydra": {"runtime": {"choices": choices}}}))
    config = copy.deepcopy(BASE)
    config["seed"] = seed
    config["callbacks"]["epoch_seed"]["seed"] = seed
    config["paths"]["output_dir"] = config["trainer"]["default_root_dir"] = str(path)
    if block == "dropout":
        config["block"] = dict(DROPOUT)
    for dotted, value in (changes or {}).items():
        *parents, leaf = dotted.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
    if status == "failed":
        (path / "error.txt").write_text("Traceback ...")
    if status == "complete":
        (path / "metrics.json").write_text(json.dumps(
            {"seed": seed, "test": {"test/acc": acc, "test/ece": ece}, "config": config}))
    return path


MIDL_ACC = [0.90, 0.92, 0.94]
DROPOUT_ACC = [0.88, 0.89, 0.90]


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "multirun"
    for seed, acc in enumerate(MIDL_ACC):   # table runs (read by midl.reporting.runs)
        make_run(root, f"block=midl,seed={seed}", "midl", seed, acc, ece=0.1 + seed / 100,
                 table=True)
    for seed, acc in enumerate(DROPOUT_ACC):  # plain runs of +experiment=mnist_mlp
        make_run(root, f"block=dropout,seed={seed}", "dropout", seed, acc)
    return root


def welch_interval(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """mean(b) - mean(a) and its 95% Welch interval from the textbook formulas."""
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1)
    se2 = va / len(a) + vb / len(b)
    df = se2 ** 2 / ((va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(se2)
    return mb - ma, mb - ma - half, mb - ma + half


def test_groups_by_the_setting_that_varies(sweep):
    summary = summarize(find_runs([sweep]), metrics=["test/acc", "test/ece"])
    assert summary.by == ["block"] and not summary.by_given   # not seed, not epoch_seed.seed
    assert [g.name for g in summary.groups] == ["block=dropout", "block=midl"]
    dropout, midl = summary.groups
    assert midl.values["test/acc"] == MIDL_ACC and midl.seeds["test/acc"] == [0, 1, 2]
    assert midl.mean("test/acc") == pytest.approx(0.92, abs=1e-12)
    assert midl.std("test/acc") == pytest.approx(0.02, abs=1e-12)
    assert dropout.mean("test/acc") == pytest.approx(0.89, abs=1e-12)
    assert dropout.std("test/acc") == pytest.approx(0.01, abs=1e-12)
    assert midl.mean("test/ece") == pytest.approx(0.11, abs=1e-12)
    assert summary.excluded == []
    acc = [d for d in summary.differences if d.metric == "test/acc"]
    assert len(acc) == 1 and acc[0].first is dropout and acc[0].second is midl
    diff, low, high = welch_interval(DROPOUT_ACC, MIDL_ACC)
    assert acc[0].diff == pytest.approx(0.03, abs=1e-12)
    assert (acc[0].low, acc[0].high) == (pytest.approx(low, abs=1e-12),
                                         pytest.approx(high, abs=1e-12))
    assert low < 0 < high or low > 0   # a real interval around +0.03
    ece = [d for d in summary.differences if d.metric == "test/ece"][0]
    _, low, high = welch_interval([0.1] * 3, [0.10, 0.11, 0.12])  # one group without variance
    assert (ece.low, ece.high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))


def test_refuses_to_mix_configurations(sweep):
    # a MID-L run with another learning rate and one with another top-k
    make_run(sweep, "block=midl,optimizer.lr=0.01,seed=3", "midl", 3, 0.5,
             changes={"optimizer.lr": 0.01})
    make_run(sweep, "block=midl,block.top_k=0.25,seed=0", "midl", 0, 0.6,
             changes={"block.top_k": 0.25})
    # automatic grouping: every varying setting is a grouping key, so nothing is mixed
    auto = summarize(find_runs([sweep]), metrics=["test/acc"])
    assert auto.by == ["block", "block.top_k", "optimizer.lr"]
    assert [(g.name, len(g.runs)) for g in auto.groups] == [
        ("block=dropout, block.top_k=<absent>, optimizer.lr=0.001", 3),
        ("block=midl, block.top_k=0.25, optimizer.lr=0.001", 1),
        ("block=midl, block.top_k=0.5, optimizer.lr=0.001", 3),
        ("block=midl, block.top_k=0.5, optimizer.lr=0.01", 1)]
    assert len(auto.differences) == 6   # every pair
    many = [make_run(sweep, f"block=midl,optimizer.lr={lr},seed=0", "midl", 0, 0.5,
                     changes={"optimizer.lr": lr}) for lr in (0.1, 0.2, 0.3)]
    crowded = summarize(find_runs([sweep]), metrics=["test/acc"])
    assert len(crowded.groups) == 7 and crowded.differences == [] and len(many) == 3
    assert "No pairwise differences: 7 groups (more than 6)" in markdown(crowded, "cmd")
    for path in many:
        shutil.rmtree(path)
    # grouping by block only: the odd runs are listed with what differs, not counted
    summary = summarize(find_runs([sweep]), by=["block"], metrics=["test/acc"])
    midl = summary.groups[1]
    assert midl.values["test/acc"] == MIDL_ACC
    reasons = sorted(e.reason for e in summary.excluded)
    assert reasons == [
        "differs in block.top_k=0.25 (its group: 0.5) from group block=midl",
        "differs in optimizer.lr=0.01 (its group: 0.001) from group block=midl"]


def test_lists_failed_incomplete_duplicate_and_unknown_keys(sweep):
    make_run(sweep, "block=midl,seed=4", "midl", 4, None, status="failed")
    make_run(sweep, "block=midl,seed=5", "midl", 5, None, status="incomplete")
    make_run(sweep / "later", "block=midl,seed=1", "midl", 1, 0.99)
    summary = summarize(find_runs([sweep]), metrics=["test/acc"])
    assert summary.groups[1].values["test/acc"] == MIDL_ACC   # the copy (later by path) is not
    reasons = {Path(e.run.path).name + ("/later" if "later" in str(e.run.path) else ""): e.reason
               for e in summary.excluded}
    assert reasons["block=midl,seed=4"] == "failed (error.txt)"
    assert reasons["block=midl,seed=5"] == "incomplete (no test metrics)"
    assert reasons["block=midl,seed=1/later"].startswith(
        "the same configuration and seed (1) as ")
    assert reasons["block=midl,seed=1/later"].endswith(
        f"{(sweep / 'block=midl,seed=1').resolve()}: counted once")
    with pytest.raises(SummaryError, match=r"--by block.rank: no run has such a setting; "
                                           r"the settings that vary here: \[.*'block._target_'"):
        summarize(find_runs([sweep]), by=["block.rank"])
    with pytest.raises(SummaryError, match="no complete run"):
        summarize(find_runs([sweep / "later" / "block=midl,seed=1" / ".hydra"]))


def test_by_a_setting_and_a_metric_missing_in_some_runs(sweep):
    make_run(sweep, "block=midl,data.label_noise=0.2,seed=0", "midl", 0, 0.97,
             changes={"data.label_noise": 0.2})
    summary = summarize(find_runs([sweep]), by=["data.label_noise"],
                        metrics=["test/acc", "test/f1"])
    assert [g.name for g in summary.groups] == ["data.label_noise=0.2", "data.label_noise=0.4"]
    noisy = summary.groups[1]
    # at 0.4 the MID-L and dropout runs differ in the block: only one block is counted
    assert len(noisy.runs) == 3 and len(summary.excluded) == 3
    assert all(e.reason.startswith("differs in block._target_=") for e in summary.excluded)
    assert noisy.values["test/f1"] == []   # recorded by no run: no value, no error
    acc = [d for d in summary.differences if d.metric == "test/acc"][0]
    assert acc.diff == pytest.approx(0.89 - 0.97) and acc.low is None   # n = 1 at 0.2
    assert "n/a (n < 2 or no variance)" in markdown(summary, "cmd")


def test_command_line_writes_md_csv_png(sweep, tmp_path, capsys):
    out = tmp_path / "report"
    assert main([str(sweep), "--metrics", "test/acc", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    md = (out / "summary.md").read_text()
    assert md in printed
    assert "| block | n | seeds | test/acc |" in md
    assert "| dropout | 3 | 0,1,2 | 0.8900 ± 0.0100 |" in md
    assert "| midl | 3 | 0,1,2 | 0.9200 ± 0.0200 |" in md
    diff, low, high = welch_interval(DROPOUT_ACC, MIDL_ACC)
    assert f"| test/acc | block=midl − block=dropout | +0.0300 | [{low:+.4f}, {high:+.4f}] |" in md
    rows = list(csv.DictReader((out / "summary.csv").open()))
    means = {r["group"]: float(r["value"]) for r in rows if r["kind"] == "mean"}
    assert means == {"block=dropout": pytest.approx(0.89), "block=midl": pytest.approx(0.92)}
    difference = [r for r in rows if r["kind"] == "difference"][0]
    assert float(difference["ci95_low"]) == pytest.approx(low, abs=1e-12)
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([str(sweep), "--by", "nonsense"]) == 2
    assert "--by nonsense: no run has such a setting" in capsys.readouterr().err
    assert main([str(tmp_path / "absent")]) == 2
