"""Atomic file writes: a result is either the old file or the complete new one, never half."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a temporary file ``.<name>.<random>.tmp`` in ``path``'s folder,
    fsync it, and rename it to ``path``.

    The rename stays within one folder, hence one filesystem, so it is atomic: a crash, a
    kill, a full disk or an exception in ``write`` leaves any existing file at ``path`` intact
    (and the temporary file is removed, except after a kill). Parent folders are created.
    Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`).

    An interruption (crash, kill, exception) leaves any existing file at ``path`` intact.
    Parent folders are created. Returns the path written.
    """
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (see :func:`atomic_write_text`)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def file_digest(path: str | Path) -> dict[str, int | str]:
    """Size in bytes and SHA-256 of a file: ``{"size": ..., "sha256": ...}``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return {"size": Path(path).stat().st_size, "sha256": digest.hexdigest()}


def write_digest(path: str | Path) -> Path:
    """Record ``path``'s size and SHA-256 beside it (``<name>.digest.json``), atomically."""
    return atomic_write_json(f"{path}.digest.json", file_digest(path))


def verify_digest(path: str | Path) -> bool:
    """True if ``path`` exists and matches the size and SHA-256 recorded by
    :func:`write_digest`; False if it is missing, has no record, or differs (a cache file
    that fails this check must be rebuilt, not used)."""
    record = Path(f"{path}.digest.json")
    if not Path(path).exists() or not record.exists():
        return False
    try:
        expected = json.loads(record.read_text())
    except json.JSONDecodeError:
        return False
    return (Path(path).stat().st_size == expected.get("size")
            and file_digest(path) == expected)
