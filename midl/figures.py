"""The paper's Figures 3 and 4 as PNG files (matplotlib, Agg backend).

- Figure 3: per-neuron mutual information with the labels (nats, y) against activation
  frequency (fraction of test inputs in which the neuron is selected, x), one point per neuron.
- Figure 4: t-SNE (scikit-learn ``TSNE``) of last-layer embeddings of a seeded subsample of the
  test set, coloured by class (named where :data:`CLASS_NAMES` knows them); panels side by
  side with :func:`plot_tsne_panels` (MID-L next to its Dropout baseline).

Titles name the dataset, backbone and block (:func:`run_title`), and say when the data is a
generated stand-in (:func:`midl.data.svhn.is_stand_in`).
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

from midl.data.svhn import is_stand_in  # noqa: E402


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


CLASS_NAMES: dict[str, tuple[str, ...]] = {
    # CIFAR-10's label_names (batches.meta of the published python version)
    "CIFAR-10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"),
    "MNIST": tuple(str(i) for i in range(10)),
    "SVHN": tuple(str(i) for i in range(10)),   # label 10 of the .mat files is read as 0
    "UCI Adult": ("<=50K", ">50K"),
    "IMDB": ("negative", "positive"),
}
"""Class names of the datasets whose names are short enough for a legend (by the data
module's ``name``)."""

BLOCK_NAMES = {"midl": "MID-L", "dropout": "Dropout", "concrete_dropout": "Concrete Dropout",
               "dynamic_relu": "Dynamic ReLU", "switch": "Switch", "loramoe": "LoRAMoE",
               "f1_only": "F1 only", "f2_only": "F2 only", "fixed_alpha": "fixed alpha",
               "random_topk": "random top-k", "gumbel": "Gumbel top-k",
               "midl_channel": "MID-L (channels)"}
"""Readable names of the blocks (``configs/block/<name>.yaml``) for figure titles."""

_BLOCK_CLASSES = {"MIDLayer": "midl", "DropoutBlock": "dropout"}
_MODEL_NAMES = {"MLP": "MLP", "CNN": "CNN + MLP", "LSTM": "LSTM"}


def class_names(dataset: str | None, n_classes: int | None = None) -> tuple[str, ...] | None:
    """The class names of ``dataset`` (a data module's ``name``), or None if unknown or if
    ``n_classes`` is given and differs."""
    names = CLASS_NAMES.get(str(dataset))
    if names is None or (n_classes is not None and len(names) != n_classes):
        return None
    return names


def run_title(config: Any, dataset: str | None = None, block: str | None = None,
              data: Any = None) -> str:
    """A readable name of a run for figure titles, e.g. ``MNIST, MLP + MID-L`` or
    ``SVHN stand-in (MNIST digits in the SVHN format, not SVHN), CNN + MLP + Dropout``.

    Args:
        config: the run's resolved config (``metrics.json``'s ``config`` or a DictConfig).
        dataset: the data module's ``name``; default: the class name of ``data._target_``.
        block: the block's config name (``midl``); default: read from ``block._target_``.
        data: the run's data summary (a record's ``data``; :func:`midl.data.svhn.is_stand_in`).
    """
    config = config or {}
    data_target = str((config.get("data") or {}).get("_target_", "?")).rsplit(".", 1)[-1]
    dataset = dataset or data_target.removesuffix("DataModule")
    if is_stand_in(data):
        dataset = f"{dataset} stand-in (MNIST digits in the SVHN format, not {dataset})"
    model = str((config.get("model") or {}).get("_target_", "")).rsplit(".", 1)[-1]
    if block is None:
        target = str((config.get("block") or {}).get("_target_", "")).rsplit(".", 1)[-1]
        block = _BLOCK_CLASSES.get(target, target)
    parts = [_MODEL_NAMES.get(model, model), BLOCK_NAMES.get(block, block)]
    return f"{dataset}, " + " + ".join(p for p in parts if p)


def plot_smi_vs_frequency(mutual_information: Sequence[float], frequency: Sequence[float],
                          path: str | Path, title: str = "MI vs activation frequency") -> Path:
    """Figure 3: scatter of per-neuron MI (nats) against activation frequency (%), with their
    Spearman rank correlation (``scipy.stats.spearmanr``) in the title.

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
    rho = spearman(mi, freq)
    text = ("Spearman ρ = n/a (constant frequency)" if rho is None
            else f"Spearman ρ(MI, frequency) = {rho:.3f}")
    ax.set_title(f"{title}\n{text}, {len(mi)} neurons", fontsize=9)  # above, not over points
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation of ``a`` and ``b`` (scipy), or None if either is constant
    (it is undefined then)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def tsne_embedding(embeddings: np.ndarray, seed: int = 0,
                   perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of ``embeddings`` (n, d) -> (n, 2), seeded, PCA-initialised.

    The perplexity is lowered to (n - 1) / 3 for small n (scikit-learn needs it below n).
    """
    n = embeddings.shape[0]
    perplexity = min(perplexity, max(1.0, (n - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed
                ).fit_transform(np.asarray(embeddings, dtype=np.float32))


def points_path(png: str | Path) -> Path:
    """Where :func:`plot_tsne` keeps the 2-D points beside its PNG (``<name>.npz``)."""
    return Path(png).with_suffix(".npz")


def _scatter_classes(ax: Any, points: np.ndarray, labels: np.ndarray,
                     names: Sequence[str] | None) -> list:
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    handles = []
    for i, c in enumerate(classes):
        members = labels == c
        name = names[int(c)] if names is not None and 0 <= int(c) < len(names) else str(c)
        handles.append(ax.scatter(points[members, 0], points[members, 1], s=5,
                                  color=cmap(i % cmap.N), label=name, alpha=0.8))
    ax.set_xticks([]), ax.set_yticks([])
    return handles if len(classes) <= 20 else []


def plot_tsne(embeddings: np.ndarray, labels: np.ndarray, path: str | Path,
              n_samples: int | None = 2000, seed: int = 0, perplexity: float = 30.0,
              title: str = "t-SNE of last-layer embeddings",
              class_names: Sequence[str] | None = None) -> Path:
    """Figure 4: t-SNE of a seeded subsample of ``embeddings`` (n, d), coloured by class, the
    legend beside the plot (never over points). The 2-D points and labels are kept beside
    the PNG (:func:`points_path`) so reports can redraw them (:func:`plot_tsne_panels`).

    Args:
        embeddings: (n, d) last-layer embeddings; labels: (n,) integer classes.
        path: the PNG file to write.
        n_samples: subsample size (drawn without replacement with ``seed``); ``None`` or
            >= n uses all.
        seed: seeds the subsample and t-SNE.
        perplexity: t-SNE perplexity.
        title: the plot title.
        class_names: names of classes 0..C-1 for the legend (default: the class numbers).

    Returns:
        The path written.

    Raises:
        ValueError: if embeddings and labels differ in length.
    """
    embeddings, labels = np.asarray(embeddings), np.asarray(labels)
    if embeddings.shape[0] != labels.shape[0]:
        raise ValueError(f"embeddings and labels must have the same length, got "
                         f"{embeddings.shape[0]} and {labels.shape[0]}")
    if n_samples is not None and n_samples < embeddings.shape[0]:
        index = np.random.default_rng(seed).choice(embeddings.shape[0], n_samples, replace=False)
        embeddings, labels = embeddings[index], labels[index]
    points = tsne_embedding(embeddings, seed=seed, perplexity=perplexity)
    npz = points_path(path)
    npz.parent.mkdir(parents=True, exist_ok=True)
    tmp = npz.with_name(f".{npz.name}.tmp.npz")
    np.savez_compressed(tmp, points=points.astype(np.float32), labels=labels)
    os.replace(tmp, npz)
    return plot_tsne_panels([(title, points, labels)], path, class_names=class_names)


PANEL_TITLE_WIDTH = 60  # characters per line of a t-SNE panel's title (4.6 in at 9 pt)


def plot_tsne_panels(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | Path,
                     title: str | None = None,
                     class_names: Sequence[str] | None = None) -> Path:
    """t-SNE panels side by side (e.g. MID-L and its Dropout baseline), one shared legend to
    the right of the last panel.

    Args:
        panels: ``(panel title, points (n, 2), labels (n,))`` each.
        path: the PNG file to write.
        title: an overall title (``suptitle``), or None.
        class_names: names of classes 0..C-1 for the legend.

    Returns:
        The path written.

    Raises:
        ValueError: without panels.
    """
    if not panels:
        raise ValueError("plot_tsne_panels needs at least one panel")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 1.4, 4.6),
                             squeeze=False)
    handles: list = []
    for ax, (panel_title, points, labels) in zip(axes[0], panels, strict=True):
        labels = np.asarray(labels)
        handles = _scatter_classes(ax, np.asarray(points), labels, class_names) or handles
        # wrapped to the panel's width: long names (the SVHN stand-in's) would run into the
        # next panel's title
        ax.set_title(textwrap.fill(f"{panel_title} (n={len(labels)})", PANEL_TITLE_WIDTH),
                     fontsize=9)
    if handles:
        axes[0][-1].legend(handles=handles, markerscale=3, fontsize=7, title="class",
                           loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


__all__ = ["BLOCK_NAMES", "CLASS_NAMES", "class_names", "plot_smi_vs_frequency",
           "plot_tsne", "plot_tsne_panels", "points_path", "run_title", "save_png", "spearman",
           "tsne_embedding"]
