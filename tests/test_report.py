"""midl.report on hand-made run folders: means, std, n, differences and marks, missing seeds,
failed and interrupted jobs, overwrite protection, Table 12, every table's layout."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from midl import report
from midl.reporting.render import build_table, csv_text, markdown
from midl.reporting.runs import RunKey, collect_runs, expected_config
from midl.reporting.tables import REGIME_TABLES, TABLES

PAPER = yaml.safe_load(report.PAPER_REFERENCE.read_text())
SHARED_PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper" / "paper_tables.yaml"


def make_run(root: Path, setting: str, block: str, seed: int, noise: float = 0.0,
             scale: str = "cpu", test: dict | None = None, status: str = "complete",
             analysis: dict | None = None, config: dict | None = None,
             extra: dict | None = None) -> Path:
    """A run folder as midl.train + Hydra write it (only the files the report reads);
    ``extra``: more top-level fields of its metrics.json (e.g. ``test_last``)."""
    name = (f"+experiment_setting={setting},+scale={scale},block={block},"
            f"data.label_noise={noise},seed={seed}")
    path = root / f"grid_{setting}" / "multirun" / name
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(
        [f"+experiment/setting={setting}", f"block={block}", f"data.label_noise={noise}",
         f"seed={seed}", "+experiment=tableX", f"+scale={scale}"]))
    (path / ".hydra" / "hydra.yaml").write_text(
        "hydra:\n  runtime:\n    choices:\n"
        f"      scale: {scale}\n      experiment/setting: {setting}\n      block: {block}\n"
        "      model: cnn\n  verbose: false\n")
    if status == "complete":
        record = {"test": test or {}, "seed": seed, "wall_time_s": 10.0,
                  "commit": {"hash": "abc", "dirty": False}, "command": "midl/train.py x",
                  "hardware": {"cpu_count": 2},
                  # the config the table's sweep composes for this run, as midl.train records it
                  "config": config if config is not None else expected_config(
                      RunKey(setting, block, noise, seed, scale))}
        if analysis:
            record["analysis"] = analysis
        (path / "metrics.json").write_text(json.dumps({**record, **(extra or {})}))
    elif status == "failed":
        (path / "error.txt").write_text("Traceback: boom\n")
    return path


ACCS = {0: 0.70, 1: 0.72, 2: 0.74, 3: 0.76, 4: 0.78}


def table7_runs(root: Path, seeds=(0, 1, 2, 3, 4)) -> None:
    for seed in seeds:
        for block, ece in (("dropout", 0.05), ("midl", 0.04 + 0.001 * seed)):
            make_run(root, "cifar10_cnn", block, seed,
                     test={"test/ece": ece, "test/brier": 0.3, "test/acc": ACCS[seed]})


def test_mean_std_n_difference_and_marks(tmp_path):
    table7_runs(tmp_path)
    runs = collect_runs([tmp_path])
    result = build_table(TABLES["table7"], runs, [0, 1, 2, 3, 4], "cpu", PAPER)
    midl = result.cells[("midl", "ece")]
    values = [4.0 + 0.1 * s for s in range(5)]
    mean = sum(values) / 5
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 4)  # sample std, ddof 1
    assert midl.n == 5 and midl.mean == pytest.approx(mean) and midl.std == pytest.approx(std)
    assert midl.paper == 4.9 and midl.diff == pytest.approx(mean - 4.9)
    assert midl.marks == "†"  # 0.7 below the paper, std 0.16: more than 2 std
    dropout = result.cells[("cnn_mlp (Dropout block)", "ece")]
    assert dropout.std == pytest.approx(0.0) and dropout.mean == pytest.approx(5.0)
    assert dropout.marks == "†"  # any difference with std 0 is > 2 std
    # ... but not float rounding: 50% computed as a mean of fractions equals the paper's 50
    rounding = replace(dropout, values=[50.000000000001] * 5, paper=50.0)
    assert rounding.diff != 0 and rounding.std == 0 and rounding.marks == ""
    assert (len(result.counted), len(result.missing), len(result.failed)) == (10, 0, 0)


def test_no_difference_to_the_paper_is_taken_on_a_stand_in_or_an_imposed_subset(tmp_path):
    """The SVHN stand-in and a dataset whose files hold a subset measure other data than the
    paper's: the cell shows both numbers but no Δ and no †; a subset the run asked for (low
    data) and the complete dataset are compared as usual."""
    from midl.reporting.render import cell_text
    from midl.reporting.runs import data_caveat

    full = {"name": "CIFAR-10", "sizes": {"train": 45000, "val": 5000, "test": 10000}}
    part = {"name": "CIFAR-10", "sizes": {"train": 900, "val": 100, "test": 900}}
    assert data_caveat(full) is None and data_caveat(None) is None
    assert data_caveat(part) == "subset"
    assert data_caveat({**part, "subset": {"train_per_class": 90}}) is None   # asked for
    assert data_caveat({**full, "name": "SVHN", "stand_in": {"not_svhn": True}}) == "stand-in"
    for seed in range(5):
        for block, data in (("dropout", full), ("midl", part)):
            make_run(tmp_path, "cifar10_cnn", block, seed, extra={"data": data},
                     test={"test/ece": 0.02, "test/acc": ACCS[seed]})
    result = build_table(TABLES["table7"], collect_runs([tmp_path]), [0, 1, 2, 3, 4], "cpu",
                         PAPER)
    midl, dropout = (result.cells[(row, "ece")] for row in ("midl", "cnn_mlp (Dropout block)"))
    assert midl.paper == 4.9 and midl.mean == pytest.approx(2.0)
    assert midl.caveat == "subset" and midl.diff is None and midl.marks == ""
    assert cell_text(midl, 1).endswith("/ 4.9 / Δ – (subset data: not comparable)")
    assert dropout.caveat is None and dropout.diff == pytest.approx(2.0 - dropout.paper)
    assert dropout.marks == "†"
    rows = {(r["row"], r["column"]): r
            for r in csv.DictReader(csv_text(result, []).splitlines())}
    assert (rows[("midl", "ece")]["caveat"], rows[("midl", "ece")]["diff"]) == ("subset", "")
    assert rows[("cnn_mlp (Dropout block)", "ece")]["caveat"] == ""
    for seed in range(5):       # FLOPs depend on the model and input shape alone: compared
        make_run(tmp_path / "t8", "cifar10_cnn", "midl", seed, extra={"data": part},
                 test={"test/acc": 0.5, "test/flops": 22.2e6})
    flops = build_table(TABLES["table8"], collect_runs([tmp_path / "t8"]), [0, 1, 2, 3, 4],
                        "cpu", PAPER).cells[("cifar10 / midl", "flops")]
    assert flops.caveat is None and flops.diff == pytest.approx(22.2 - flops.paper)


def test_close_to_paper_is_not_marked(tmp_path):
    for seed, ece in enumerate((0.047, 0.049, 0.051, 0.050, 0.048)):
        make_run(tmp_path, "cifar10_cnn", "midl", seed, test={"test/ece": ece})
    result = build_table(TABLES["table7"], collect_runs([tmp_path]), [0, 1, 2, 3, 4], "cpu",
                         PAPER)
    assert result.cells[("midl", "ece")].marks == ""


def test_missing_seed_failed_and_interrupted_runs(tmp_path):
    table7_runs(tmp_path, seeds=(0, 1, 2))              # seeds 3, 4 of dropout: see below
    make_run(tmp_path, "cifar10_cnn", "midl", 3, test={"test/ece": 0.043})
    failed = make_run(tmp_path, "cifar10_cnn", "dropout", 3, status="failed")
    interrupted = make_run(tmp_path, "cifar10_cnn", "dropout", 4, status="incomplete")
    # midl seed 4 was never started: missing
    result = build_table(TABLES["table7"], collect_runs([tmp_path]), [0, 1, 2, 3, 4], "cpu",
                         PAPER)
    assert result.cells[("midl", "ece")].n == 4
    assert result.cells[("midl", "ece")].seeds == [0, 1, 2, 3]
    assert result.cells[("cnn_mlp (Dropout block)", "ece")].n == 3
    assert "*" in result.cells[("midl", "ece")].marks
    assert [r.path for r in result.failed] == [failed.resolve()]
    assert [r.path for r in result.incomplete] == [interrupted.resolve()]
    assert [(k.block, k.seed) for k in result.missing] == [("midl", 4)]
    text = markdown(result, ["header"])
    assert "failed (error.txt)" in text and str(failed.resolve()) in text
    assert "missing: setting=cifar10_cnn block=midl label_noise=0.0 seed=4" in text
    assert "(n=4)" in text


def test_other_scales_and_seeds_are_not_counted(tmp_path):
    table7_runs(tmp_path, seeds=(0,))
    make_run(tmp_path, "cifar10_cnn", "midl", 1, scale="smoke", test={"test/ece": 0.9})
    make_run(tmp_path, "cifar10_cnn", "midl", 7, test={"test/ece": 0.9})  # not a scale seed
    result = build_table(TABLES["table7"], collect_runs([tmp_path]), [0, 1], "cpu", PAPER)
    cell = result.cells[("midl", "ece")]
    assert cell.n == 1 and cell.std is None and cell.marks == "*"


def test_noise_columns_read_their_own_runs(tmp_path):
    for seed in range(5):
        for noise, acc in ((0.0, 0.8), (0.2, 0.6), (0.4, 0.5), (0.6, 0.3)):
            # the final weights (test_last) after memorising noisy labels; seed 4's record
            # predates test_last
            last = {"test_last": {"test/acc": acc - 0.2 + 0.01 * seed}} if seed < 4 else {}
            make_run(tmp_path, "cifar10_cnn", "midl", seed, noise=noise,
                     test={"test/acc": acc + 0.01 * seed}, extra=last)
    result = build_table(TABLES["table3"], collect_runs([tmp_path]), list(range(5)), "cpu",
                         PAPER)
    assert result.cells[("midl", "clean")].mean == pytest.approx(82.0)
    assert result.cells[("midl", "noise40")].mean == pytest.approx(52.0)
    assert result.cells[("midl", "noise40")].paper == 55.8
    last40 = result.cells[("midl", "noise40_last")]
    assert last40.mean == pytest.approx(31.5) and last40.n == 4 and last40.paper == 55.8
    assert result.cells[("midl", "noise60")].paper is None       # not in Table 3
    c10c = result.cells[("midl", "cifar10c")]
    assert c10c.n == 0 and result.missing_analyses                # analysis not run yet


def test_gpu_columns_are_not_available_on_cpu(tmp_path):
    analysis = {"efficiency": {"config": {"device": "cpu"},
                               "latency": {"batch_1": {"median_ms": 2.0}},
                               "memory": {"batch_1": {"peak_mb": 500.0}}}}
    for seed in range(5):
        make_run(tmp_path, "cifar10_cnn", "midl", seed, test={"test/acc": 0.5},
                 analysis=analysis)
    result = build_table(TABLES["table10"], collect_runs([tmp_path]), list(range(5)), "cpu",
                         PAPER)
    assert result.cells[("midl", "latency_gpu")].na == "n/a (no GPU)"
    assert result.cells[("midl", "latency_gpu")].values == []
    assert result.cells[("midl", "latency_cpu")].mean == pytest.approx(2.0)
    assert result.cells[("midl", "latency_cpu")].paper == 27.1
    assert not any("efficiency" in m for m in result.missing_analyses)


def _efficiency(ms: float, mb: float, hardware: dict) -> dict:
    return {"efficiency": {"config": {"device": "cpu"}, "hardware": hardware,
                           "latency": {"batch_1": {"median_ms": ms}},
                           "memory": {"batch_1": {"peak_mb": mb}}}}


def test_a_column_measured_on_two_machines_says_so_and_names_each_machines_runs(tmp_path):
    fast = {"cpu_model": "AMD EPYC", "cpu_isa": "AVX512", "cpu_count": 2}
    slow = {"cpu_model": "AMD EPYC", "cpu_isa": "AVX2", "cpu_count": 2}
    for seed in range(5):
        make_run(tmp_path, "cifar10_cnn", "midl", seed, test={"test/acc": 0.5},
                 analysis=_efficiency(2.0, 500.0, fast))
        make_run(tmp_path, "cifar10_cnn", "dropout", seed, test={"test/acc": 0.5},
                 analysis=_efficiency(4.0, 510.0, fast if seed < 2 else slow))
    result = build_table(TABLES["table10"], collect_runs([tmp_path]), list(range(5)), "cpu",
                         PAPER)
    midl_cell = result.cells[("midl", "latency_cpu")]
    dropout_cell = result.cells[("cnn_mlp (Dropout block)", "latency_cpu")]
    assert midl_cell.machines == ["AMD EPYC (AVX512)"] * 5
    assert "‡" in midl_cell.marks and "‡" in dropout_cell.marks   # the whole column
    assert "‡" not in result.cells[("midl", "latency_gpu")].marks  # no values: no machine
    assert result.machine_notes == [
        f"‡ {label}: measured on 2 machines, whose values do not compare with each other "
        "(AMD EPYC (AVX2): cnn_mlp (Dropout block) (seeds 2,3,4); AMD EPYC (AVX512): "
        "cnn_mlp (Dropout block) (seeds 0,1), midl (seeds 0,1,2,3,4))."
        for label in ("CPU latency b=1 (ms)", "Peak memory b=1 (MB)")]
    text = markdown(result, [])
    assert "`‡` measured on more than one machine (see the notes)" in text
    assert f"- {result.machine_notes[0]}" in text
    rows = list(csv.DictReader(line for line in csv_text(result, []).splitlines()))
    mixed = next(r for r in rows if r["row"].startswith("cnn_mlp") and r["column"] == "memory")
    assert mixed["machines"] == "AMD EPYC (AVX2); AMD EPYC (AVX512)"

    # one machine throughout (the paper's CPU is another machine, but that is said anyway)
    for path in tmp_path.glob("grid_cifar10_cnn/multirun/*block=dropout*"):
        record = json.loads((path / "metrics.json").read_text())
        record["analysis"]["efficiency"]["hardware"] = fast
        (path / "metrics.json").write_text(json.dumps(record))
    result = build_table(TABLES["table10"], collect_runs([tmp_path]), list(range(5)), "cpu",
                         PAPER)
    assert result.machine_notes == [] and "‡" not in markdown(result, [])


def test_every_table_has_the_papers_rows_and_columns(tmp_path):
    """Each table renders every row and column of its spec, and every paper row of the
    reference is matched by a row (no paper number is silently dropped)."""
    for name, spec in TABLES.items():
        result = build_table(spec, [], [0], "cpu", PAPER)
        text = markdown(result, [])
        for row in spec.rows:
            assert f"| {row.label} |" in text, (name, row.label)
        for column in spec.columns:
            assert column.label in text, (name, column.key)
        if name == "baselines" or name in REGIME_TABLES:  # a subset of a paper table's cells
            continue
        if spec.paper_key is None:  # no paper table (the Transformer's open question)
            assert not any(r.paper_match for r in spec.rows), name
            continue
        matched = [report_row for report_row in PAPER[spec.paper_key]
                   if any(r.paper_match and all(report_row.get(k) == v
                                                for k, v in r.paper_match.items())
                          for r in spec.rows)]
        assert len(matched) == len(PAPER[spec.paper_key]), name
        paper_fields = {k for entry in PAPER[spec.paper_key] for k in entry} - {
            "model", "dataset", "variant", "method", "std"}
        assert paper_fields <= {c.paper_field for c in spec.columns}, name


def test_cli_writes_files_and_refuses_to_overwrite(tmp_path, capsys):
    table7_runs(tmp_path / "out")
    args = ["table7", str(tmp_path / "out" / "grid_cifar10_cnn" / "multirun"),
            "--out", str(tmp_path / "results")]
    assert report.main(args) == 0
    folder = tmp_path / "results" / "cpu"
    assert sorted(p.name for p in folder.iterdir()) == ["table7.csv", "table7.md", "table7.png",
                                                        "table7.tex"]
    md = (folder / "table7.md").read_text()
    assert "(table7.png)" in md   # the picture, linked relatively
    assert "Scale: `cpu`" in md and "Command: `python -m midl.report table7" in md
    assert "4.2 ± 0.2 (n=5) / 4.9 / Δ -0.7 †" in md
    rows = [r for r in csv.reader(line for line in (folder / "table7.csv").read_text().splitlines()
                                  if not line.startswith("#"))]
    assert rows[0][:6] == ["row", "column", "unit", "ours_mean", "ours_std", "n"]
    assert len(rows) == 1 + 2 * 3  # 2 rows x (ECE, Brier sum, Brier mean)
    before = (folder / "table7.md").read_text()
    assert report.main(args) == 2                            # exists: refused
    assert "pass --force" in capsys.readouterr().err
    assert (folder / "table7.md").read_text() == before
    assert report.main([*args, "--force"]) == 0


def test_table12_from_resolved_configs(tmp_path):
    config = {"optimizer": {"_target_": "torch.optim.Adam", "lr": 0.001},
              "data": {"batch_size": 64}, "block": {"top_k": 0.5, "gate_dropout": 0.1}}
    for seed in range(5):
        make_run(tmp_path, "cifar10_cnn", "midl", seed, test={"test/acc": 0.5}, config=config)
    report.report_table12(collect_runs([tmp_path]), "cpu", tmp_path / "res", force=False)
    md = (tmp_path / "res" / "cpu" / "table12.md").read_text()
    assert "| Optimizer | Adam | Adam | yes |" in md
    assert "| Learning rate | 0.001 | 0.001 | yes |" in md
    assert "| Top-k sparsity (MID-L) | 0.5 | 0.5 | yes |" in md
    assert "| Runs per result (seeds) | 5 expected; [5] found | 5 | yes |" in md


def test_no_runs_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert report.main(["table4", str(tmp_path / "empty")]) == 2
    assert "no runs found" in capsys.readouterr().err


@pytest.mark.skipif(not SHARED_PAPER.exists(), reason="../shared/paper not present")
def test_paper_reference_is_the_transcription():
    assert PAPER == yaml.safe_load(SHARED_PAPER.read_text())


def test_commit_is_dirty_for_code_changes_not_for_results(tmp_path):
    import subprocess

    from midl.runs.provenance import git_commit

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "table2.md").write_text("old\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert git_commit(tmp_path)["dirty"] is False
    (tmp_path / "results" / "table2.md").write_text("regenerated\n")
    assert git_commit(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path)["dirty"] is True


def test_report_stamp_is_the_last_commit_of_the_report_code(tmp_path):
    """A commit elsewhere leaves the stamp (and so a regenerated table's bytes) unchanged."""
    import subprocess

    from midl.runs.provenance import git_commit

    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c",
                               "user.email=t@t", *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "report.py").write_text("x = 1\n")
    (tmp_path / "other.py").write_text("y = 1\n")
    git("add", ".")
    git("commit", "-qm", "init")
    first = git("rev-parse", "HEAD")
    (tmp_path / "other.py").write_text("y = 2\n")
    git("commit", "-qam", "elsewhere")
    assert git_commit(tmp_path, ["report.py"]) == {"hash": first, "dirty": False}
    assert git_commit(tmp_path)["hash"] != first
    (tmp_path / "report.py").write_text("x = 2\n")
    assert git_commit(tmp_path, ["report.py"]) == {"hash": first, "dirty": True}
    git("commit", "-qam", "report changed")
    assert git_commit(tmp_path, ["report.py"])["hash"] == git("rev-parse", "HEAD")


