"""IMDB Large Movie Review Dataset (Maas et al. 2011, "Learning Word Vectors for Sentiment
Analysis", ACL) as padded token-id sequences for the LSTM backbone.

Text is read with Hugging Face ``datasets`` (local Parquet files offline, the hub's
``stanfordnlp/imdb`` when ``download=True``), tokenised with a Hugging Face ``tokenizers``
word-level model trained on the training split only, and the tensors are cached on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from midl.data.base import InMemoryDataModule, Splits
from midl.data.formats import md5sum
from midl.runs.io import atomic_write_text, verify_digest, write_digest

log = logging.getLogger(__name__)

PAD, UNK = "[PAD]", "[UNK]"  # ids 0 and 1
CACHE_VERSION = 1  # bump when the tokenisation below changes


def build_tokenizer(texts: list[str], vocab_size: int):
    """Train a word-level tokenizer (Hugging Face ``tokenizers``) on ``texts``.

    Normalisation: HTML line breaks (``<br />``) become spaces, then lower-casing; the
    pre-tokenizer splits on whitespace and punctuation (``\\w+|[^\\w\\s]+``). The vocabulary
    holds the ``vocab_size`` most frequent words plus ``[PAD]`` (id 0) and ``[UNK]`` (id 1).

    Args:
        texts: training documents only (never test text).
        vocab_size: number of words kept, >= 1.

    Returns:
        A :class:`tokenizers.Tokenizer`.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.Replace(Regex(r"<br\s*/?>"), " "),
                                           normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size + 2, special_tokens=[PAD, UNK],
                                        show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


TRUNCATION_SIDES = ("right", "left")


def encode(tok, texts: list[str], max_length: int, truncation_side: str = "right"
           ) -> np.ndarray:
    """Token ids of ``texts``, truncated to ``max_length`` tokens and right-padded with id 0:
    int32 array of shape (N, max_length). ``truncation_side`` says where a long review is cut
    (the Hugging Face tokenizers' term): ``right`` keeps its first ``max_length`` tokens,
    ``left`` its last ones (Keras' ``pad_sequences(truncating="pre")``)."""
    tok.enable_truncation(max_length, direction=truncation_side)
    tok.enable_padding(pad_id=0, pad_token=PAD, length=max_length, direction="right")
    return np.array([e.ids for e in tok.encode_batch(texts)], dtype=np.int32).reshape(
        len(texts), max_length)


