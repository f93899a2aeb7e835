"""The paper's Figures 3 and 4 as PNG files (matplotlib, Agg backend).

- Figure 3: per-neuron mutual information with the labels (nats, y) against activation
  frequency (fraction of test inputs in which the neuron is selected, x), one point per neuron.
- Figure 4: t-SNE (scikit-learn ``TSNE``) of last-layer embeddings of a seeded subsample of the
  test set, coloured by class.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402


def save_png(fig: Any, path: str | Path, dpi: int = 150) -> Path:
    """Write ``fig`` to the PNG file ``path`` atomically (a temporary file in the same folder,
    then a rename: an interruption leaves any older file intact) and close it.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path


def plot_smi_vs_frequency(mutual_information: Sequence[float], frequency: Sequence[float],
                          path: str | Path, title: str = "MI vs activation frequency") -> Path:
    """Figure 3: scatter of per-neuron MI (nats) against activation frequency (%).

    Args:
        mutual_information: (d,) per-neuron I(X_j; Y) in nats.
        frequency: (d,) per-neuron activation frequency as fractions in [0, 1].
        path: the PNG file to write.
        title: the plot title.

    Returns:
        The path written.

    Raises:
        ValueError: if the two sequences differ in length.
    """
    mi, freq = np.asarray(mutual_information, float), np.asarray(frequency, float)
    if mi.shape != freq.shape:
        raise ValueError(f"need one MI and one frequency per neuron, got {mi.shape} and "
                         f"{freq.shape}")
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(100 * freq, mi, s=12, alpha=0.7, edgecolors="none")
    ax.set_xlabel("activation frequency (% of test inputs)")
    ax.set_ylabel("per-neuron MI with label (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def tsne_embedding(embeddings: np.ndarray, seed: int = 0,
                   perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of ``embeddings`` (n, d) -> (n, 2), seeded, PCA-initialised.

    The perplexity is lowered to (n - 1) / 3 for small n (scikit-learn needs it below n).
    """
    n = embeddings.shape[0]
    perplexity = min(perplexity, max(1.0, (n - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed
                ).fit_transform(np.asarray(embeddings, dtype=np.float32))


def plot_tsne(embeddings: np.ndarray, labels: np.ndarray, path: str | Path,
              n_samples: int | None = 2000, seed: int = 0, perplexity: float = 30.0,
              title: str = "t-SNE of last-layer embeddings") -> Path:
    """Figure 4: t-SNE of a seeded subsample of ``embeddings`` (n, d), coloured by class.

    Args:
        embeddings: (n, d) last-layer embeddings; labels: (n,) integer classes.
        path: the PNG file to write.
        n_samples: subsample size (drawn without replacement with ``seed``); ``None`` or
            >= n uses all.
        seed: seeds the subsample and t-SNE.
        perplexity: t-SNE perplexity.
        title: the plot title.

    Returns:
        The path written.
    """
    embeddings, labels = np.asarray(embeddings), np.asarray(labels)
    if embeddings.shape[0] != labels.shape[0]:
        raise ValueError("embeddings and labels must have the same length")
    if n_samples is not None and n_samples < embeddings.shape[0]:
        index = np.random.default_rng(seed).choice(embeddings.shape[0], n_samples, replace=False)
        embeddings, labels = embeddings[index], labels[index]
    points = tsne_embedding(embeddings, seed=seed, perplexity=perplexity)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, c in enumerate(classes):
        members = labels == c
        ax.scatter(points[members, 0], points[members, 1], s=5, color=cmap(i % cmap.N),
                   label=str(c), alpha=0.8)
    if len(classes) <= 20:
        ax.legend(markerscale=3, fontsize=7, loc="best", title="class")
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(f"{title} (n={len(labels)})")
    return save_png(fig, path)


__all__ = ["plot_smi_vs_frequency", "plot_tsne", "tsne_embedding"]
