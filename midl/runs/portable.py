"""Records without the machine that made them: absolute folders of a run's ``paths.*``
written relative to those settings, and commands as typed (:func:`machine_free`; used by
:mod:`midl.runs.records` for every record it writes or migrates)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from midl.runs.provenance import path_prefixes, program_name, relative_to_paths


def _machine_folders(config: Any) -> list[tuple[str, str]]:
    """``(absolute folder, "<paths.key>")`` for the run's absolute ``paths.*`` folders, the
    longest first."""
    paths = config.get("paths") if isinstance(config, Mapping) else None
    return [(folder.rstrip("/"), f"<{name}>") for folder, name in path_prefixes(paths)
            if folder.startswith("/")]


def _replace_folders(text: str, folders: list[tuple[str, str]]) -> str:
    """Every occurrence of an absolute folder in ``text`` (followed by ``/``, the end or a
    character that ends a path) as its placeholder."""
    if not folders or "/" not in text:
        return text
    pattern = "|".join(re.escape(folder) for folder, _ in folders)
    names = dict(folders)
    return re.sub(f"(?:{pattern})(?=/|$|[\\s'\",;:)\\]}}])", lambda m: names[m.group(0)], text)


def _free_node(node: Any, folders: list[tuple[str, str]], key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _free_node(v, folders, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_free_node(v, folders) for v in node]
    if isinstance(node, str):
        if key == "command" and node:
            first, _, rest = node.partition(" ")
            node = " ".join(filter(None, [program_name(first), rest]))
        return _replace_folders(node, folders)
    return node


def machine_free(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` without the absolute paths of the machine that ran it (see the module
    docstring); its ``config`` hashes as before (:func:`midl.runs.provenance.config_hash`).

    ``config`` is written as :func:`midl.runs.provenance.result_config` writes the folders
    (a value that is, or lies under, a ``paths.*`` folder becomes ``<paths.key>/rest``);
    ``config.paths`` itself names each folder by the enclosing one (``output_dir`` under
    ``log_dir``: ``<paths.log_dir>/<task>/multirun/<name>``), a root by its own key. Every
    other string (commands, checkpoints of analyses, side results, overrides) has each
    occurrence of such a folder replaced, and a ``command`` names its program as typed
    (:func:`midl.runs.provenance.program_name`)."""
    config = record.get("config")
    folders = _machine_folders(config)
    out = _free_node({k: v for k, v in record.items() if k != "config"}, folders)
    if isinstance(config, Mapping):
        paths = config.get("paths")
        prefixes = [(f, n) for f, n in path_prefixes(paths) if f.startswith("/")]
        free = relative_to_paths({k: v for k, v in config.items() if k != "paths"}, prefixes)
        if isinstance(paths, Mapping):
            free_paths = {}
            for key, value in paths.items():
                others = [(f, n) for f, n in prefixes if n != f"paths.{key}"]
                value = relative_to_paths(value, others)
                if isinstance(value, str) and value.startswith("/"):
                    value = f"<paths.{key}>"  # a root: named by its key
                free_paths[key] = value
            free = {k: (free_paths if k == "paths" else free.get(k)) for k in config}
        out["config"] = free
        out = {k: out[k] for k in record}
    return out
