"""Bad data gets a clear error naming the file: labels outside
[0, num_classes) in CIFAR and MNIST files, Adult CSV files that lack a column."""

from __future__ import annotations

import numpy as np
import pytest
from test_data import ADULT_ROWS, write_adult, write_cifar100_pickle, write_cifar_batch, write_idx

from midl.data import CIFAR10DataModule, MNISTDataModule
from midl.data.adult import COLUMNS, AdultDataModule, read_adult_csv
from midl.data.cifar import CIFAR100DataModule
from midl.data.formats import check_labels, read_cifar_batch


def _cifar10(root, bad_file: str, bad_label: int, n: int = 6):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [j % 10 for j in range(n)]
        if name == bad_file:
            labels[2] = bad_label
        write_cifar_batch(folder / name, rng.integers(0, 256, (n, 3072)), labels)


@pytest.mark.parametrize("bad_file, bad_label", [("data_batch_3", 10), ("test_batch", -1)])
def test_cifar10_label_out_of_range_names_the_file(tmp_path, bad_file, bad_label):
    _cifar10(tmp_path, bad_file, bad_label)
    dm = CIFAR10DataModule(data_dir=str(tmp_path), val_size=4)
    with pytest.raises(ValueError, match=rf"{bad_file}: 1 label\(s\) outside \[0, 10\) "
                                         rf"\({bad_label} at index 2\)"):
        dm.setup()


def test_cifar100_fine_label_out_of_range_names_the_file(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    images = np.zeros((5, 3072), np.uint8)
    write_cifar100_pickle(folder / "train", images, [0, 99, 5, 7, 1])
    write_cifar100_pickle(folder / "test", images, [3, 100, 250, 4, 2])
    dm = CIFAR100DataModule(data_dir=str(tmp_path), val_size=1)
    with pytest.raises(ValueError, match=r"cifar-100-python/test: 2 label\(s\) outside "
                                         r"\[0, 100\) \(100 at index 1, 250 at index 2\)"):
        dm.setup()
    # label 99 is allowed: the train file alone reads
    assert read_cifar_batch(folder / "train", "fine_labels", 100)[1].max() == 99


def test_mnist_label_out_of_range_names_the_file(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_idx(raw / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)), True)
    write_idx(raw / "train-labels-idx1-ubyte.gz", np.arange(20) % 10, True)
    write_idx(raw / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 28, 28)), True)
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 10]),
              True)
    dm = MNISTDataModule(data_dir=str(tmp_path), val_size=4)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.gz: 1 label\(s\) outside "
                                         r"\[0, 10\) \(10 at index 9\)"):
        dm.setup()


def test_check_labels_passes_valid_labels_through():
    labels = np.array([0, 9, 3])
    assert check_labels("f", labels, 10) is labels
    with pytest.raises(ValueError, match=r"f: 2 label\(s\) outside \[0, 3\) \(9 at index 1, "
                                         r"3 at index 2\); the labels must be class indices "
                                         r"0..2"):
        check_labels("f", labels, 3)


def _rows(n: int = 8) -> list[str]:
    return [ADULT_ROWS[i % 4].format(label=("<=50K", ">50K")[i % 2]) for i in range(n)]


@pytest.mark.parametrize("column", ["occupation", "age", "sex", "native-country", "income"])
def test_adult_file_missing_a_column_names_it(tmp_path, column):
    drop = COLUMNS.index(column)
    rows = [", ".join(v for j, v in enumerate(r.split(", ")) if j != drop) for r in _rows()]
    path = tmp_path / "adult.data"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=rf"adult.data: every row has 14 fields, expected the "
                                         rf"15 columns of adult.names; the column '{column}' "
                                         rf"is missing"):
        read_adult_csv(path)


def test_adult_missing_one_of_adjacent_numeric_columns_names_the_candidates(tmp_path):
    drop = COLUMNS.index("capital-loss")
    rows = [", ".join(v for j, v in enumerate(r.split(", ")) if j != drop) for r in _rows()]
    path = tmp_path / "adult.data"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"one of the columns \['capital-gain', "
                                         r"'capital-loss', 'hours-per-week'\] is missing"):
        read_adult_csv(path)


def test_adult_truncated_row_names_the_line_and_missing_columns(tmp_path):
    rows = _rows()
    rows[3] = ", ".join(rows[3].split(", ")[:13])
    path = tmp_path / "adult.data"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"adult.data: line 4 has 13 fields, expected 15: "
                                         r"missing \['native-country', 'income'\]"):
        read_adult_csv(path)


def test_adult_data_module_names_the_missing_column_of_the_test_file(tmp_path):
    folder = tmp_path / "adult"
    write_adult(folder)
    drop = COLUMNS.index("race")
    lines = (folder / "adult.test").read_text().splitlines()
    lines = [lines[0]] + [", ".join(v for j, v in enumerate(r.split(", ")) if j != drop)
                          for r in lines[1:] if r]
    (folder / "adult.test").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"adult.test: every row has 14 fields.*the column "
                                         r"'race' is missing"):
        AdultDataModule(data_dir=str(tmp_path), val_size=8).setup()


def test_adult_bad_label_still_reports_the_label(tmp_path):
    rows = _rows()
    rows[1] = rows[1].replace(">50K", "maybe")
    path = tmp_path / "adult.data"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"adult.data: unexpected labels \['maybe'\] \(row 1\)"):
        read_adult_csv(path)