def test_header_shows_only_the_tables_own_scale_settings():
    """A CIFAR-10 CNN table prints the CNN's epochs, training size, precision and target, not
    the LSTM's width or MNIST's epochs; a low-data table its own epochs; no names: all."""
    settings = {"name": "cpu", "seeds": "0,1", "epochs": {"mnist_mlp": 19, "cifar10_cnn": 33,
                                                          "lowdata": 31},
                "train_size": {"mnist": None, "cifar10": None, "imdb": None},
                "precision": {"mlp": "bf16-mixed", "cnn": "32-true", "lstm": "32-true"},
                "lstm_hidden_dim": 128, "imdb_max_length": 256, "channels_last": False,
                "cifar10c_corruptions": None, "targets": {"cifar10_cnn": 80.0}}
    cnn = report.shown_settings(settings, ["cifar10_cnn"])
    assert cnn == {"seeds": "0,1", "epochs": {"cifar10_cnn": 33},
                   "train_size": {"cifar10": None}, "precision": {"cnn": "32-true"},
                   "channels_last": False, "cifar10c_corruptions": None,
                   "targets": {"cifar10_cnn": 80.0}}
    low = report.shown_settings(settings, ["lowdata_mnist_mlp", "lowdata_cifar10_mlp"])
    assert low["epochs"] == {"lowdata": 31} and low["precision"] == {"mlp": "bf16-mixed"}
    assert "targets" not in low and "lstm_hidden_dim" not in low
    assert report.shown_settings(settings, None) == {k: v for k, v in settings.items()
                                                    if k != "name"}


