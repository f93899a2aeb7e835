"""CIFAR-100, SVHN, UCI Adult and IMDB: readers on tiny fixtures in the published formats,
counts on the real data (skipped when absent), and short learning runs on real Adult/IMDB."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_data import write_adult, write_cifar100_pickle, write_imdb_parquet, write_svhn_mat

from conftest import require_real
from midl.data import (
    AdultDataModule,
    CIFAR100DataModule,
    IMDBDataModule,
    SVHNDataModule,
    is_stand_in,
)
from midl.data.adult import read_adult_csv
from midl.data.formats import ChecksumWarning, read_svhn_mat


def make_cifar100(root, n_train=30, n_test=10):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    write_cifar100_pickle(folder / "train", rng.integers(0, 256, (n_train, 3072)),
                          [(7 * i) % 100 for i in range(n_train)])
    write_cifar100_pickle(folder / "test", rng.integers(0, 256, (n_test, 3072)),
                          [(3 * i) % 100 for i in range(n_test)])
    return folder


def make_svhn(root, n_train=30, n_test=12):
    folder = root / "svhn"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    arrays = {}
    for name, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test)):
        x, y = rng.integers(0, 256, (n, 3, 32, 32)), np.arange(n) % 10
        write_svhn_mat(folder / name, x, y)
        arrays[name] = (x, y)
    return arrays


def test_cifar100_fine_labels_on_fixture(tmp_path):
    make_cifar100(tmp_path)
    dm = CIFAR100DataModule(data_dir=str(tmp_path), val_size=0.1)
    with pytest.warns(ChecksumWarning, match="train: MD5"):
        dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (27, 3, 10)
    assert dm.num_classes == 100 and dm.test_set.y.tolist() == [(3 * i) % 100 for i in range(10)]


def test_svhn_reader_maps_10_to_0_and_layout(tmp_path):
    arrays = make_svhn(tmp_path)
    x, y = read_svhn_mat(tmp_path / "svhn" / "test_32x32.mat")
    np.testing.assert_array_equal(x, arrays["test_32x32.mat"][0])
    np.testing.assert_array_equal(y, np.arange(12) % 10)
    assert x.dtype == np.uint8 and y.min() == 0
    dm = SVHNDataModule(data_dir=str(tmp_path), val_size=5)
    with pytest.warns(ChecksumWarning):
        dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (25, 5, 12)
    assert "stand_in" not in dm.summary()  # real-layout files without a FIXTURE.json
    (tmp_path / "svhn" / "FIXTURE.json").write_text('{"not_svhn": true, "seed": 0}')
    stand_in = SVHNDataModule(data_dir=str(tmp_path), val_size=5)
    with pytest.warns(ChecksumWarning):
        stand_in.setup()
    assert stand_in.summary()["stand_in"] == {"not_svhn": True, "seed": 0}
    assert is_stand_in(stand_in.summary()) and not is_stand_in(dm.summary())  # what reports read
    path = tmp_path / "svhn" / "train_32x32.mat"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match="train_32x32.mat.*truncated or corrupt"):
        read_svhn_mat(path)


def test_adult_reader_on_published_format(tmp_path):
    write_adult(tmp_path / "adult")
    test = read_adult_csv(tmp_path / "adult" / "adult.test")
    assert len(test) == 20  # header line and blank lines skipped
    assert set(test["income"]) == {"<=50K", ">50K"}  # trailing "." removed
    assert (test["workclass"] == "missing").sum() == 5  # "?" is its own category
    assert test["age"].dtype == np.float64
    bad = tmp_path / "bad.data"
    bad.write_text("39, State-gov, 77516, Bachelors\n")
    with pytest.raises(ValueError, match="bad.data"):
        read_adult_csv(bad)


def test_adult_preprocessing_fitted_on_training_part_only(tmp_path):
    write_adult(tmp_path / "adult")
    dm = AdultDataModule(data_dir=str(tmp_path), val_size=8)
    dm.setup()
    x = dm.train_set.x
    n_num = 6
    assert x.dtype == torch.float32 and dm.input_shape == (x.shape[1],)
    # numeric columns standardised with the training part's own statistics
    assert x[:, :n_num].mean(0).abs().max() < 1e-5
    assert dm.mean is None  # no second standardisation: one-hot columns stay 0/1
    assert set(x[:, n_num:].unique().tolist()) <= {0.0, 1.0}
    assert dm.positive_class == 1 and dm.summary()["positive_class"] == ">50K"
    # an Adult subset: the scaler sees only the subset
    sub = AdultDataModule(data_dir=str(tmp_path), train_size=10, val_size=8)
    sub.setup()
    assert len(sub.train_set) == 10 and sub.train_set.x[:, :n_num].mean(0).abs().max() < 1e-5


def test_imdb_tokenised_from_parquet_and_cached(tmp_path):
    write_imdb_parquet(tmp_path / "imdb")
    kwargs = dict(data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"), vocab_size=50,
                  max_length=12, val_size=4)
    dm = IMDBDataModule(**kwargs)
    dm.setup()
    x = dm.train_set.x
    assert x.shape == (36, 12) and x.dtype == torch.int64
    assert dm.vocab_size <= 52 and int(x.max()) < dm.vocab_size
    assert (x[:, 0] != 0).all()  # right-padded: sequences start with a token
    first = dm.test_set.x[0]
    assert (first == 1).any()  # "rare" appears only in test row 0: unknown (vocab from train)
    cached = list((tmp_path / "cache" / "imdb").glob("tokens-*.pt"))
    assert len(cached) == 1
    again = IMDBDataModule(**kwargs)
    again.setup()
    assert torch.equal(again.train_set.x, x) and again.cache_path == cached[0]
    IMDBDataModule(**{**kwargs, "max_length": 8}).setup()  # other settings: another entry
    assert len(list((tmp_path / "cache" / "imdb").glob("tokens-*.pt"))) == 2
    with pytest.raises(ValueError, match=r"data\.max_length=0"):
        IMDBDataModule(**{**kwargs, "max_length": 0})


def test_imdb_truncation_side_keeps_the_first_or_the_last_tokens():
    from midl.data.imdb import build_tokenizer, encode

    texts = ["a b c d e f g h", "great film , bad end", "short one"]
    tok = build_tokenizer(texts, vocab_size=50)
    full = [tok.encode(t).ids for t in texts]  # untruncated ids, computed separately
    head = encode(tok, texts, 4, "right")
    tail = encode(tok, texts, 4, "left")
    for row, ids in enumerate(full):
        kept = min(4, len(ids))
        assert head[row, :kept].tolist() == ids[:4] and tail[row, :kept].tolist() == ids[-4:]
        assert (head[row, kept:] == 0).all() and (tail[row, kept:] == 0).all()  # right-padded
    assert tail[0].tolist() != head[0].tolist()
    with pytest.raises(ValueError, match=r"data\.truncation_side='middle': choose from"):
        IMDBDataModule(truncation_side="middle")


def test_missing_files_name_folder_and_files(tmp_path):
    for module, folder, file in ((CIFAR100DataModule, "cifar-100-python", "train"),
                                 (SVHNDataModule, "svhn", "train_32x32.mat"),
                                 (AdultDataModule, "adult", "adult.data"),
                                 (IMDBDataModule, "imdb", "train.parquet")):
        with pytest.raises(FileNotFoundError, match=f"{file}.*{tmp_path / folder}"):
            module(data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")).setup()


def test_corrupt_parquet_names_file(tmp_path):
    write_imdb_parquet(tmp_path / "imdb")
    path = tmp_path / "imdb" / "train.parquet"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match="train.parquet.*truncated or corrupt"):
        IMDBDataModule(data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")).setup()


# -- real data ------------------------------------------------------------------------------
def test_real_adult_counts_and_balance():
    root = require_real("adult/adult.data", "adult/adult.test")
    dm = AdultDataModule(data_dir=str(root))
    dm.setup()
    assert (len(dm.train_set) + len(dm.val_set), len(dm.test_set)) == (32561, 16281)
    positives = (dm.train_set.y.sum() + dm.val_set.y.sum()).item()
    assert positives == 7841  # adult.names: 24.08% of 32,561 records are >50K
    assert dm.test_set.y.sum().item() == 3846
    assert torch.isfinite(dm.test_set.x).all() and dm.input_shape[0] > 100


@pytest.fixture(scope="module")
def imdb_cache(tmp_path_factory):
    """One token cache for this module's real-IMDB tests (tokenising 50,000 reviews once)."""
    return tmp_path_factory.mktemp("imdb_cache")


