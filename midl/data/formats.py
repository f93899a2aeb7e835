"""Readers for the published dataset file formats, with checksum checks.

Each reader takes a file path, returns NumPy arrays, and raises an error naming the file when
the file is missing, truncated or corrupt. No reader downloads anything.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import pickle
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

try:  # NumPy >= 2 (numpy.core is a deprecated alias)
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # NumPy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

# idx type codes (LeCun et al., http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class ChecksumWarning(UserWarning):
    """A data file's MD5 differs from the published one; the file is used anyway."""


class UnsafePickleError(ValueError):
    """A pickle asks for a Python object that a CIFAR file never holds (e.g. ``os.system``);
    the file is rejected before that object is looked up, so none of its code runs."""


# The only globals a CIFAR "python version" pickle may name, mapped to the objects used.
# The published files (Python 2, protocol 2) name numpy.core.multiarray._reconstruct,
# numpy.ndarray and numpy.dtype; a re-pickling with NumPy >= 2 names numpy._core.* instead,
# with protocol 5 numpy._core.numeric._frombuffer, a NumPy scalar ...multiarray.scalar, and a
# Python 3 pickle of bytes with protocol <= 2 _codecs.encode. Both module spellings map to
# the installed NumPy's objects, so numpy.core (deprecated in NumPy 2) is never imported.
_CIFAR_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _multiarray._reconstruct
       for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _multiarray.scalar for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _numeric._frombuffer
       for core in ("core", "_core")},
}


class _CIFARUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`_CIFAR_GLOBALS` and refuses every other global
    and persistent id (the mechanisms by which a pickle calls code)."""

    def __init__(self, file, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _CIFAR_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.path}: refused to load: the pickle asks for {module}.{name}, but a "
                "CIFAR file holds only dicts, lists, strings, bytes, numbers and NumPy arrays; "
                "the file is not a published CIFAR file (it may have been tampered with) and "
                "nothing from it was run") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.path}: refused to load: the pickle uses a persistent "
                                "id, which a CIFAR file never does")


def _check_cifar_values(path: Path, obj: Any, depth: int = 0) -> None:
    """Reject anything but dicts, lists, tuples, str/bytes, ints, floats, bools, None and
    NumPy arrays / scalars without Python objects inside (object dtype)."""
    if depth > 4:
        raise UnsafePickleError(f"{path}: nested deeper than a CIFAR file ever is")
    if isinstance(obj, np.ndarray | np.generic):
        if obj.dtype.hasobject:
            raise UnsafePickleError(f"{path}: holds a NumPy array of Python objects (dtype "
                                    f"{obj.dtype}); CIFAR arrays hold numbers only")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _check_cifar_values(path, key, depth + 1)
            _check_cifar_values(path, value, depth + 1)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _check_cifar_values(path, value, depth + 1)
    elif not isinstance(obj, str | bytes | int | float | type(None)):
        raise UnsafePickleError(f"{path}: holds a {type(obj).__name__}, which a CIFAR file "
                                "never does")


def load_cifar_pickle(path: str | Path) -> Any:
    """Unpickle a CIFAR "python version" file without letting it run code.

    A restricted :class:`pickle.Unpickler`: of all globals only NumPy's array and dtype
    reconstructors (both the ``numpy.core`` names of the published Python 2 files and the
    ``numpy._core`` names NumPy >= 2 writes) and ``_codecs.encode`` resolve; any other global
    (``os.system``, ``builtins.eval``, ...) is refused before it is looked up, so a malicious
    ``__reduce__`` never runs. Python 2 strings are read as bytes (``encoding="bytes"``). The
    result may then hold only dicts, lists, tuples, str/bytes, numbers and numeric NumPy
    arrays (no object dtype).

    Returns:
        The unpickled object (for a CIFAR batch, a dict with bytes keys).

    Raises:
        UnsafePickleError: (a ValueError) naming the file and the refused global or value.
        ValueError: if the file is truncated or corrupt, naming the file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _CIFARUnpickler(f, path).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError) as err:
        raise ValueError(f"{path}: not a readable CIFAR pickle ({err!r}); the file is "
                         "truncated or corrupt") from err
    _check_cifar_values(path, obj)
    return obj


