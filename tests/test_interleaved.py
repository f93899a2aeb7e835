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
