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


def readable_json(obj: Any, indent: int = 2) -> str:
    """``obj`` as indented JSON in which every list of plain values (numbers, strings,
    booleans, nulls) stands on one line: a run's ``metrics.json`` with a 1,000-entry index
    list or per-neuron arrays stays a page a person can scroll. ``json.loads`` reads it back
    to the same object as ``json.dumps(obj)`` would give."""
    def render(node: Any, depth: int) -> str:
        pad, inner = " " * (indent * depth), " " * (indent * (depth + 1))
        if isinstance(node, dict) and node:
            items = [f"{inner}{json.dumps(str(k))}: {render(v, depth + 1)}"
                     for k, v in node.items()]
            return "{\n" + ",\n".join(items) + f"\n{pad}}}"
        if isinstance(node, (list, tuple)) and node and any(
                isinstance(v, (dict, list, tuple)) for v in node):
            return ("[\n" + ",\n".join(f"{inner}{render(v, depth + 1)}" for v in node)
                    + f"\n{pad}]")
        return json.dumps(node, default=str)
    return render(obj, 0)


def atomic_write_json(path: str | Path, obj: Any, one_line_lists: bool = False) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (see :func:`atomic_write_text`);
    with ``one_line_lists``, lists of plain values stand on one line (:func:`readable_json`,
    used for ``metrics.json``)."""
    text = (readable_json(obj) if one_line_lists
            else json.dumps(obj, indent=2, sort_keys=False, default=str))
    return atomic_write_text(path, text + "\n")


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