IMDB_SMALL = {"vocab_size": 5000, "max_length": 64}


def test_real_imdb_counts_and_balance(imdb_cache):
    root = require_real("imdb/train.parquet", "imdb/test.parquet")
    dm = IMDBDataModule(data_dir=str(root), cache_dir=str(imdb_cache), **IMDB_SMALL)
    dm.setup()
    assert (len(dm.train_set) + len(dm.val_set), len(dm.test_set)) == (25000, 25000)
    assert torch.bincount(dm.test_set.y).tolist() == [12500, 12500]
    assert dm.vocab_size == 5002 and int(dm.test_set.x.max()) < 5002
    assert (dm.test_set.x[:, 0] != 0).all()  # no empty review


def test_real_cifar100_subset_counts_and_ranges():
    root = require_real("cifar-100-python/train", "cifar-100-python/test")
    dm = CIFAR100DataModule(data_dir=str(root), val_size=0.1)
    with pytest.warns(ChecksumWarning):  # the pack holds a 1,000 / 900-record subset
        dm.setup()
    assert (len(dm.train_set) + len(dm.val_set), len(dm.test_set)) == (1000, 900)
    assert dm.test_set.y.max() <= 99 and len(dm.test_set.y.unique()) > 80
    assert dm.train_set.x.dtype == torch.uint8 and dm.train_set.x.float().std() > 40


