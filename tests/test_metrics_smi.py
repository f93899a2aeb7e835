"""Sliced mutual information on synthetic data with known answers (nats)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special, stats

from midl.metrics.smi import (
    per_neuron_mutual_information,
    random_directions,
    sliced_mutual_information,
)

# Tolerance for the k-NN estimator (Ross 2014, k = 3) at n = 2000 samples: its finite-sample
# error on these one-dimensional two-Gaussian problems is about 0.01 nats, so 0.03 nats
# leaves room without hiding a wrong estimator (the answers here are 0.3-0.5 nats). The Monte
# Carlo error over m directions is covered separately by 4 standard errors.
KNN_TOL = 0.03


def mixture_mi(a: float) -> float:
    """Exact I(Z; Y) for Y uniform on {-1, +1} and Z | Y ~ N(Y a, 1), by numerical integration:
    h(Z) - h(Z | Y) with h(Z | Y) = log(2 pi e) / 2, h(Z) by Simpson's rule on a fine grid."""
    a = abs(float(a))
    if a == 0:
        return 0.0
    z = np.linspace(-a - 12, a + 12, 40001)
    p = 0.5 * stats.norm.pdf(z, a) + 0.5 * stats.norm.pdf(z, -a)
    h = integrate.simpson(-p * np.log(np.maximum(p, 1e-300)), x=z)
    return float(h - 0.5 * np.log(2 * np.pi * np.e))


def mixture_smi(mean_norm: float, dim: int) -> float:
    """Exact SMI of the mixture X | Y ~ N(Y mu, I_d): E_theta I(theta^T X; Y) with
    t = theta^T mu / |mu| distributed on [-1, 1] with density c (1 - t^2)^((d - 3) / 2)."""
    c = special.gamma(dim / 2) / (np.sqrt(np.pi) * special.gamma((dim - 1) / 2))
    w = (dim - 3) / 2
    value, _ = integrate.quad(lambda t: c * mixture_mi(mean_norm * t), -1, 1, weight="alg",
                              wvar=(w, w))
    return value


def mixture_sample(n: int, mean: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, len(mean))) + np.where(y[:, None] == 1, mean, -mean)
    return x, y


def test_ground_truth_helper_is_right_at_known_limits():
    assert mixture_mi(0.0) == 0.0
    assert mixture_mi(8.0) == pytest.approx(np.log(2), abs=1e-6)  # separated: H(Y) = log 2
    assert mixture_smi(2.0, 3) == pytest.approx(
        integrate.quad(lambda t: mixture_mi(2.0 * t), 0, 1)[0], rel=1e-6)  # uniform t for d=3


def test_independent_x_and_y_give_about_zero():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2000, 8)), rng.integers(0, 10, 2000)
    result = sliced_mutual_information(x, y, n_directions=50, seed=0)
    # estimates are clipped at 0 by scikit-learn, so the mean is a small positive number
    assert 0.0 <= result["smi"] < 0.02, result


@pytest.mark.parametrize(("dim", "mean_norm"), [(3, 2.0), (5, 3.0)])
def test_gaussian_mixture_matches_numerical_integration(dim, mean_norm):
    m, seed = 200, 0
    mean = np.zeros(dim)
    mean[0] = mean_norm
    x, y = mixture_sample(2000, mean, seed=1)
    result = sliced_mutual_information(x, y, n_directions=m, seed=seed)
    # (1) against the exact value on the same m directions: the k-NN estimator's error alone
    theta = random_directions(dim, m, seed)
    on_directions = np.mean([mixture_mi(a) for a in mean @ theta])
    assert result["smi"] == pytest.approx(on_directions, abs=KNN_TOL)
    # (2) against the exact SMI (integral over the sphere): plus Monte Carlo error over theta
    truth = mixture_smi(mean_norm, dim)
    assert abs(result["smi"] - truth) <= 4 * result["sem"] + KNN_TOL, (result, truth)
    assert result["n_directions"] == m and result["dim"] == dim


def test_rotation_invariance():
    mean = np.array([3.0, 0.0, 0.0, 0.0])
    x, y = mixture_sample(1500, mean, seed=3)
    # an orthogonal map that spreads the first axis evenly over all four (Hadamard / 2)
    q = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2.0
    np.testing.assert_allclose(q @ q.T, np.eye(4), atol=1e-12)
    a = sliced_mutual_information(x, y, n_directions=200, seed=0)
    b = sliced_mutual_information(x @ q, y, n_directions=200, seed=0)
    assert abs(a["smi"] - b["smi"]) <= 4 * np.hypot(a["sem"], b["sem"]) + 0.01, (a, b)
    # the per-coordinate MI is not rotation invariant: each rotated axis carries mean 1.5
    before, after = per_neuron_mutual_information(x, y), per_neuron_mutual_information(x @ q, y)
    assert before[0] == pytest.approx(mixture_mi(3.0), abs=KNN_TOL)
    assert before[1:].max() < KNN_TOL
    np.testing.assert_allclose(after, mixture_mi(1.5), atol=KNN_TOL)


def test_directions_are_unit_and_seeded_and_inputs_checked():
    theta = random_directions(6, 10, seed=5)
    assert theta.shape == (6, 10)
    np.testing.assert_allclose(np.linalg.norm(theta, axis=0), 1.0)
    np.testing.assert_array_equal(theta, random_directions(6, 10, seed=5))
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        sliced_mutual_information(np.zeros(10), np.zeros(10))
    with pytest.raises(ValueError, match="y must have shape"):
        sliced_mutual_information(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="NaN"):
        sliced_mutual_information(np.full((10, 2), np.nan), np.zeros(10))
