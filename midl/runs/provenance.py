"""What produced a result: code commit, hardware, library versions, and the canonical
configuration hash that says which settings it was computed with."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def git_commit(repo: str | Path | None = None, paths: Sequence[str] = ()
               ) -> dict[str, str | bool | None]:
    """The commit of the midl source tree (``hash``) and whether it had uncommitted changes
    (``dirty``); ``None`` values when it is not a git checkout. Changes under ``results/``
    (what the reports themselves write) do not count: regenerating the tables one after the
    other would otherwise mark every table after the first as dirty.

    With ``paths`` (relative to the repository), ``hash`` is the last commit that changed one
    of them and ``dirty`` says whether they have uncommitted changes: a stamp that stays the
    same across commits elsewhere (the table reports use it for their own code, so that
    regenerating a table from the same records gives the same bytes).

    A copy of the source tree without git (a machine the tree was copied to, not cloned) has
    no commit of its own: there ``MIDL_GIT_COMMIT`` names the commit it was copied from, and
    ``dirty`` is ``None`` (not known)."""
    repo = Path(repo) if repo is not None else Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                                 text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    if paths:
        commit = git("log", "-1", "--format=%H", "--", *paths) or None
        status = git("status", "--porcelain", "--untracked-files=no", "--", *paths)
        return {"hash": commit, "dirty": None if status is None else bool(status)}
    commit = git("rev-parse", "HEAD")
    if commit is None and os.environ.get("MIDL_GIT_COMMIT"):
        return {"hash": os.environ["MIDL_GIT_COMMIT"], "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    return {"hash": commit, "dirty": None if status is None else bool(status)}


def commit_text(commit: Mapping[str, Any] | str | None) -> str:
    """A commit as reports print it: ``<first 12 hex digits>``, with ``+dirty`` when the
    stamp says the tree had uncommitted changes; ``unknown`` outside a git checkout.

    Args:
        commit: a :func:`git_commit` stamp (``{"hash", "dirty"}``, as run records keep it) or a
            plain hash string (older records), or None.
    """
    if isinstance(commit, Mapping):
        if commit.get("hash") is None:
            return "unknown"
        return str(commit["hash"])[:12] + ("+dirty" if commit.get("dirty") else "")
    return "unknown" if commit is None else str(commit)[:12]


def typed_command(argv: Sequence[str] | None = None) -> str:
    """The command line as the user typed it: ``python -m midl.train -m seed=0,1`` for a
    process whose ``sys.argv[0]`` is the file of a ``midl`` module (what ``python -m`` puts
    there, an absolute path such as ``/home/me/midl/midl/train.py``); any other program is
    named by its file name. Arguments are kept as typed."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    return " ".join([program_name(argv[0]), *argv[1:]])


def program_name(first: str) -> str:
    """``python -m midl.x.y`` for the path of ``midl/x/y.py`` (``__main__.py``: its package),
    else the file's name (``pytest``, ``-c``); a non-path (already ``python -m ...``) is kept."""
    if "/" not in first:
        return first
    parts = Path(first).parts
    if first.endswith(".py") and "midl" in parts:
        module = list(parts[len(parts) - 1 - parts[::-1].index("midl"):])
        module[-1] = module[-1][:-3]
        if module[-1] == "__main__":
            module.pop()
        return "python -m " + ".".join(module)
    return Path(first).name


def hardware_text(info: Mapping[str, Any]) -> str:
    """A :func:`hardware` record as reports print it: ``key=value`` pairs joined by ``, ``."""
    return ", ".join(f"{k}={v}" for k, v in info.items())


def cpu_model() -> str:
    """The CPU's model name (Linux: ``/proc/cpuinfo``'s ``model name``; elsewhere
    ``platform.processor()``), e.g. ``AMD EPYC`` or ``Intel(R) Xeon(R) Platinum 8488C``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, object]:
    """The machine a result was measured on: CPU model and the vector instructions torch uses
    on it (``cpu_isa``, e.g. ``AVX512``), cores, torch threads and any GPU."""
    import torch

    info: dict[str, object] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_isa": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape a result."""
    import lightning
    import torch
    import torchmetrics

    return {"python": platform.python_version(), "torch": torch.__version__,
            "lightning": lightning.__version__, "torchmetrics": torchmetrics.__version__}


