"""Keep secrets out of results: mask the values of secret-looking environment variables.

A secret reaches a run's results when a config interpolates it
(``+foo=${oc.env:WANDB_API_KEY}``) or a user types it on the command line. midl never names a
folder from resolved values (see ``configs/hydra/default.yaml``), and every record it writes
passes through :func:`redact_secrets`, which replaces the value of each environment variable
whose name looks secret by :data:`MASK` wherever it occurs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
# Names that look secret: they contain one of these words (case-insensitive).
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
# Shorter values are not masked: replacing every "1" or "true" in a record would corrupt it,
# and real credentials (API keys, tokens, passwords) are longer.
MIN_SECRET_LENGTH = 6


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values to mask: those of environment variables whose name contains ``KEY``,
    ``TOKEN``, ``SECRET`` or ``PASSWORD`` (any case) and that are at least
    :data:`MIN_SECRET_LENGTH` characters long; longest first (so a secret that contains
    another is masked whole), then in alphabetical order.

    Args:
        environ: the environment to read (default ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    values = {value for name, value in environ.items()
              if SECRET_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH}
    return sorted(values, key=lambda value: (-len(value), value))


def redact_secrets(obj: Any, environ: Mapping[str, str] | None = None) -> Any:
    """A copy of ``obj`` in which every secret value (:func:`secret_values`) is replaced by
    ``"***"``.

    Strings (dict keys included) have each occurrence masked (``"run secret123"`` ->
    ``"run ***"``); an int or float whose text equals a secret becomes ``"***"``; dicts, lists
    and tuples are walked recursively; other values (None, bools, ...) are returned as they are.
    ``obj`` itself is not modified.

    Args:
        obj: a record: nested dicts / lists / tuples of JSON-like values.
        environ: the environment whose secrets are masked (default ``os.environ``).

    Returns:
        The masked copy (same structure and types, except masked numbers become strings).
    """
    secrets = secret_values(environ)
    return _redact(obj, secrets) if secrets else obj


def _redact(obj: Any, secrets: list[str]) -> Any:
    if isinstance(obj, str):
        for secret in secrets:
            obj = obj.replace(secret, MASK)
        return obj
    if isinstance(obj, Mapping):
        return {_redact(k, secrets): _redact(v, secrets) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_redact(v, secrets) for v in obj)
    if isinstance(obj, int | float) and not isinstance(obj, bool) and str(obj) in secrets:
        return MASK
    return obj