def _majority_threshold(y: torch.Tensor) -> float:
    """Majority-class rate of ``y`` plus 4 binomial standard errors: a classifier that ignores
    its input scores at most the majority rate, and a chance-level one stays below this bound
    with probability > 0.9999; only a model that learned from the features passes."""
    p = torch.bincount(y).max().item() / len(y)
    return p + 4 * math.sqrt(p * (1 - p) / len(y))


@pytest.mark.slow
def test_short_training_run_learns_real_adult(compose_cfg):
    root = require_real("adult/adult.data", "adult/adult.test")
    from midl.train import train

    cfg = compose_cfg(["data=adult", "model=mlp", "block=dropout", "trainer.max_epochs=1",
                       "logger=none", "callbacks=none", "data.batch_size=256",
                       "+trainer.enable_progress_bar=false", f"paths.data_dir={root}"])
    record = train(cfg)
    dm = AdultDataModule(data_dir=cfg.paths.data_dir)
    dm.setup()
    threshold = _majority_threshold(dm.test_set.y)  # 0.764 + 0.013
    assert record["test"]["test/acc"] > threshold, (record["test"], threshold)
    assert record["test"]["test/f1"] > 0.3  # F1 of >50K: 0 for the majority-class predictor


@pytest.mark.slow
def test_short_training_run_learns_real_imdb(compose_cfg, imdb_cache):
    root = require_real("imdb/train.parquet", "imdb/test.parquet")
    import lightning.pytorch as pl

    from midl.factory import build

    # small and short (2-core CI): 4,000 reviews cut to 64 tokens, 3 epochs, Adam lr 5e-3
    cfg = compose_cfg(["data=imdb", "model=lstm", "block=dropout", "logger=none",
                       "callbacks=none", "data.vocab_size=5000", "data.max_length=64",
                       "data.train_size=4000", "data.val_size=500", "model.hidden_dim=64",
                       "model.embed_dim=32", "optimizer.lr=0.005", f"paths.data_dir={root}",
                       f"data.cache_dir={imdb_cache}"])
    pl.seed_everything(0)
    dm, module = build(cfg)
    trainer = pl.Trainer(max_epochs=3, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, datamodule=dm)
    # the test file is sorted by label: evaluate a seeded random sample of 5,000 reviews
    idx = torch.randperm(25000, generator=torch.Generator().manual_seed(0))[:5000]
    x, y = dm.test_set.x[idx], dm.test_set.y[idx]
    module.eval()
    with torch.no_grad():
        pred = torch.cat([module(x[i:i + 500]).argmax(1) for i in range(0, 5000, 500)])
    acc = (pred == y).float().mean().item()
    threshold = _majority_threshold(y)  # about 0.50 + 0.028
    assert acc > threshold, (acc, threshold)