# Settings that do not change what a run computes, left out of its configuration hash. Each
# entry removes that key and everything below it (dotted path in the resolved config).
NOT_RESULT_KEYS: tuple[str, ...] = (
    "hydra",                      # launcher, sweeper, folder names, logging of Hydra itself
    "paths",                      # where data, caches and outputs live (see below)
    "logger",                     # where the curves go (CSV, W&B, TensorBoard)
    "extras",                     # printing the config tree before the run
    "tags",                       # free-form labels
    "task_name",                  # names the output folder
    "force",                      # rerun instead of skipping
    "resume",                     # continue from last.ckpt instead of starting afresh
    "optimized_metric",           # what a sweeper reads from the finished record
    "analyses",                   # analyses run after training (they do not change it)
    "scale",                      # its training settings reach data.* and trainer.* through
                                  # interpolations (kept there); the rest tunes analyses
    "compile",                    # nn.Module.compile: the same network, compiled
    "num_threads",                # intra-op threads of the job: the same arithmetic per op
    "model.channels_last",        # memory layout of the CNN's conv stack (NHWC or NCHW): the
                                  # same function, equal to float rounding (test_fast_path);
                                  # the precision it runs in is trainer.precision, kept
    "trainer.accelerator",        # where it runs (cpu | gpu): recorded under "hardware"
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "data.download",              # fetch missing files: the files are the same
    "data.on_device",             # hold the dataset on the GPU: the same batches
    "data.eval_batch_size",       # validation/test batch size: the same predictions
    "callbacks.progress_bar",
    "callbacks.rich_progress_bar",
    "callbacks.preemption",       # saves last.ckpt on SIGTERM
    "callbacks.finite_loss",      # stops a run whose loss is NaN (it then has no result)
    "callbacks.release_memory",   # returns freed CPU memory to the OS: changes no number
    "callbacks.memorization",     # measures the trained model on its training set, in eval
                                  # mode after training (or between epochs): changes nothing
    "regime",                     # the regime's name and per-setting epochs: what it changes
                                  # reaches data.* and trainer.* (kept there), so the default
                                  # regime (standard) leaves every earlier hash as it was
    # checkpoint files (which one is tested is callbacks.model_checkpoint.monitor/mode, kept)
    "callbacks.model_checkpoint._target_",
    "callbacks.model_checkpoint.dirpath",
    "callbacks.model_checkpoint.filename",
    "callbacks.model_checkpoint.save_top_k",
    "callbacks.model_checkpoint.save_last",
    "callbacks.model_checkpoint.auto_insert_metric_name",
)
"""Keys of the resolved config that are not part of a run's result-relevant settings.

Everything else counts, including keys added to the configs later: a new setting makes older
records differ from a new run until it is listed here (only if it cannot change a result).
Paths inside kept values (``trainer.default_root_dir``, ``data.data_dir``) are written relative
to ``paths.*`` (``<paths.output_dir>/checkpoints``), so moving the data or the output folder
does not change the hash, while pointing one setting at another folder does.
"""


# Settings added after records existed, each with the value that reproduces the behaviour from
# before it was added: at that value the key is left out of the hash, as if absent, so earlier
# records keep their hashes; any other value counts like every other setting.
ADDED_AT_DEFAULT: dict[str, Any] = {
    "block.activation": None,     # MIDLayer's phi after the mix (none: Appendix A, as before)
    "data.noisy_val": False,      # validation labels clean, as before
    "block.f2_expansion": 1,      # MIDLayer's F2 hidden width / d (the paper's F2, as before)
    "block.f2_activation": "relu",  # MIDLayer's F2 activation (as before)
}


def _as_container(config: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(config, DictConfig):
        return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
    return copy.deepcopy(dict(config))


def path_prefixes(paths: Any) -> list[tuple[str, str]]:
    """``(folder, "paths.<key>")`` for each ``paths.*`` folder of a resolved config, the
    longest first (a value under two of them is written relative to the innermost)."""
    paths = paths if isinstance(paths, Mapping) else {}
    return sorted(((str(v), f"paths.{k}") for k, v in paths.items()
                   if isinstance(v, str) and v.strip("/.")),
                  key=lambda item: len(item[0]), reverse=True)


def relative_to_paths(value: Any, prefixes: list[tuple[str, str]]) -> Any:
    """``value`` (a config node) with every string that is one of the ``prefixes``' folders
    or lies under it written as ``<paths.key>/rest`` (:func:`path_prefixes`)."""
    if isinstance(value, dict):
        return {k: relative_to_paths(v, prefixes) for k, v in value.items()}
    if isinstance(value, list):
        return [relative_to_paths(v, prefixes) for v in value]
    if isinstance(value, str):
        for prefix, name in prefixes:
            if value == prefix or value.startswith(prefix.rstrip("/") + "/"):
                return f"<{name}>{value[len(prefix.rstrip('/')):]}"
    return value


def result_config(config: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a run that can change its result: the resolved config without
    :data:`NOT_RESULT_KEYS` (and the :data:`ADDED_AT_DEFAULT` keys at their old value), with
    values under a ``paths.*`` folder written relative to it.

    Args:
        config: a composed config (resolved here; every interpolation must resolve) or an
            already resolved one, e.g. the ``config`` of a ``metrics.json`` record.

    Returns:
        A new plain dict (the input is not changed).
    """
    resolved = _as_container(config)
    prefixes = path_prefixes(resolved.get("paths"))
    for key in NOT_RESULT_KEYS:
        *parents, leaf = key.split(".")
        node: Any = resolved
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    for key, default in ADDED_AT_DEFAULT.items():
        *parents, leaf = key.split(".")
        node = resolved
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and node[leaf] == default:
            node.pop(leaf)
    return relative_to_paths(resolved, prefixes)


def config_hash(config: DictConfig | Mapping[str, Any]) -> str:
    """Canonical hash of a run's result-relevant settings (:func:`result_config`): the first
    16 hex digits of the SHA-256 of its JSON with sorted keys. Two runs with the same hash
    were configured alike (seed included); key order and excluded keys do not matter."""
    text = json.dumps(result_config(config), sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


_ABSENT = object()


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def config_differences(old: DictConfig | Mapping[str, Any],
                       new: DictConfig | Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """The result-relevant settings that differ between two configs, as sorted
    ``(dotted key, old value, new value)``; a key missing on one side has the value
    ``"<absent>"`` there."""
    a, b = _flatten(result_config(old)), _flatten(result_config(new))
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, _ABSENT), b.get(key, _ABSENT)
        if va != vb:
            out.append((key, "<absent>" if va is _ABSENT else va,
                        "<absent>" if vb is _ABSENT else vb))
    return out
