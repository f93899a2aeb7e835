"""Extractors (:mod:`midl.reporting.columns`): a section a record may lack reads as missing,
a mistyped key path raises instead of reading as absent data."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from midl.reporting import columns
from midl.reporting.columns import ACC, ACC_LAST, ECE_LAST, FALL, MEMORIZED, Extractor

RECORD = {"test": {"test/acc": 0.9, "test/ece": 0.05},
          "test_last": {"test/acc": 0.8, "test/ece": 0.1},
          "memorization": {"memorized": 0.25}}


def run(record: dict) -> SimpleNamespace:
    return SimpleNamespace(record=record)


def test_extractors_read_their_sections():
    full = run(RECORD)
    assert ACC(full) == pytest.approx(90.0)
    assert ACC_LAST(full) == pytest.approx(80.0)
    assert ECE_LAST(full) == pytest.approx(10.0)
    assert MEMORIZED(full) == pytest.approx(25.0)


def test_fall_is_best_clean_val_minus_final_test_accuracy_and_none_on_noisy_val():
    record = {**RECORD, "best_val": {"val/acc": 0.93},
              "config": {"data": {"noisy_val": False}}}
    assert FALL(run(record)) == pytest.approx(13.0)            # 93 - 80 points
    noisy = {**record, "config": {"data": {"noisy_val": True}}}
    assert FALL(run(noisy)) is None          # a noisy validation accuracy is not the signature
    assert FALL(run({k: v for k, v in record.items() if k != "test_last"})) is None
    assert FALL.lacks(run({"test": RECORD["test"]})) == "test_last"


def test_an_optional_section_absent_from_an_old_record_reads_as_missing():
    old = run({"test": RECORD["test"]})
    assert ECE_LAST(old) is None
    assert MEMORIZED(old) is None
    assert ACC_LAST(old) is None


def test_a_metric_the_test_stage_did_not_log_is_missing():
    assert columns.test_metric("f1", 100)(run(RECORD)) is None


def test_a_mistyped_key_path_raises():
    with pytest.raises(KeyError):
        columns.test_metric("acc", 100)(run({"tset": RECORD["test"]}))
    typo = Extractor("memorized", lambda r: r.record["memorization"]["memorised"],
                     optional=("memorization",))
    with pytest.raises(KeyError):
        typo(run(RECORD))
    section_typo = Extractor("ece_last", lambda r: r.record["test_lats"]["test/ece"],
                             optional=("test_last",))
    with pytest.raises(KeyError):
        section_typo(run(RECORD))
