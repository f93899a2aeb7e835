"""CIFAR-10-C (Hendrycks & Dietterich 2019, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR): CIFAR-10 test images under 15 corruptions.

Released layout (used when present): ``<data_dir>/CIFAR-10-C/<corruption>.npy``, uint8
(50000, 32, 32, 3) = severities 1..5 x the 10,000 CIFAR-10 test images in order, and
``labels.npy`` (50000,). Otherwise the corrupted test set is generated from the CIFAR-10 test
split with :mod:`midl.data.corruptions` (the released generator's arithmetic; see that module
for what matches the release pixel for pixel) and cached in the same layout under
``<cache_dir>/CIFAR-10-C-generated/<key>/`` with a ``manifest.json`` saying the files are
generated, not the released ones, with which seed and generator version. Only the severities
asked for are generated; the manifest lists them (other blocks of the ``.npy`` files are zeros
until then). ``frost`` needs the release's frost photographs in ``<data_dir>/frost/`` (with
``download=True`` they are fetched; see
:func:`midl.data.corruptions.find_frost_photographs`).

Usage::

    # train on clean CIFAR-10; the test split is the 15 corruptions pooled at severity 3, so
    # test/acc is the mean accuracy over the corruptions (each has 10,000 images);
    # metrics.json lists each under test_parts
    python -m midl.train data=cifar10c model=cnn
    # a finished CIFAR-10 run on CIFAR-10-C (per-corruption accuracies under test_parts of
    # metrics.json's analysis.cifar10c_s3): the one evaluation entry point
    python -m midl.evaluate ckpt_path=<run>/checkpoints/last.ckpt eval_data=cifar10c \
        +data.severity=3 eval_name=cifar10c_s3 analysis=[]
    # generate (and cache) the corrupted test set ahead of time (data only, no model)
    python -m midl.data.cifar10c --severity 1 2 3 4 5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from midl.data.base import Splits, default_data_dir
from midl.data.cifar import CIFAR10DataModule
from midl.data.corruptions import (
    CORRUPTIONS,
    GENERATOR_VERSION,
    check_severity,
    corrupt,
    find_frost_photographs,
    frost_digests,
)
from midl.data.formats import md5sum, read_cifar_batch
from midl.runs.io import atomic_write_json

log = logging.getLogger(__name__)

N_TEST = 10000


def read_released(folder: Path, name: str, severity: int, n: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One severity block of a released CIFAR-10-C file.

    Args:
        folder: the ``CIFAR-10-C`` folder.
        name: corruption name (file ``<name>.npy``).
        severity: 1..5; block ``[(severity - 1) * n, severity * n)``.
        n: images per severity (10,000 in the release); ``None``: a fifth of ``labels.npy``.

    Returns:
        uint8 (n, 32, 32, 3) images and int64 (n,) labels.

    Raises:
        ValueError: if a file is unreadable, truncated, or not (5 n, 32, 32, 3) uint8 /
            (5 n,) labels; the message names the file.
    """
    out = []
    for path in (folder / f"{name}.npy", folder / "labels.npy"):
        try:
            arr = np.load(path, mmap_mode="r")
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"{path}: not a readable .npy file ({err}); the file is truncated "
                             "or corrupt") from err
        out.append(arr)
    images, labels = out
    n = len(labels) // 5 if n is None else n
    if images.dtype != np.uint8 or images.shape != (5 * n, 32, 32, 3):
        raise ValueError(f"{folder / (name + '.npy')}: expected uint8 ({5 * n}, 32, 32, 3), got "
                         f"{images.dtype} {images.shape}")
    if labels.shape != (5 * n,):
        raise ValueError(f"{folder / 'labels.npy'}: expected shape ({5 * n},), got "
                         f"{labels.shape}")
    block = slice((severity - 1) * n, severity * n)
    return np.array(images[block]), np.asarray(labels[block], dtype=np.int64)


