"""Data modules and file readers, on tiny fixtures in the published formats and on real data."""

from __future__ import annotations

import contextlib
import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from conftest import require_real
from midl.data import CIFAR10DataModule, DigitsDataModule, MNISTDataModule
from midl.data.base import random_crop_flip
from midl.data.formats import ChecksumWarning, read_cifar_batch, read_idx


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    """Write ``array`` (uint8) in the idx format, as the MNIST files are."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", n) for n in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def write_cifar_batch(path, images: np.ndarray, labels, with_filenames: bool = True) -> None:
    """Write a CIFAR-10 python-version batch: Python-2 style pickle with bytes keys."""
    entry = {b"batch_label": b"testing batch", b"labels": list(labels),
             b"data": images.reshape(len(images), -1).astype(np.uint8)}
    if with_filenames:
        entry[b"filenames"] = [f"img_{i}.png".encode() for i in range(len(labels))]
    path.write_bytes(pickle.dumps(entry, protocol=2))


def make_mnist(root, n_train=40, n_test=20, compress=True):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    for name, array in arrays.items():
        write_idx(raw / f"{name}{suffix}", array, compress)
    return arrays


def make_cifar10(root, per_batch=12):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        write_cifar_batch(folder / name, rng.integers(0, 256, (per_batch, 3072)),
                          [(i + j) % 10 for j in range(per_batch)], with_filenames=i % 2 == 0)
    return folder


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_roundtrip(tmp_path, compress):
    array = np.random.default_rng(0).integers(0, 256, (5, 4, 3)).astype(np.uint8)
    path = tmp_path / ("a.gz" if compress else "a")
    write_idx(path, array, compress)
    np.testing.assert_array_equal(read_idx(path), array)


def test_read_idx_names_truncated_and_corrupt_files(tmp_path):
    array = np.zeros((5, 4, 4), dtype=np.uint8)
    path = tmp_path / "images-idx3-ubyte"
    write_idx(path, array)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match="images-idx3-ubyte.*truncated"):
        read_idx(path)
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(ValueError, match="bad.gz"):
        read_idx(bad)
    path.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(path)


def test_read_cifar_batch_with_and_without_filenames(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 3072)).astype(np.uint8)
    for with_filenames in (True, False):
        path = tmp_path / f"batch_{with_filenames}"
        write_cifar_batch(path, images, [1, 2, 3], with_filenames)
        x, y = read_cifar_batch(path)
        assert x.shape == (3, 3, 32, 32) and x.dtype == np.uint8
        np.testing.assert_array_equal(x.reshape(3, -1), images)  # channel-planar rows
        np.testing.assert_array_equal(y, [1, 2, 3])
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=f"{path.name}.*truncated or corrupt"):
        read_cifar_batch(path)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_module_on_fixture(tmp_path, compress):
    arrays = make_mnist(tmp_path, compress=compress)
    dm = MNISTDataModule(data_dir=str(tmp_path), val_size=10, batch_size=8)
    expect = (pytest.warns(ChecksumWarning, match="differs from the published") if compress
              else contextlib.nullcontext())
    with expect:
        dm.setup()
    assert len(dm.train_set) == 30 and len(dm.val_set) == 10 and len(dm.test_set) == 20
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (8, 1, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    np.testing.assert_array_equal(x[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"][:8])
    # batches are standardised with training-split statistics
    z = dm.transform(dm.train_set.x, train=True).float()
    assert z.mean().abs() < 1e-4 and (z.std() - 1).abs() < 1e-2


def test_missing_dataset_error_names_folder_and_fix(tmp_path):
    for module, folder in ((MNISTDataModule, "MNIST/raw"),
                           (CIFAR10DataModule, "cifar-10-batches-py")):
        with pytest.raises(FileNotFoundError, match=f"{tmp_path / folder}.*MIDL_DATA_DIR"):
            module(data_dir=str(tmp_path)).setup()


def test_cifar10_module_on_fixture_warns_on_checksum(tmp_path):
    make_cifar10(tmp_path)
    dm = CIFAR10DataModule(data_dir=str(tmp_path), val_size=6, batch_size=16)
    with pytest.warns(ChecksumWarning, match="data_batch_1: MD5") as caught:
        dm.setup()
    assert len(dm.train_set) == 54 and len(dm.val_set) == 6 and len(dm.test_set) == 12
    assert dm.mean.shape == (1, 3, 1, 1)
    # one warning for the dataset, naming each of its six files, not one warning per file
    checksum = [w for w in caught if issubclass(w.category, ChecksumWarning)]
    assert len(checksum) == 1
    text = str(checksum[0].message)
    assert all(f"{name}: MD5" in text for name in
               [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"])
    assert "these 6 files are not the published originals" in text


def test_validation_slice_is_fixed_by_split_seed_not_model_seed():
    sets = []
    for model_seed in (0, 1):
        torch.manual_seed(model_seed)
        dm = DigitsDataModule()
        dm.setup()
        sets.append(dm.val_set.y.clone())
    torch.testing.assert_close(sets[0], sets[1])
    dm = DigitsDataModule(split_seed=1)
    dm.setup()
    assert not torch.equal(dm.val_set.y, sets[0])
    assert len(dm.test_set) == 360
    with pytest.raises(ValueError, match="val_size=2000"):
        DigitsDataModule(val_size=2000).setup()
    with pytest.raises(ValueError, match="batch_size=0"):
        DigitsDataModule(batch_size=0)


def test_random_crop_flip_matches_shifted_padded_image():
    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6) + 1
    out = random_crop_flip(x, padding=2, flip=False)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):  # each output is one of the 25 crops of its own padded image
        crops = [padded[i, :, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], c) for c in crops)
    flipped = random_crop_flip(x, padding=0, flip=True)
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))


def test_real_mnist_and_cifar10_counts():
    root = require_real("MNIST/raw", "cifar-10-batches-py")
    dm = MNISTDataModule(data_dir=str(root))
    dm.setup()
    assert (len(dm.train_set) + len(dm.val_set), len(dm.test_set)) == (60000, 10000)
    assert torch.bincount(dm.test_set.y).min() > 800
    dm = CIFAR10DataModule(data_dir=str(root))
    with pytest.warns(ChecksumWarning):
        dm.setup()
    assert (len(dm.train_set) + len(dm.val_set), len(dm.test_set)) == (50000, 10000)
    assert torch.bincount(dm.test_set.y).tolist() == [1000] * 10


def write_cifar100_pickle(path, images: np.ndarray, fine_labels) -> None:
    """Write a CIFAR-100 python-version pickle (``fine_labels`` and ``coarse_labels``)."""
    entry = {b"filenames": [f"img_{i}.png".encode() for i in range(len(fine_labels))],
             b"batch_label": b"training batch 1 of 1", b"fine_labels": list(fine_labels),
             b"coarse_labels": [int(v) // 5 for v in fine_labels],
             b"data": images.reshape(len(images), -1).astype(np.uint8)}
    path.write_bytes(pickle.dumps(entry, protocol=2))


def write_svhn_mat(path, images_nchw: np.ndarray, digits) -> None:
    """Write an SVHN cropped-digits .mat file: X (32, 32, 3, N) uint8, y (N, 1) with 10 = 0."""
    from scipy.io import savemat

    y = np.asarray(digits).reshape(-1, 1).astype(np.uint8)
    y[y == 0] = 10
    savemat(str(path), {"X": images_nchw.transpose(2, 3, 1, 0).astype(np.uint8), "y": y})


ADULT_ROWS = [
    "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, "
    "Male, 2174, 0, 40, United-States, {label}",
    "50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, "
    "White, Male, 0, 0, 13, United-States, {label}",
    "38, ?, 215646, HS-grad, 9, Divorced, ?, Not-in-family, Black, Female, 0, 0, 40, ?, {label}",
    "52, Private, 209642, Masters, 14, Married-civ-spouse, Prof-specialty, Wife, White, Female, "
    "15024, 0, 45, Cuba, {label}",
]


def write_adult(folder, n_train: int = 40, n_test: int = 20) -> None:
    """Write adult.data / adult.test in the published format (", " separated, "?" missing,
    test file with the "|1x3 Cross validator" line and labels ending in ".")."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = ["<=50K", ">50K"]
    train = [ADULT_ROWS[i % 4].format(label=labels[(i // 2) % 2]) for i in range(n_train)]
    test = [ADULT_ROWS[i % 4].format(label=labels[(i // 2) % 2] + ".") for i in range(n_test)]
    (folder / "adult.data").write_text("\n".join(train) + "\n\n")
    (folder / "adult.test").write_text("|1x3 Cross validator\n" + "\n".join(test) + "\n\n")


def write_imdb_parquet(folder, n_train: int = 40, n_test: int = 20) -> None:
    """Write train.parquet / test.parquet with columns text (string) and label (int64)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    words = {0: "awful boring bad waste", 1: "great wonderful superb fun"}
    for name, n in (("train", n_train), ("test", n_test)):
        labels = [i % 2 for i in range(n)]
        texts = [f"Film {i}.<br /><br />It was {words[y]} and {'rare' if i == 0 else 'plot'}!"
                 for i, y in enumerate(labels)]
        pq.write_table(pa.table({"text": texts, "label": pa.array(labels, pa.int64())}),
                       folder / f"{name}.parquet")


def write_cifar10c(folder, clean_hwc: np.ndarray, labels, names) -> None:
    """Write released-layout CIFAR-10-C files: <name>.npy (5 n, 32, 32, 3) uint8 (severity s
    block = clean + s) and labels.npy (5 n,) uint8."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        blocks = [np.clip(clean_hwc.astype(int) + s, 0, 255) for s in range(1, 6)]
        np.save(folder / f"{name}.npy", np.concatenate(blocks).astype(np.uint8))
    np.save(folder / "labels.npy", np.tile(np.asarray(labels), 5).astype(np.uint8))


def test_splits_move_to_the_trainer_accelerator_once():
    """``on_device``: on an accelerator the splits are moved there when a loader is built and
    batches are cut there; on the CPU (or with on_device=False) nothing moves. The "meta"
    device stands in for a GPU."""
    from types import SimpleNamespace

    def trainer_on(device):
        return SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)))

    dm = DigitsDataModule(batch_size=32)
    dm.setup("fit")
    dm.trainer = trainer_on("meta")
    x, y = next(iter(dm.val_dataloader()))
    assert x.device.type == y.device.type == dm.val_set.x.device.type == "meta"
    assert x.shape[0] == 32 and dm.train_set.x.device.type == "cpu"  # moved when asked for
    for on_device, device in ((True, "cpu"), (False, "meta")):
        dm = DigitsDataModule(on_device=on_device)
        dm.setup("fit")
        dm.trainer = trainer_on(device)
        next(iter(dm.val_dataloader()))
        assert dm.val_set.x.device.type == "cpu"
