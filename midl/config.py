"""Hydra/OmegaConf helpers for midl's configs (resolvers used in ``configs/hydra/``)."""

from __future__ import annotations

import re

from omegaconf import OmegaConf


def run_name(override_dirname: str) -> str:
    """Folder name of a run from its command-line overrides (Hydra's ``override_dirname``).

    ``"block=midl,seed=3"`` stays as it is; no overrides give ``"default"``; characters that
    cannot appear in one path component (``/``, and anything but letters, digits and
    ``=,.+-_[]:@%``) become ``_``, so a path-valued override never nests folders.
    """
    if not override_dirname:
        return "default"
    return re.sub(r"[^\w=,.+\-\[\]:@%]", "_", override_dirname)


def register_resolvers() -> None:
    """Register midl's OmegaConf resolvers (idempotent)."""
    if not OmegaConf.has_resolver("run_name"):
        OmegaConf.register_new_resolver("run_name", run_name)


register_resolvers()
