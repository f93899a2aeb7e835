"""Hydra/OmegaConf helpers: the resolvers and the callback used in ``configs/hydra/``, and
config validation."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from midl.runs.secrets import redact_secrets


def run_name(override_dirname: str) -> str:
    """Folder name of a run from its command-line overrides (Hydra's ``override_dirname``).

    ``"block=midl,seed=3"`` stays as it is; no overrides give ``"default"``; characters that
    cannot appear in one path component (``/``, and anything but letters, digits and
    ``=,.+-_[]:@%``) become ``_``, so a path-valued override never nests folders.

    The value of any secret-looking environment variable typed literally is masked first
    (:func:`midl.runs.secrets.redact_secrets`).
    """
    if not override_dirname:
        return "default"
    return re.sub(r"[^\w=,.+\-\[\]:@%]", "_", redact_secrets(override_dirname))


def typed_overrides(*, _root_: DictConfig) -> str:
    """Hydra's ``hydra.job.override_dirname`` as typed on the command line, unresolved.

    Hydra stores an override's value as typed, so ``+foo=${oc.env:WANDB_API_KEY}`` makes
    ``override_dirname`` an interpolation that ``${hydra:job.override_dirname}`` would resolve
    (putting the key into the folder name). Read raw here, the folder is named
    ``+foo=__oc.env:WANDB_API_KEY_``. Used as ``${run_name:${typed_overrides:}}`` in
    ``configs/hydra/default.yaml``; ``_root_`` is the composed config (OmegaConf passes it).

    Raises:
        ValueError: if the config has no ``hydra.job`` node (not composed by Hydra).
    """
    job = OmegaConf.select(_root_, "hydra.job", throw_on_resolution_failure=False)
    raw = OmegaConf.to_container(job, resolve=False) if isinstance(job, DictConfig) else {}
    if not isinstance(raw.get("override_dirname"), str):
        raise ValueError("${typed_overrides:} needs a config composed by Hydra "
                         "(hydra.job.override_dirname is missing)")
    return raw["override_dirname"]


def register_resolvers() -> None:
    """Register midl's OmegaConf resolvers (idempotent)."""
    if not OmegaConf.has_resolver("run_name"):
        OmegaConf.register_new_resolver("run_name", run_name)
    if not OmegaConf.has_resolver("typed_overrides"):
        OmegaConf.register_new_resolver("typed_overrides", typed_overrides)


register_resolvers()


class KeepSweepConfig(Callback):
    """Hydra callback (``hydra.callbacks`` in ``configs/hydra/default.yaml``): every sweep
    keeps its own copy of the sweep config, ``<sweep dir>/multirun.<local time>.yaml``.

    Hydra's sweeper writes ``<sweep dir>/multirun.yaml`` when a sweep starts, so the next
    sweep of the same task (same folder) overwrites it; the copy written here, from the same
    config and at the same moment, is never overwritten (a ``-N`` suffix is added when two
    sweeps start in the same second). ``multirun.yaml`` stays the latest sweep's.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        path, n = sweep_dir / f"multirun.{stamp}.yaml", 1
        while path.exists():
            path, n = sweep_dir / f"multirun.{stamp}-{n}.yaml", n + 1
        OmegaConf.save(config, path)
        logging.getLogger(__name__).info("sweep config kept as %s", path)


class ConfigError(ValueError):
    """A config value is out of its allowed range; the message names key, value and range."""


def _int_at_least(low: int, high: int | None = None):
    def check(value) -> str | None:
        ok = (not isinstance(value, bool) and isinstance(value, int) and value >= low
              and (high is None or value <= high))
        return None if ok else (f"an int in [{low}, {high}]" if high is not None
                                else f"an int >= {low}")
    return check


def _probability(value) -> str | None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value < 1
    return None if ok else "a number in [0, 1)"


def _positive(value) -> str | None:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value) and value > 0)
    return None if ok else "a finite number > 0"


def _one_of(*choices: str):
    def check(value) -> str | None:
        return None if value in choices else f"one of {list(choices)}"
    return check


# (key, check): a check returns None when the value is allowed, else the allowed range.
RULES: list[tuple[str, Callable[[Any], str | None]]] = [
    ("seed", _int_at_least(0, 2**32 - 1)),
    ("test_ckpt", _one_of("best", "last")),
    ("trainer.max_epochs", _int_at_least(1)),
    ("data.batch_size", _int_at_least(1)),
    ("data.label_noise", _probability),
    ("model.hidden_dim", _int_at_least(1)),
    ("model.depth", _int_at_least(1)),
    ("model.dropout", _probability),
    ("optimizer.lr", _positive),
    ("block.gate_dropout", _probability),
    ("block.p", _probability),
    ("block.estimator", _one_of("ste", "masked")),
    ("block.anneal_epochs", _int_at_least(0)),
]


def validate(cfg: DictConfig) -> None:
    """Check a composed train config before anything is built or trained.

    Checks every key of :data:`RULES` that the config has (a key the config lacks is not
    checked), ``data.eval_batch_size`` and ``num_threads`` when set, and ``block.top_k`` /
    ``block.top_k_start`` against ``model.hidden_dim`` (a fraction in (0, 1] or an int in [1, d]).

    Raises:
        ConfigError: naming the first bad key, its value and the allowed range.
    """
    rules = list(RULES)
    for optional in ("data.eval_batch_size", "num_threads"):  # null = the default
        if OmegaConf.select(cfg, optional) is not None:
            rules.append((optional, _int_at_least(1)))
    for key, check in rules:
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is _MISSING:
            continue
        allowed = check(value)
        if allowed is not None:
            raise ConfigError(f"{key}={value!r} is not allowed: use {allowed}")
    dim = OmegaConf.select(cfg, "model.hidden_dim")
    for key in ("block.top_k", "block.top_k_start"):
        value = OmegaConf.select(cfg, key)
        if value is not None and isinstance(dim, int):
            from midl.blocks.midl import resolve_top_k

            try:
                resolve_top_k(value, dim, key)
            except (TypeError, ValueError) as err:
                raise ConfigError(str(err)) from None


_MISSING = object()
