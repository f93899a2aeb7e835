"""Write an SVHN-layout fixture (``svhn/train_32x32.mat``, ``svhn/test_32x32.mat``) for machines
without the real SVHN files, so that Table 8's SVHN rows and Figure 4's SVHN panel run.

The images are NOT SVHN: MNIST digits (seeded random draws from the MNIST train / test splits),
padded to 32x32 and coloured with a random background and foreground colour per image plus
Gaussian pixel noise; labels follow SVHN's convention (10 = digit 0). ``svhn/FIXTURE.json`` says
so, and ``midl.report`` prints that note in the header of every table that uses it.

    MIDL_DATA_DIR=/work/shared/data python scripts/make_svhn_fixture.py OUT_ROOT \\
        [--train 10000 --test 2000]

Writes only when ``OUT_ROOT/svhn/FIXTURE.json`` is missing or was made with other settings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.io import savemat

from midl.data import MNISTDataModule
from midl.runs.io import atomic_write_json


def colourise(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 28, 28) uint8 grey digits -> (N, 3, 32, 32) uint8 coloured, padded, noisy images."""
    n = len(digits)
    ink = np.pad(digits.astype(np.float32) / 255.0, ((0, 0), (2, 2), (2, 2)))[:, None]
    background = rng.uniform(0, 255, size=(n, 3, 1, 1))
    foreground = rng.uniform(0, 255, size=(n, 3, 1, 1))
    images = background * (1 - ink) + foreground * ink + rng.normal(0, 8, size=(n, 3, 32, 32))
    return np.clip(images, 0, 255).astype(np.uint8)


def write_mat(path: Path, images_nchw: np.ndarray, digits: np.ndarray) -> None:
    """SVHN cropped-digits layout: X (32, 32, 3, N) uint8, y (N, 1) with 10 for digit 0."""
    y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(-1, 1)
    tmp = path.with_name(f".{path.name}.tmp")
    savemat(str(tmp), {"X": images_nchw.transpose(2, 3, 1, 0), "y": y})
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_root", help="data root to create svhn/ in")
    parser.add_argument("--train", type=int, default=10000, help="training images")
    parser.add_argument("--test", type=int, default=2000, help="test images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = Path(args.out_root) / "svhn"
    manifest = {"generated": True, "not_svhn": True,
                "source": "MNIST digits padded to 32x32, random colours, Gaussian noise sigma 8",
                "train": args.train, "test": args.test, "seed": args.seed,
                "writer": "scripts/make_svhn_fixture.py"}
    marker = folder / "FIXTURE.json"
    if marker.exists() and json.loads(marker.read_text()) == manifest:
        print(f"{folder}: fixture up to date")
        return
    folder.mkdir(parents=True, exist_ok=True)
    splits = MNISTDataModule().load()
    rng = np.random.default_rng(args.seed)
    for name, x, y, n in (("train_32x32.mat", splits.x_train, splits.y_train, args.train),
                          ("test_32x32.mat", splits.x_test, splits.y_test, args.test)):
        idx = np.sort(rng.choice(len(y), size=min(n, len(y)), replace=False))
        digits = x.numpy().reshape(len(y), 28, 28)[idx]
        write_mat(folder / name, colourise(digits, rng), y.numpy()[idx])
    atomic_write_json(marker, manifest)
    print(f"wrote {folder} (MNIST-derived fixture in the SVHN layout, not SVHN)")


if __name__ == "__main__":
    main()
