"""CIFAR-10-C (Hendrycks & Dietterich 2019, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR): evaluation of CIFAR-10 models on 15 corruptions.

Released layout (used when present): ``<data_dir>/CIFAR-10-C/<corruption>.npy``, uint8
(50000, 32, 32, 3) = severities 1..5 x the 10,000 CIFAR-10 test images in order, and
``labels.npy`` (50000,). Otherwise the corrupted test set is generated from the CIFAR-10 test
split with :mod:`midl.data.corruptions` (the released CIFAR severity parameters; see that
module for where it differs from the released generator) and cached in the same layout under
``<cache_dir>/CIFAR-10-C-generated/<key>/`` with a ``manifest.json`` saying the files are
generated, not the released ones, and with which seed. Only the severities asked for are
generated; the manifest lists them (other blocks of the ``.npy`` files are zeros until then).

Command line (see :func:`main`)::

    # train on clean CIFAR-10; the test split is the 15 corruptions pooled at severity 3, so
    # test/acc is the mean accuracy over the corruptions (each has 10,000 images)
    python -m midl.train data=cifar10c model=cnn
    # per-corruption accuracies of a finished run (any CIFAR-10 run), written to
    # <run>/cifar10c_severity3.json
    python -m midl.data.cifar10c <run output dir> --severity 3
    # generate (and cache) the corrupted test set ahead of time
    python -m midl.data.cifar10c --generate --severity 1 2 3 4 5
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

from midl.data.base import Splits
from midl.data.cifar import CIFAR10DataModule
from midl.data.corruptions import CORRUPTIONS, check_severity, corrupt
from midl.data.formats import md5sum, read_cifar_batch
from midl.io import atomic_write_json

log = logging.getLogger(__name__)

N_TEST = 10000
GENERATOR_VERSION = 1  # bump when midl.data.corruptions changes its output


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
    ``manifest.json`` (``generated: true``, the seed, the source, the blocks done).

    Each block is written into a memory-mapped file that is first created whole (zeros) through
    a temporary file and ``os.replace``; the manifest, with each block's MD5, is rewritten
    atomically after a block is flushed. A block is used only if its MD5 matches the manifest,
    so an interrupted generation or a damaged file is regenerated, never used.

    Args:
        root: the folder (created).
        clean: uint8 (n, 32, 32, 3) clean test images; labels: (n,) int64.
        seed: corruption seed; source: a string identifying the clean images.
    """

    def __init__(self, root: Path, clean: np.ndarray, labels: np.ndarray, seed: int,
                 source: str) -> None:
        self.root, self.clean, self.labels = Path(root), clean, labels
        self.seed, self.source, self.n = seed, source, len(clean)

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def manifest(self) -> dict:
        if self.manifest_path.exists():
            try:
                return json.loads(self.manifest_path.read_text())
            except json.JSONDecodeError:
                log.warning("rewriting unreadable %s", self.manifest_path)
        return {"generated": True,
                "note": "Generated by midl.data.corruptions from the CIFAR-10 test split with "
                        "the CIFAR-10-C severity parameters of make_cifar_c.py; NOT the "
                        "released CIFAR-10-C files (frost uses a procedural texture, motion "
                        "blur a NumPy rebuild of ImageMagick's kernel; see that module).",
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

    def get(self, name: str, severity: int) -> np.ndarray:
        """uint8 (n, 32, 32, 3) corrupted images, generated and cached on first use."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{name}.npy"
        block = slice((severity - 1) * self.n, severity * self.n)
        manifest = self.manifest()
        if severity in manifest["done"].get(name, []) and path.exists():
            images = np.array(np.load(path, mmap_mode="r")[block])
            expected = manifest.get("md5", {}).get(f"{name}:{severity}")
            if expected is not None and _block_md5(images) == expected:
                return images
            # a lost (all zeros), damaged or unchecked block is generated again, never used
            log.warning("cached CIFAR-10-C %s severity %d in %s fails its checksum; "
                        "regenerating it", name, severity, path)
        log.info("generating CIFAR-10-C %s severity %d (seed %d) into %s", name, severity,
                 self.seed, path)
        images = corrupt(self.clean, name, severity, seed=self.seed)
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
    :class:`CorruptionCache`), which needs the CIFAR-10 files.

    Args:
        corruptions: names to test on (default: all 15 of
            :data:`~midl.data.corruptions.CORRUPTIONS`).
        severity: 1..5 (default 3).
        corruption_seed: seed of the generated corruptions (ignored for released files).
        **kwargs: see :class:`CIFAR10DataModule`.

    Raises:
        ValueError: unknown corruption names or severity outside 1..5 (naming the key),
            corrupt released files (naming the file).
        FileNotFoundError: CIFAR-10 files missing (naming the folder).
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
                                source=f"CIFAR-10 test_batch md5 {test_md5}")
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


def evaluate_run(run_dir: str | Path, severity: int = 3, corruptions: Sequence[str] | None = None,
                 checkpoint: str | None = None, device: str = "cpu",
                 cache_dir: str | None = None) -> dict[str, object]:
    """Evaluate a finished CIFAR-10 run (``python -m midl.train``) on CIFAR-10-C.

    Rebuilds the run's model and data from ``<run_dir>/.hydra/config.yaml`` (the data module
    becomes :class:`CIFAR10CDataModule` with the run's CIFAR-10 settings, so normalisation
    statistics are those of training), loads the checkpoint that was tested (from
    ``metrics.json``; else ``checkpoints/last.ckpt``) and writes
    ``<run_dir>/cifar10c_severity<s>.json`` atomically.

    Returns:
        The written record: per-corruption accuracies, ``mean``, severity, checkpoint, source.

    Raises:
        FileNotFoundError: no config or checkpoint in ``run_dir``.
        ValueError: the run was not trained on CIFAR-10.
    """
    from omegaconf import OmegaConf, open_dict

    from midl.train import build

    run_dir = Path(run_dir)
    cfg_path = run_dir / ".hydra" / "config.yaml"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{cfg_path} not found: pass the output folder of a finished "
                                "python -m midl.train run")
    cfg = OmegaConf.load(cfg_path)
    target = cfg.data.get("_target_", "")
    if not target.endswith(("CIFAR10DataModule", "CIFAR10CDataModule")):
        raise ValueError(f"{run_dir} was trained on {target}, not CIFAR-10")
    with open_dict(cfg):
        cfg.data._target_ = "midl.data.cifar10c.CIFAR10CDataModule"
        cfg.data.severity = severity
        cfg.data.corruptions = list(corruptions) if corruptions else list(CORRUPTIONS)
        cfg.data.setdefault("corruption_seed", 0)
        if cache_dir is not None:
            cfg.data.cache_dir = cache_dir
    ckpt = checkpoint
    metrics_path = run_dir / "metrics.json"
    if ckpt is None and metrics_path.exists():
        tested = json.loads(metrics_path.read_text()).get("tested_checkpoint")
        if tested and tested != "final weights" and Path(tested).exists():
            ckpt = tested
    if ckpt is None:
        candidates = sorted((run_dir / "checkpoints").glob("*.ckpt"))
        last = run_dir / "checkpoints" / "last.ckpt"
        ckpt = str(last if last.exists() else candidates[-1]) if candidates else None
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint in {run_dir / 'checkpoints'}")
    datamodule, module = build(cfg)
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    module.load_state_dict(state["state_dict"])
    result = datamodule.evaluate(module, device=device)
    record = {"severity": severity, "accuracy": result, "checkpoint": str(ckpt),
              "corruption_source": datamodule.source}
    atomic_write_json(run_dir / f"cifar10c_severity{severity}.json", record)
    return record


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: evaluate a run on CIFAR-10-C, or pre-generate the corrupted test set."""
    parser = argparse.ArgumentParser(prog="python -m midl.data.cifar10c",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", help="output folder of a CIFAR-10 training run")
    parser.add_argument("--severity", type=int, nargs="+", default=[3])
    parser.add_argument("--corruptions", nargs="+", default=None, choices=CORRUPTIONS)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--generate", action="store_true",
                        help="only generate and cache the corrupted test set")
    parser.add_argument("--data-dir", default=None, help="data root (default $MIDL_DATA_DIR)")
    parser.add_argument("--cache-dir", default=None,
                        help="cache (default $MIDL_CACHE_DIR or ./.cache/midl)")
    parser.add_argument("--seed", type=int, default=0, help="corruption seed (generation)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache_dir = args.cache_dir or os.environ.get("MIDL_CACHE_DIR", "./.cache/midl")
    if args.generate:
        clean_x, clean_y = None, None
        for severity in args.severity:
            dm = CIFAR10CDataModule(data_dir=args.data_dir, cache_dir=cache_dir,
                                    corruptions=args.corruptions, severity=severity,
                                    corruption_seed=args.seed)
            if clean_x is None:
                clean_x, clean_y = read_cifar_batch(dm.data_dir / dm.folder / "test_batch")
                clean_x = np.ascontiguousarray(clean_x.transpose(0, 2, 3, 1))
            dm.corrupted(clean_x, clean_y)
            print(f"severity {severity}: {dm.source}")
        return
    if args.run_dir is None:
        parser.error("give a run folder, or --generate")
    for severity in args.severity:
        record = evaluate_run(args.run_dir, severity, args.corruptions, args.checkpoint,
                              args.device, args.cache_dir)
        print(json.dumps(record, indent=2))


__all__ = ["CIFAR10CDataModule", "CorruptionCache", "evaluate_run", "main", "read_released"]

if __name__ == "__main__":
    main()
