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
                              seed: int = 0, n_jobs: int | None = None) -> dict[str, Any]:
    """Monte-Carlo estimate of SMI(X; Y) in nats (Goldfeld & Greenewald 2021).

    Args:
        x: activations, array or tensor (n, d).
        y: integer class labels (n,).
        n_directions: m, the number of random unit directions (1000 by default).
        n_neighbors: k of the k-NN MI estimator (Ross 2014), 3 by default.
        seed: seeds the directions and scikit-learn's tie-breaking noise.
        n_jobs: parallel jobs for ``mutual_info_classif``.

    Returns:
        ``{"smi": mean over directions (nats), "std": standard deviation over directions,
        "sem": standard error of the mean, "n_directions", "n_samples", "dim",
        "n_neighbors", "seed"}``.

    Raises:
        ValueError: for mis-shaped inputs, non-finite activations or n <= 3.
    """
    x, y = _as_arrays(x, y)
    theta = random_directions(x.shape[1], n_directions, seed)
    per_direction = mutual_info_classif(x @ theta, y, discrete_features=False,
                                        n_neighbors=n_neighbors, random_state=seed,
                                        n_jobs=n_jobs)
    std = float(per_direction.std(ddof=1)) if n_directions > 1 else 0.0
    return {"smi": float(per_direction.mean()), "std": std,
            "sem": std / float(np.sqrt(n_directions)), "n_directions": n_directions,
            "n_samples": int(x.shape[0]), "dim": int(x.shape[1]), "n_neighbors": n_neighbors,
            "seed": seed}


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