def check_labels(path: str | Path, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Check that every label of a data file lies in ``[0, num_classes)``.

    Args:
        path: the file the labels were read from (named in the error).
        labels: integer class labels, any shape.
        num_classes: the dataset's number of classes.

    Returns:
        ``labels`` unchanged.

    Raises:
        ValueError: naming the file, how many labels are out of range, the first few bad
            values with their positions, and the allowed range.
    """
    labels = np.asarray(labels)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        shown = ", ".join(f"{int(labels.flat[i])} at index {int(i)}" for i in bad[:5])
        raise ValueError(f"{path}: {bad.size} label(s) outside [0, {num_classes}) ({shown}); "
                         f"the labels must be class indices 0..{num_classes - 1}: the file is "
                         "corrupt or belongs to another dataset")
    return labels


def md5sum(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex MD5 digest of the file at ``path``."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def check_md5s(files: Iterable[tuple[str | Path, str | None]], stacklevel: int = 2
               ) -> list[Path]:
    """Compare several files of one dataset with their published MD5s (``(path, md5)``
    pairs; ``None``: nothing published, not checked) and warn once for all that differ.

    Returns:
        The files whose digest differs (empty when all match).

    Warns:
        ChecksumWarning: one warning naming every differing file with both digests, and that
        the files are used anyway (CIFAR-10's six batches give one warning, not six).
    """
    differing, named = [], []
    for path, expected in files:
        if expected is None:
            continue
        actual = md5sum(path)
        if actual != expected:
            differing.append(Path(path))
            named.append(f"{path}: MD5 {actual} differs from the published {expected}")
    if differing:
        what = ("the file is not the published original" if len(differing) == 1 else
                f"these {len(differing)} files are not the published originals")
        warnings.warn(f"{'; '.join(named)}; {what} (for example a subset or a rebuild); "
                      f"using {'it' if len(differing) == 1 else 'them'} anyway",
                      ChecksumWarning, stacklevel=stacklevel + 1)
    return differing


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (the MNIST format), plain or gzip-compressed (``.gz``).

    Args:
        path: the idx file, e.g. ``train-images-idx3-ubyte`` or ``...-ubyte.gz``.

    Returns:
        An array of the file's shape, e.g. (60000, 28, 28) uint8 images or (60000,) labels.

    Raises:
        ValueError: if the header is not idx or the data is shorter or longer than the header
            says (truncated or corrupt file); the message names the file.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:  # gzip raises these for corrupt or truncated streams
        raise ValueError(f"{path}: cannot read idx data ({err}); the file is corrupt or "
                         "truncated") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an idx file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header_size + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: idx header says shape {shape} ({expected} bytes) but the "
                         f"file holds {len(raw)} bytes; the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape).astype(
        dtype.newbyteorder("="), copy=False)


def read_cifar_batch(path: str | Path, label_key: str = "labels",
                     num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR "python version" pickle (Krizhevsky 2009).

    The file is a dict with ``data`` (uint8, (N, 3072), channel-planar RGB rows) and a label
    list under ``label_key`` (``labels`` for CIFAR-10, ``fine_labels`` for CIFAR-100);
    ``filenames`` and ``batch_label`` are optional and ignored. The file is read with the
    restricted unpickler :func:`load_cifar_pickle`, so it cannot run code.

    Args:
        path: the pickle.
        label_key: the key of the labels.
        num_classes: when given, every label must lie in ``[0, num_classes)``.

    Returns:
        ``(images, labels)``: uint8 (N, 3, 32, 32) and int64 (N,).

    Raises:
        UnsafePickleError: (a ValueError) if the pickle asks for anything a CIFAR file never
            holds (e.g. a ``__reduce__`` calling ``os.system``); nothing of it is run.
        ValueError: if the file cannot be unpickled (truncated or corrupt), lacks the keys,
            has the wrong shapes or labels outside ``[0, num_classes)``; the message names
            the file.
    """
    entry = load_cifar_pickle(path)
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(entry).__name__}")
    entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
    if "data" not in entry or label_key not in entry:
        raise ValueError(f"{path}: missing key 'data' or {label_key!r} "
                         f"(found {sorted(entry)})")
    data = np.asarray(entry["data"], dtype=np.uint8)
    labels = np.asarray(entry[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise ValueError(f"{path}: expected data of shape (N, 3072) and N labels, got "
                         f"{data.shape} and {labels.shape}")
    if num_classes is not None:
        check_labels(path, labels, num_classes)
    return data.reshape(-1, 3, 32, 32), labels


def read_svhn_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN cropped-digits file (``train_32x32.mat`` / ``test_32x32.mat``; Netzer et al.
    2011, "Reading Digits in Natural Images with Unsupervised Feature Learning").

    The MATLAB file holds ``X`` (uint8, (32, 32, 3, N)) and ``y`` ((N, 1), digits 1-10 where
    10 means the digit 0).

    Returns:
        ``(images, labels)``: uint8 (N, 3, 32, 32) and int64 (N,) digits 0-9 (10 mapped to 0).

    Raises:
        ValueError: if the file cannot be read as a MATLAB file (truncated or corrupt), lacks
            ``X`` or ``y``, has the wrong shapes or labels outside 1-10; the message names the file.
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except Exception as err:  # scipy raises ValueError, TypeError, OSError, MatReadError...
        raise ValueError(f"{path}: not a readable MATLAB .mat file ({err!r}); the file is "
                         "truncated or corrupt") from err
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path}: missing variable 'X' or 'y' "
                         f"(found {sorted(k for k in mat if not k.startswith('__'))})")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise ValueError(f"{path}: expected X of shape (32, 32, 3, N) and N labels, got "
                         f"{x.shape} and {y.shape}")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise ValueError(f"{path}: labels must lie in 1-10 (10 = digit 0), found "
                         f"{y.min()}..{y.max()}")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1).astype(np.uint8, copy=False))
    return images, (y.astype(np.int64) % 10)
