"""A scale's accuracy targets (configs/scale/<scale>.yaml ``targets``) are judged from the
Dropout baseline's counted runs and printed in every table header whose rows use the setting."""

from __future__ import annotations

import json

import pytest
from test_run_selection import SCALE, SETTING, make_run

from midl import report
from midl.reporting.runs import collect_runs
from midl.reporting.scales import scale_settings
from midl.reporting.targets import check_targets


def test_target_met_not_met_and_partial_from_counted_baseline_runs(tmp_path):
    for seed, acc in enumerate((0.97, 0.99)):
        make_run(tmp_path, f"dropout_{seed}", "dropout", seed=seed, acc=acc)
    make_run(tmp_path, "midl_0", "midl", seed=0, acc=0.10)         # not the baseline
    make_run(tmp_path, "dropout_other", "dropout", seed=2, acc=0.10,  # configured otherwise
             config={"block": {"p": 0.9}})
    runs = collect_runs([tmp_path])
    met, = check_targets([SETTING, SETTING], {SETTING: 97.5}, runs, [0, 1], SCALE)
    assert met.values == pytest.approx((97.0, 99.0)) and met.verdict == "met"
    assert not met.missed
    assert met.line() == (f"- Accuracy target ({SETTING}, Dropout baseline, test accuracy): "
                          ">= 97.5%: ours 98.00 ± 1.41 (n = 2 of 2): **met**")
    missed, = check_targets([SETTING], {SETTING: 98.5}, runs, [0, 1], SCALE)
    assert missed.verdict == "not met" and missed.missed
    partial, = check_targets([SETTING], {SETTING: 97.5}, runs, [0, 1, 2], SCALE)
    assert partial.verdict == "met so far" and len(partial.values) == 2  # seed 2 not counted
    none, = check_targets([SETTING], {SETTING: 97.5}, runs, [5], SCALE)
    assert none.verdict == "no baseline runs yet" and not none.missed
    assert check_targets([SETTING], None, runs, [0], SCALE) == []
    assert check_targets(["adult_mlp"], {SETTING: 97.5}, runs, [0], SCALE) == []
    with pytest.raises(ValueError, match=r"targets.mnist_mlp = 197: expected a test accuracy"):
        check_targets([SETTING], {SETTING: 197}, runs, [0], SCALE)


def test_table_header_prints_the_target_line(tmp_path, monkeypatch):
    make_run(tmp_path, "dropout_0", "dropout", seed=0, acc=0.96)
    settings = dict(scale_settings(SCALE), targets={SETTING: 97.5})
    monkeypatch.setattr(report, "scale_settings", lambda name: settings)
    written = report.report_table("baselines", collect_runs([tmp_path]), SCALE,
                                  tmp_path / "out", force=False, command="test")
    text = next(p for p in written if p.suffix == ".md").read_text()
    assert "ours 96.00 ± 0.00 (n = 1 of 1): **not met**" in text


def test_scale_warning_only_for_settings_that_shape_the_analyses(tmp_path):
    """Another setting's epochs or a target may change after runs are recorded (they do not
    reach this run's result); a changed analysis setting is flagged."""
    from midl.reporting.runs import RunKey, expected_config

    def header(scale_change: dict) -> str:
        root = tmp_path / str(len(list(tmp_path.iterdir())))
        config = expected_config(RunKey(SETTING, "dropout", 0.0, 0, SCALE))
        config["scale"].update(scale_change)
        make_run(root, "dropout_0", "dropout", seed=0, config=config)
        runs = collect_runs([root])
        return "\n".join(report.header_lines(SCALE, scale_settings(SCALE), runs, "test"))

    assert "WARNING" not in header({"epochs": {"imdb_lstm": 99}, "targets": {"x": 1.0}})
    assert "WARNING: the counted runs' analyses" in header({"smi_directions": 7})


def test_header_says_when_resumed_runs_count_only_their_last_process(tmp_path):
    """Records written before midl.train summed a resumed run's processes (no
    ``wall_time_process_s``) undercount its time; the header says how many are counted so."""
    def header(*records: dict) -> str:
        root = tmp_path / str(len(list(tmp_path.iterdir())))
        for seed, extra in enumerate(records):
            metrics = make_run(root, f"dropout_{seed}", "dropout", seed=seed) / "metrics.json"
            metrics.write_text(json.dumps({**json.loads(metrics.read_text()), **extra}))
        return "\n".join(report.header_lines(SCALE, scale_settings(SCALE),
                                             collect_runs([root]), "test"))

    old_resumed = {"resumed_from": "last.ckpt", "wall_time_s": 100.0}
    summed = {"resumed_from": "last.ckpt", "wall_time_s": 300.0, "wall_time_process_s": 50.0}
    fresh = {"resumed_from": None, "wall_time_s": 200.0}
    text = header(old_resumed, summed, fresh)
    assert "600 s (0.17 h; analyses not included; 1 resumed run counted with the time of the " \
           "last process only" in text
    assert "2 resumed runs counted" in header(old_resumed, old_resumed)
    assert "resumed run" not in header(summed, fresh)


def test_the_transformers_baseline_is_its_ffn():
    from midl.reporting.targets import TargetCheck, baseline_block

    assert baseline_block("imdb_transformer") == "ffn"
    assert baseline_block("cifar10_cnn") == "dropout"
    line = TargetCheck("imdb_transformer", 85.0, (), 5).line()
    assert line.startswith("- Accuracy target (imdb_transformer, ffn baseline, test accuracy)")