class IMDBDataModule(InMemoryDataModule):
    """IMDB sentiment (0 = negative, 1 = positive) as (max_length,) int64 token ids: 25,000
    training reviews (minus the validation slice) and 25,000 test reviews, balanced.

    Source: ``<data_dir>/imdb/train.parquet`` and ``test.parquet`` (columns ``text``, ``label``;
    the layout of the Hugging Face ``imdb`` dataset) read with ``datasets`` offline; when they
    are absent and ``download=True``, ``datasets.load_dataset("stanfordnlp/imdb")`` (needs the
    network). The vocabulary is built from the 25,000 official training reviews (the
    validation slice included: word counts only, no labels; never test text). Sequences are
    truncated to ``max_length`` tokens (their first ones, or with ``truncation_side="left"``
    their last ones) and right-padded with id 0, as the LSTM backbone expects. ``vocab_size``
    (the model's embedding size) is the number of words plus 2 (pad, unknown).

    The token tensors are cached in ``<cache_dir>/imdb/tokens-<key>.pt`` (and the tokenizer as
    ``tokenizer-<key>.json``), keyed by the source files' MD5s, ``vocab_size``, ``max_length``,
    ``truncation_side`` and the tokenisation version, written atomically (temporary file +
    ``os.replace``); a second run loads them in about a second.

    Note: the test Parquet file is sorted by label (all negative reviews first), so
    ``trainer.limit_test_batches`` would test on negative reviews only.

    Args:
        vocab_size: words kept in the vocabulary (default 20,000), >= 1.
        max_length: tokens per review after truncation/padding (default 256), >= 1.
        truncation_side: ``right`` (default) keeps a long review's first ``max_length``
            tokens, ``left`` its last ones (where reviews tend to sum up).
        val_size: validation slice of the 25,000 training reviews (default 2,500).
        hf_dataset: hub dataset id used with ``download=True``.
        **kwargs: see :class:`~midl.data.base.InMemoryDataModule`.

    Raises:
        FileNotFoundError: when a Parquet file is missing (and no download), naming the folder.
        ValueError: for a corrupt Parquet file (naming it), missing columns, labels outside
            {0, 1}, ``vocab_size`` / ``max_length`` < 1 (naming the key), or another
            ``truncation_side``.
        RuntimeError: when the hub download fails.
    """

    name = "IMDB"
    published_sizes = {"train": 25000, "test": 25000}
    num_classes = 2
    folder = "imdb"
    files = ("train.parquet", "test.parquet")

    def __init__(self, vocab_size: int = 20000, max_length: int = 256,
                 val_size: int | float = 2500, hf_dataset: str = "stanfordnlp/imdb",
                 truncation_side: str = "right", **kwargs) -> None:
        super().__init__(val_size=val_size, **kwargs)
        for key, value in (("vocab_size", vocab_size), ("max_length", max_length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"data.{key}={value!r} must be a positive int")
        if truncation_side not in TRUNCATION_SIDES:
            raise ValueError(f"data.truncation_side={truncation_side!r}: choose from "
                             f"{list(TRUNCATION_SIDES)}")
        self.truncation_side = truncation_side
        self.words = vocab_size
        self.max_length = max_length
        self.hf_dataset = hf_dataset
        self.input_shape = (max_length,)
        self.vocab_size = vocab_size + 2  # provisional; set from the tokenizer in load()
        self.cache_path: Path | None = None

    def _read_texts(self) -> tuple[dict[str, list[str]], dict[str, np.ndarray], str]:
        """Texts and labels of both splits, and a string identifying the source."""
        import datasets

        root = self.data_dir / self.folder
        paths = [root / f for f in self.files]
        if all(p.exists() for p in paths):
            source = self._source_id()
            data = {}
            for split, path in zip(("train", "test"), paths, strict=True):
                try:
                    data[split] = datasets.Dataset.from_parquet(
                        str(path), keep_in_memory=True, cache_dir=str(self.cache_dir / "hf"))
                except Exception as err:  # pyarrow.ArrowInvalid, DatasetGenerationError, ...
                    raise ValueError(f"{path}: not a readable Parquet file ({err!r}); the "
                                     "file is truncated or corrupt") from err
        elif self.download:
            try:
                data = datasets.load_dataset(self.hf_dataset,
                                             cache_dir=str(self.cache_dir / "hf"))
            except Exception as err:  # offline: ConnectionError, OfflineModeIsEnabled, ...
                raise RuntimeError(f"could not load {self.hf_dataset!r} from the Hugging Face "
                                   f"hub ({err!r}); put {' and '.join(self.files)} in {root} "
                                   "instead") from err
            source = f"hub:{self.hf_dataset}"
        else:
            raise self.missing(root, list(self.files),
                               f"pass data.download=true to load {self.hf_dataset} from the "
                               "Hugging Face hub")
        texts, labels = {}, {}
        for split in ("train", "test"):
            ds = data[split]
            if not {"text", "label"} <= set(ds.column_names):
                raise ValueError(f"IMDB {split} split: expected columns 'text' and 'label', "
                                 f"found {ds.column_names}")
            texts[split] = list(ds["text"])
            labels[split] = np.asarray(ds["label"], dtype=np.int64)
            if len(labels[split]) and not np.isin(labels[split], [0, 1]).all():
                raise ValueError(f"IMDB {split} split: labels must be 0 (neg) or 1 (pos)")
        return texts, labels, source

    def _cache_key(self, source: str) -> str:
        import tokenizers

        settings = {"version": CACHE_VERSION, "source": source, "vocab_size": self.words,
                    "max_length": self.max_length, "truncation_side": self.truncation_side,
                    "tokenizers": ".".join(tokenizers.__version__.split(".")[:2])}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]

    def _source_id(self) -> str | None:
        paths = [self.data_dir / self.folder / f for f in self.files]
        if all(p.exists() for p in paths):
            return "local:" + ",".join(md5sum(p) for p in paths)
        return f"hub:{self.hf_dataset}" if self.download else None

    def load(self) -> Splits:
        """Token tensors from the cache, else tokenised and cached. One process at a time per
        cache folder (a file lock): parallel sweep jobs wait for the first one's cache
        instead of tokenising the reviews side by side and replacing each other's files."""
        cache = self.cache_dir / "imdb"
        cache.mkdir(parents=True, exist_ok=True)
        with FileLock(cache / ".lock"):
            return self._load(cache)

    def _load(self, cache: Path) -> Splits:
        source = self._source_id()
        if source is not None:
            path = cache / f"tokens-{self._cache_key(source)}.pt"
            if path.exists() and not verify_digest(path):
                log.warning("IMDB cache %s fails its size/SHA-256 check; rebuilding", path)
            elif path.exists():
                try:
                    blob = torch.load(path, weights_only=True)
                    self.cache_path, self.vocab_size = path, int(blob["vocab_size"])
                    return Splits(blob["x_train"].long(), blob["y_train"],
                                  blob["x_test"].long(), blob["y_test"])
                except Exception as err:  # a damaged cache file is rebuilt, never trusted
                    log.warning("ignoring unreadable IMDB cache %s (%r); rebuilding", path, err)
        texts, labels, source = self._read_texts()
        tok = build_tokenizer(texts["train"], self.words)
        self.vocab_size = tok.get_vocab_size()
        x = {s: encode(tok, texts[s], self.max_length, self.truncation_side)
             for s in ("train", "test")}
        dtype = torch.int16 if self.vocab_size <= 2 ** 15 else torch.int32
        blob = {"x_train": torch.from_numpy(x["train"]).to(dtype),
                "y_train": torch.from_numpy(labels["train"]),
                "x_test": torch.from_numpy(x["test"]).to(dtype),
                "y_test": torch.from_numpy(labels["test"]),
                "vocab_size": self.vocab_size, "max_length": self.max_length,
                "words": self.words, "source": source}
        key = self._cache_key(source)
        self.cache_path = cache / f"tokens-{key}.pt"
        cache.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache / f"tokenizer-{key}.json", tok.to_str())
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=".tokens-", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(blob, tmp)
            os.replace(tmp, self.cache_path)
            write_digest(self.cache_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Splits(blob["x_train"].long(), blob["y_train"], blob["x_test"].long(),
                      blob["y_test"])

    def summary(self) -> dict[str, object]:
        out = super().summary()
        out.update(vocab_size=self.vocab_size, max_length=self.max_length,
                   truncation_side=self.truncation_side,
                   token_cache=None if self.cache_path is None else str(self.cache_path))
        return out
