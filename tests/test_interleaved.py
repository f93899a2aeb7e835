"""Interleaved latency sessions (midl.metrics.interleaved): the ABAB order, the per-session
ratios and their geometric-mean interval, on a hand-made clock (no timing is run)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from midl.metrics import interleaved


def test_orders_alternate_and_need_five_sessions():
    orders = interleaved.session_orders(["a", "b"], 6)
    assert orders == [["a", "b"], ["b", "a"]] * 3
    with pytest.raises(ValueError, match="at least 5 sessions"):
        interleaved.session_orders(["a", "b"], 4)


def test_ratio_of_per_session_medians_on_a_hand_made_pair():
    # a machine that slows down over time: absolute ms drift, the per-session ratio does not
    drift = iter(np.repeat([1.0, 1.5, 2.0, 2.5, 3.0], 2))
    models = {"midl": 0.6, "dropout": 1.0}  # "model" = its cost on an idle machine (ms)
    record = interleaved.interleaved_sessions(models, lambda cost: cost * next(drift), 5)
    assert [s["order"][0] for s in record["sessions"]] == ["midl", "dropout"] * 2 + ["midl"]
    ratios = interleaved.session_ratios(record, "midl", "dropout")
    assert ratios == pytest.approx([0.6] * 5)
    noisy = [0.58, 0.61, 0.60, 0.62, 0.59]
    e = interleaved.ratio_effect(noisy)
    ci = stats.ttest_1samp(np.log(noisy), 0.0).confidence_interval(0.95)
    assert e.estimate == pytest.approx(stats.gmean(noisy))
    assert (e.low, e.high) == pytest.approx((np.exp(ci.low), np.exp(ci.high)))
    assert e.log and e.low < e.estimate < e.high


def _record(medians: dict[str, list[float]]) -> dict:
    """A sessions record from per-model medians (one per session)."""
    n = len(next(iter(medians.values())))
    return {"sessions": [{"order": list(medians), "median_ms": {m: v[i] for m, v in
                                                                   medians.items()}}
                         for i in range(n)]}


def test_arm_ratios_average_seeds_within_each_session():
    record = _record({"midl/seed=0": [2.0, 4.0], "midl/seed=1": [8.0, 8.0],
                      "dropout/seed=0": [1.0, 1.0], "dropout/seed=1": [2.0, 8.0],
                      "switch/seed=2": [1.0, 1.0]})
    # session 0: ratios 2 and 4 -> geometric mean sqrt(8); session 1: 4 and 1 -> 2
    assert interleaved.arm_ratios(record, "midl", "dropout") == pytest.approx([8 ** 0.5, 2.0])
    with pytest.raises(KeyError, match="no seed timed for both"):
        interleaved.arm_ratios(record, "midl", "switch")


def test_load_sessions_reads_json_and_rejects_another_format(tmp_path):
    path = tmp_path / interleaved.FILE
    assert interleaved.load_sessions(path) is None
    path.write_text('{"format": 2, "tables": {}}')
    assert interleaved.load_sessions(path) == {"format": 2, "tables": {}}
    path.write_text('{"format": 99}')
    with pytest.raises(interleaved.SessionsError, match="format 99, expected 2"):
        interleaved.load_sessions(path)