def test_a_copied_tree_without_git_takes_its_commit_from_the_environment(tmp_path, monkeypatch):
    """A source tree copied (not cloned) to another machine names the commit it came from;
    a git checkout ignores the variable."""
    import subprocess

    from midl.runs.provenance import git_commit

    monkeypatch.delenv("MIDL_GIT_COMMIT", raising=False)
    assert git_commit(tmp_path) == {"hash": None, "dirty": None}
    monkeypatch.setenv("MIDL_GIT_COMMIT", "abc123")
    assert git_commit(tmp_path) == {"hash": "abc123", "dirty": None}
    subprocess.run(["git", "-C", str(tmp_path), "init", "-q"], check=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qm", "init", "--allow-empty"], check=True)
    assert git_commit(tmp_path)["hash"] not in (None, "abc123")


def test_the_svhn_stand_in_note_comes_from_the_record_not_this_machines_folders():
    """A committed record names its data folder relative to a root (<paths.cache_dir>/...),
    which exists nowhere: the header still says its SVHN rows are the stand-in."""
    from types import SimpleNamespace

    from midl.report import _data_notes

    def run(stand_in):
        data = {"name": "SVHN", "sizes": {"train": 20, "val": 5, "test": 10}}
        return SimpleNamespace(record={
            "config": {"data": {"_target_": "midl.data.SVHNDataModule",
                                "data_dir": "<paths.cache_dir>/svhn-fixture"}},
            "data": {**data, "stand_in": {"not_svhn": True}} if stand_in else data})

    assert any("NOT SVHN" in note for note in _data_notes([run(True)]))
    assert not any("NOT SVHN" in note for note in _data_notes([run(False)]))


def test_a_dataset_whose_files_hold_a_subset_is_named_a_pipeline_check():
    """CIFAR-100's files here hold 1,000 of 50,000 training images: the header says so; a
    full split, or a subset the run asked for (low data), is not flagged."""
    from types import SimpleNamespace

    from midl.report import _data_notes

    def run(name, train, val, test, **extra):
        return SimpleNamespace(record={"config": {}, "data": {
            "name": name, "sizes": {"train": train, "val": val, "test": test}, **extra}})

    notes = _data_notes([run("CIFAR-100", 900, 100, 900), run("CIFAR-10", 45000, 5000, 10000),
                         run("CIFAR-10", 180, 5000, 10000, subset={"train_per_class": 18})])
    flagged = [note for note in notes if "subset of the published" in note]
    assert flagged == ["CIFAR-100: the data files hold 1,000 of its 50,000 training and 900 of "
                       "its 10,000 test samples (a subset of the published dataset): its rows "
                       "check the pipeline and are not evidence about CIFAR-100; no "
                       "difference to the paper is taken."]