def _block_md5(images: np.ndarray) -> str:
    """MD5 of one cached block's bytes (shape and dtype included), to verify it before use."""
    digest = hashlib.md5(usedforsecurity=False)
    digest.update(f"{images.shape}{images.dtype}".encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()


class CorruptionCache:
    """Generated CIFAR-10-C in the released layout, filled one (corruption, severity) block at
    a time: ``<root>/<corruption>.npy`` (5 n, 32, 32, 3) uint8, ``labels.npy`` and
    ``manifest.json`` (``generated: true``, the seed, the source, the generator version, the
    blocks done, and for ``frost`` the MD5s of the photographs used).

    Each block is written into a memory-mapped file that is first created whole (zeros) through
    a temporary file and ``os.replace``; the manifest, with each block's MD5, is rewritten
    atomically after a block is flushed. A block is used only if its MD5 matches the manifest,
    so an interrupted generation or a damaged file is regenerated, never used. A manifest
    written by another :data:`~midl.data.corruptions.GENERATOR_VERSION` is discarded (all its
    blocks are regenerated), and so is a ``frost`` block made from other photographs.

    Args:
        root: the folder (created).
        clean: uint8 (n, 32, 32, 3) clean test images; labels: (n,) int64.
        seed: corruption seed; source: a string identifying the clean images.
        frost_dir: folder of the frost photographs (default ``<data root>/frost``).
        download: fetch missing frost photographs
            (:func:`~midl.data.corruptions.find_frost_photographs`).
    """

    def __init__(self, root: Path, clean: np.ndarray, labels: np.ndarray, seed: int,
                 source: str, frost_dir: str | Path | None = None,
                 download: bool = False) -> None:
        self.root, self.clean, self.labels = Path(root), clean, labels
        self.seed, self.source, self.n = seed, source, len(clean)
        self.frost_dir = Path(frost_dir) if frost_dir is not None else \
            Path(default_data_dir()) / "frost"
        self.download = download

    @property
    def manifest_path(self) -> Path:
        """``<root>/manifest.json``: what the cache holds and how it was generated."""
        return self.root / "manifest.json"

    def manifest(self) -> dict:
        """The cache's manifest, or a fresh one (nothing done) where it is missing, unreadable
        or written by another :data:`~midl.data.corruptions.GENERATOR_VERSION` (logged)."""
        if self.manifest_path.exists():
            try:
                manifest = json.loads(self.manifest_path.read_text())
            except json.JSONDecodeError:
                log.warning("rewriting unreadable %s", self.manifest_path)
            else:
                if manifest.get("generator_version") == GENERATOR_VERSION:
                    return manifest
                log.warning("%s was written by generator version %s, not %s: its blocks are "
                            "stale and will be regenerated", self.manifest_path,
                            manifest.get("generator_version"), GENERATOR_VERSION)
        return {"generated": True,
                "note": "Generated by midl.data.corruptions from the CIFAR-10 test split with "
                        "the arithmetic and CIFAR severity parameters of make_cifar_c.py "
                        "(frost from the release's photographs); NOT the released CIFAR-10-C "
                        "files: same distribution, other random draws (see that module).",
                "reference": "Hendrycks & Dietterich 2019, ICLR",
                "seed": self.seed, "source": self.source,
                "generator_version": GENERATOR_VERSION, "layout": "5 severities x n images",
                "n_per_severity": self.n, "done": {}}

    def _ensure_file(self, path: Path, shape: tuple[int, ...], dtype) -> None:
        if path.exists():
            return
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            arr.flush()
            del arr
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _inputs(self, name: str) -> tuple[Path | None, dict | None]:
        """The frost photographs' folder and a record of them (None for other corruptions);
        raises FileNotFoundError naming the folder if they are missing."""
        if name != "frost":
            return None, None
        folder = find_frost_photographs(self.frost_dir, self.download)
        return folder, {"frost_md5": frost_digests(folder)}

    def get(self, name: str, severity: int) -> np.ndarray:
        """uint8 (n, 32, 32, 3) corrupted images, generated and cached on first use."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{name}.npy"
        block = slice((severity - 1) * self.n, severity * self.n)
        frost_dir, inputs = self._inputs(name)
        manifest = self.manifest()
        if severity in manifest["done"].get(name, []) and path.exists():
            images = np.array(np.load(path, mmap_mode="r")[block])
            expected = manifest.get("md5", {}).get(f"{name}:{severity}")
            made_from = manifest.get("inputs", {}).get(f"{name}:{severity}")
            if expected is not None and _block_md5(images) == expected and made_from == inputs:
                return images
            if made_from != inputs:
                log.warning("cached CIFAR-10-C %s severity %d in %s was made from other inputs "
                            "(%s, now %s); regenerating it", name, severity, path, made_from,
                            inputs)
            else:  # a lost (all zeros), damaged or unchecked block: generated again, never used
                log.warning("cached CIFAR-10-C %s severity %d in %s fails its checksum; "
                            "regenerating it", name, severity, path)
        log.info("generating CIFAR-10-C %s severity %d (seed %d) into %s", name, severity,
                 self.seed, path)
        images = corrupt(self.clean, name, severity, seed=self.seed, frost_dir=frost_dir)
        self._ensure_file(path, (5 * self.n, *self.clean.shape[1:]), np.uint8)
        labels_path = self.root / "labels.npy"
        if not labels_path.exists():
            self._ensure_file(labels_path, (5 * self.n,), np.int64)
            lab = np.load(labels_path, mmap_mode="r+")
            lab[:] = np.tile(self.labels, 5)
            lab.flush()
            del lab
        arr = np.load(path, mmap_mode="r+")
        arr[block] = images
        arr.flush()
        del arr
        manifest = self.manifest()  # re-read: another corruption may have been added
        manifest["done"][name] = sorted(set(manifest["done"].get(name, [])) | {severity})
        manifest.setdefault("md5", {})[f"{name}:{severity}"] = _block_md5(images)
        if inputs is not None:
            manifest.setdefault("inputs", {})[f"{name}:{severity}"] = inputs
        atomic_write_json(self.manifest_path, manifest)
        return images


class CIFAR10CDataModule(CIFAR10DataModule):
    """CIFAR-10 for training and validation, CIFAR-10-C for testing.

    Training and validation are exactly those of :class:`CIFAR10DataModule` (same files,
    validation slice, normalisation statistics, data conditions). The test split is the
    concatenation, in the order of ``corruptions``, of the 10,000 corrupted test images of each
    corruption at ``severity``; with equal block sizes, the pooled test accuracy equals the
    mean of the per-corruption accuracies. :meth:`evaluate` gives each one.

    Released files under ``<data_dir>/CIFAR-10-C/`` are used when all requested ones exist;
    otherwise the images are generated from the CIFAR-10 test split (see
    :class:`CorruptionCache`), which needs the CIFAR-10 files, and for ``frost`` the frost
    photographs in ``<data_dir>/frost/`` (fetched with ``download=True``).

    Args:
        corruptions: names to test on (default: all 15 of
            :data:`~midl.data.corruptions.CORRUPTIONS`).
        severity: 1..5 (default 3).
        corruption_seed: seed of the generated corruptions (ignored for released files).
        **kwargs: see :class:`CIFAR10DataModule`.

    Raises:
        ValueError: unknown corruption names or severity outside 1..5 (naming the key),
            corrupt released files (naming the file).
        FileNotFoundError: CIFAR-10 files or frost photographs missing (naming the folder).
    """

    name = "CIFAR-10-C"

    def __init__(self, corruptions: Sequence[str] | None = None, severity: int = 3,
                 corruption_seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        names = list(corruptions) if corruptions is not None else list(CORRUPTIONS)
        unknown = [n for n in names if n not in CORRUPTIONS]
        if unknown or not names:
            raise ValueError(f"data.corruptions={names!r}: unknown {unknown}; choose from "
                             f"{', '.join(CORRUPTIONS)}")
        self.corruptions = names
        self.severity = check_severity(severity)
        if isinstance(corruption_seed, bool) or not isinstance(corruption_seed, int) \
                or corruption_seed < 0:
            raise ValueError(f"data.corruption_seed={corruption_seed!r} must be a "
                             "non-negative int")
        self.corruption_seed = corruption_seed
        self.source: str | None = None
        self.blocks: dict[str, slice] = {}

    @property
    def released_dir(self) -> Path:
        """Where released CIFAR-10-C ``.npy`` files would be: ``<data dir>/CIFAR-10-C``."""
        return self.data_dir / "CIFAR-10-C"

    def corrupted(self, clean_hwc: np.ndarray | None, clean_labels: np.ndarray | None
                  ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """{corruption: uint8 (n, 32, 32, 3)} at ``self.severity`` and the (n,) labels."""
        names = [f"{n}.npy" for n in self.corruptions] + ["labels.npy"]
        if all((self.released_dir / f).exists() for f in names):
            self.source = f"released files in {self.released_dir}"
            out, labels = {}, None
            for name in self.corruptions:
                out[name], labels = read_released(self.released_dir, name, self.severity)
            return out, labels
        if clean_hwc is None:
            raise RuntimeError("clean CIFAR-10 test images are needed to generate CIFAR-10-C")
        test_md5 = md5sum(self.data_dir / self.folder / "test_batch")
        key = hashlib.sha256(f"{test_md5}|{self.corruption_seed}|{GENERATOR_VERSION}".encode()
                             ).hexdigest()[:12]
        root = self.cache_dir / "CIFAR-10-C-generated" / f"seed{self.corruption_seed}-{key}"
        cache = CorruptionCache(root, clean_hwc, clean_labels, self.corruption_seed,
                                source=f"CIFAR-10 test_batch md5 {test_md5}",
                                frost_dir=self.data_dir / "frost", download=self.download)
        self.source = f"generated (seed {self.corruption_seed}) in {root}"
        log.info("released CIFAR-10-C not found in %s; using generated corruptions in %s",
                 self.released_dir, root)
        return {name: cache.get(name, self.severity) for name in self.corruptions}, clean_labels

    def load(self) -> Splits:
        clean = super().load()
        x_c, y_c = self.corrupted(clean.x_test.permute(0, 2, 3, 1).contiguous().numpy(),
                                  clean.y_test.numpy())
        xs, start = [], 0
        for name in self.corruptions:
            xs.append(torch.from_numpy(x_c[name]).permute(0, 3, 1, 2))
            self.blocks[name] = slice(start, start + len(x_c[name]))
            start += len(x_c[name])
        y = torch.from_numpy(np.tile(np.asarray(y_c, dtype=np.int64), len(self.corruptions)))
        return Splits(clean.x_train, clean.y_train, torch.cat(xs).contiguous(), y)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, device: str | torch.device = "cpu",
                 batch_size: int | None = None) -> dict[str, float]:
        """Top-1 accuracy of ``model`` on each corruption, and their mean.

        Args:
            model: maps normalised (B, 3, 32, 32) float images to logits (B, 10) (e.g. a
                :class:`~midl.module.ClassificationModule` or its ``net``); put in eval mode.
            device: where to run.
            batch_size: default ``eval_batch_size``.

        Returns:
            ``{corruption: accuracy in [0, 1], ..., "mean": mean over the corruptions}``.
        """
        if self.test_set is None:
            self.setup("test")
        model = model.to(device).eval()
        bs = batch_size or self.eval_batch_size
        result: dict[str, float] = {}
        for name, block in self.blocks.items():
            correct = 0
            x_all, y_all = self.test_set.x[block], self.test_set.y[block]
            for start in range(0, len(y_all), bs):
                x = self.transform(x_all[start:start + bs].to(device), train=False)
                correct += int((model(x).argmax(1) == y_all[start:start + bs].to(device)).sum())
            result[name] = correct / len(y_all)
        result["mean"] = float(np.mean([result[n] for n in self.blocks]))
        return result

    def summary(self) -> dict[str, object]:
        out = super().summary()
        out.update(corruptions=self.corruptions, severity=self.severity,
                   corruption_source=self.source,
                   test="the corruptions pooled: test/acc is the mean accuracy over them")
        return out


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: generate and cache the corrupted test set (data only; models are
    evaluated with ``python -m midl.evaluate ... eval_data=cifar10c``)."""
    parser = argparse.ArgumentParser(prog="python -m midl.data.cifar10c",
                                     description="Generate and cache CIFAR-10-C from the "
                                                 "CIFAR-10 test split.")
    parser.add_argument("run_dir", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--severity", type=int, nargs="+", default=[3])
    parser.add_argument("--corruptions", nargs="+", default=None, choices=CORRUPTIONS)
    parser.add_argument("--data-dir", default=None, help="data root (default $MIDL_DATA_DIR)")
    parser.add_argument("--cache-dir", default=None,
                        help="cache (default $MIDL_CACHE_DIR or ./.cache/midl)")
    parser.add_argument("--seed", type=int, default=0, help="corruption seed")
    parser.add_argument("--download", action="store_true",
                        help="fetch missing CIFAR-10 files and frost photographs")
    args = parser.parse_args(argv)
    if args.run_dir is not None:
        parser.error("this command only generates data; evaluate a run with python -m "
                     "midl.evaluate ckpt_path=<run>/checkpoints/last.ckpt eval_data=cifar10c "
                     "+data.severity=3 eval_name=cifar10c_s3 analysis=[]")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache_dir = args.cache_dir or os.environ.get("MIDL_CACHE_DIR", "./.cache/midl")
    clean_x, clean_y = None, None
    for severity in args.severity:
        dm = CIFAR10CDataModule(data_dir=args.data_dir, cache_dir=cache_dir,
                                corruptions=args.corruptions, severity=severity,
                                corruption_seed=args.seed, download=args.download)
        if clean_x is None:
            clean_x, clean_y = read_cifar_batch(dm.data_dir / dm.folder / "test_batch")
            clean_x = np.ascontiguousarray(clean_x.transpose(0, 2, 3, 1))
        dm.corrupted(clean_x, clean_y)
        print(f"severity {severity}: {dm.source}")


__all__ = ["CIFAR10CDataModule", "CorruptionCache", "main", "read_released"]

if __name__ == "__main__":
    main()
