"""Sliced mutual information (SMI) between layer activations and class labels, in nats.

SMI (Goldfeld & Greenewald, "Sliced mutual information: a scalable measure of statistical
dependence", NeurIPS 2021) is the mutual information between one-dimensional random
projections of X and the label Y, averaged over directions uniform on the unit sphere:

    SMI(X; Y) = E_{theta ~ Unif(S^{d-1})} [ I(theta^T X; Y) ].

Estimator: the Monte-Carlo mean over ``n_directions`` seeded directions (Gaussian vectors
normalised to unit length) of a 1-D estimate of I(theta^T X; Y) from scikit-learn's
``mutual_info_classif`` (the k-nearest-neighbour estimator for a continuous variable and a
discrete one of Ross, "Mutual information between discrete and continuous data sets", PLoS ONE
2014, with k = ``n_neighbors`` = 3). scikit-learn clips each 1-D estimate at 0, so SMI of
independent X and Y is a small positive number rather than 0 on average.

Bias floor: with Y independent of X the estimate is not 0 but a positive bias (the per-
direction clip at 0 keeps the positive half of the estimator's noise): about 0.008 nats at
n = 2,000, 10 classes, k = 3, which is 15-45% of the paper's Table 6 values. With
``n_permutations > 0`` the same estimate is repeated with the labels randomly permuted (same
directions, so X's structure is kept and only its relation to Y is destroyed; a permutation
test's null, e.g. Good, "Permutation tests", 2000); the mean over permutations is the
``floor`` and ``above_floor = smi - floor`` is the dependence beyond the bias. Compare methods
by ``above_floor``.

The per-neuron MI used for Figure 3 is the same 1-D estimate along each coordinate axis,
I(X_j; Y) for neuron j.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.feature_selection import mutual_info_classif


def _as_arrays(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    y = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d), got {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape (n,) = ({x.shape[0]},), got {y.shape}")
    if x.shape[0] <= 3:
        raise ValueError(f"need more than 3 samples for the k-NN estimator, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values")
    return x, y


def random_directions(dim: int, n_directions: int, seed: int = 0) -> np.ndarray:
    """``n_directions`` directions uniform on the unit sphere S^{dim-1}, seeded.

    Returns:
        Array (dim, n_directions) whose columns have unit Euclidean norm.
    """
    if dim < 1 or n_directions < 1:
        raise ValueError(f"need dim >= 1 and n_directions >= 1, got {dim=} {n_directions=}")
    theta = np.random.default_rng(seed).standard_normal((dim, n_directions))
    return theta / np.linalg.norm(theta, axis=0, keepdims=True)


def sliced_mutual_information(x: Any, y: Any, n_directions: int = 1000, n_neighbors: int = 3,
                              seed: int = 0, n_jobs: int | None = None,
                              n_permutations: int = 0) -> dict[str, Any]:
    """Monte-Carlo estimate of SMI(X; Y) in nats (Goldfeld & Greenewald 2021), optionally with
    its permuted-label bias floor (module docstring).

    Args:
        x: activations, array or tensor (n, d).
        y: integer class labels (n,).
        n_directions: m, the number of random unit directions (1000 by default).
        n_neighbors: k of the k-NN MI estimator (Ross 2014), 3 by default.
        seed: seeds the directions, scikit-learn's tie-breaking noise and the permutations.
        n_jobs: parallel jobs for ``mutual_info_classif``.
        n_permutations: label permutations of the bias floor (0: no floor; each one costs
            as much as the estimate itself).

    Returns:
        ``{"smi": mean over directions (nats), "std": standard deviation over directions,
        "sem": standard error of the mean, "n_directions", "n_samples", "dim",
        "n_neighbors", "seed"}``; with ``n_permutations > 0`` also ``"floor"`` (mean SMI
        over the permutations, nats), ``"floor_std"`` (their std, 0 for one permutation),
        ``"above_floor"`` (smi - floor, nats) and ``"n_permutations"``.

    Raises:
        ValueError: for mis-shaped inputs, non-finite activations, n <= 3 or a negative
            ``n_permutations``.
    """
    x, y = _as_arrays(x, y)
    if n_permutations < 0:
        raise ValueError(f"n_permutations must be >= 0, got {n_permutations}")
    theta = random_directions(x.shape[1], n_directions, seed)
    projected = x @ theta

    def estimate(labels: np.ndarray) -> np.ndarray:
        return mutual_info_classif(projected, labels, discrete_features=False,
                                   n_neighbors=n_neighbors, random_state=seed, n_jobs=n_jobs)

    per_direction = estimate(y)
    std = float(per_direction.std(ddof=1)) if n_directions > 1 else 0.0
    result = {"smi": float(per_direction.mean()), "std": std,
              "sem": std / float(np.sqrt(n_directions)), "n_directions": n_directions,
              "n_samples": int(x.shape[0]), "dim": int(x.shape[1]), "n_neighbors": n_neighbors,
              "seed": seed}
    if n_permutations:
        rng = np.random.default_rng([seed, 1])  # a stream of its own, not the directions'
        floors = np.array([estimate(rng.permutation(y)).mean() for _ in range(n_permutations)])
        floor = float(floors.mean())
        result.update({"floor": floor,
                       "floor_std": float(floors.std(ddof=1)) if n_permutations > 1 else 0.0,
                       "above_floor": result["smi"] - floor, "n_permutations": n_permutations})
    return result


def per_neuron_mutual_information(x: Any, y: Any, n_neighbors: int = 3, seed: int = 0,
                                  n_jobs: int | None = None) -> np.ndarray:
    """I(X_j; Y) in nats for every neuron j (Ross 2014 k-NN estimator, k = ``n_neighbors``).

    Args:
        x: activations (n, d); y: integer labels (n,).

    Returns:
        Array (d,) of non-negative MI estimates.
    """
    x, y = _as_arrays(x, y)
    return mutual_info_classif(x, y, discrete_features=False, n_neighbors=n_neighbors,
                               random_state=seed, n_jobs=n_jobs)


__all__ = ["per_neuron_mutual_information", "random_directions", "sliced_mutual_information"]
