"""SMI's permuted-label bias floor: near the estimate itself on independent data,
far below it on a separable mixture."""

from __future__ import annotations

import numpy as np
import pytest

from midl.metrics.smi import sliced_mutual_information


def test_independent_data_sits_on_its_floor():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2000, 16)), rng.integers(0, 10, 2000)
    result = sliced_mutual_information(x, y, n_directions=40, seed=0, n_permutations=3)
    # the bias itself is positive (clip at 0), and the permuted estimate reproduces it
    assert result["smi"] > 0.002 and result["floor"] > 0.002, result
    assert abs(result["above_floor"]) < 0.003, result
    assert result["above_floor"] == pytest.approx(result["smi"] - result["floor"])
    assert result["n_permutations"] == 3 and result["floor_std"] >= 0.0


def test_separable_mixture_is_far_above_its_floor():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    x = rng.standard_normal((2000, 4))
    x[:, 0] += np.where(y == 1, 3.0, -3.0)
    result = sliced_mutual_information(x, y, n_directions=40, seed=0, n_permutations=2)
    assert result["floor"] < 0.02, result
    assert result["above_floor"] > 0.15, result  # exact SMI here is about 0.3 nats


def test_no_floor_by_default_and_negative_permutations_refused():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((100, 3)), rng.integers(0, 2, 100)
    assert "floor" not in sliced_mutual_information(x, y, n_directions=5)
    with pytest.raises(ValueError, match="n_permutations must be >= 0, got -1"):
        sliced_mutual_information(x, y, n_directions=5, n_permutations=-1)
