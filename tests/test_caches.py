"""Caches are verified before use: a damaged cache file is rebuilt, never used."""

from __future__ import annotations

import logging

import numpy as np
import torch
from test_datasets import write_imdb_parquet

from midl.data.cifar10c import CorruptionCache
from midl.data.imdb import IMDBDataModule
from midl.runs.io import verify_digest, write_digest


def _flip_byte(path, offset_from_end: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


def test_digest_detects_a_single_flipped_bit(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 4)
    write_digest(path)
    assert verify_digest(path)
    _flip_byte(path)
    assert not verify_digest(path)
    assert not verify_digest(tmp_path / "absent.bin")


def test_damaged_imdb_cache_is_rebuilt(tmp_path, caplog):
    write_imdb_parquet(tmp_path / "imdb")
    kwargs = dict(data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"), vocab_size=50,
                  max_length=12, val_size=4)
    first = IMDBDataModule(**kwargs)
    first.setup()
    cache = first.cache_path
    assert verify_digest(cache)
    _flip_byte(cache, offset_from_end=len(cache.read_bytes()) // 2)
    with caplog.at_level(logging.WARNING):
        again = IMDBDataModule(**kwargs)
        again.setup()
    assert "fails its size/SHA-256 check" in caplog.text
    assert torch.equal(again.train_set.x, first.train_set.x)
    assert verify_digest(cache)  # rebuilt and recorded again


def test_damaged_cifar10c_block_is_regenerated(tmp_path, caplog):
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    cache = CorruptionCache(tmp_path, clean, np.arange(6) % 10, seed=0, source="fixture")
    original = cache.get("brightness", 2)
    path = tmp_path / "brightness.npy"
    arr = np.load(path, mmap_mode="r+")
    arr[6 + 3, 5, 5, 0] ^= 0xFF  # inside the severity-2 block
    arr.flush()
    del arr
    with caplog.at_level(logging.WARNING):
        again = cache.get("brightness", 2)
    assert "fails its checksum" in caplog.text
    np.testing.assert_array_equal(again, original)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        cache.get("brightness", 2)  # intact now: used without a warning
    assert "fails its checksum" not in caplog.text


def test_imdb_cache_has_one_writer_at_a_time(tmp_path):
    """Parallel sweep jobs share the cache: a second loader waits for the lock holder's
    cache instead of tokenising beside it, then reads what the first one wrote."""
    import threading

    from filelock import FileLock

    write_imdb_parquet(tmp_path / "imdb")
    kwargs = dict(data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"), vocab_size=50,
                  max_length=12, val_size=4)
    folder = tmp_path / "cache" / "imdb"
    folder.mkdir(parents=True)
    waiting = IMDBDataModule(**kwargs)
    holder = FileLock(folder / ".lock")
    with holder:  # another job is building the cache
        thread = threading.Thread(target=waiting.setup)
        thread.start()
        thread.join(timeout=3)
        assert thread.is_alive()  # blocked on the lock
        assert not list(folder.glob("tokens-*.pt"))
    thread.join(timeout=120)
    assert not thread.is_alive() and verify_digest(waiting.cache_path)
    again = IMDBDataModule(**kwargs)
    again.setup()
    assert torch.equal(again.train_set.x, waiting.train_set.x)
