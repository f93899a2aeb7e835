"""Find the runs of sweep folders and read what they produced.

A run folder is any folder below a sweep directory holding ``.hydra/overrides.yaml`` (Hydra
writes it when a job starts). Its status is

- ``complete``: ``metrics.json`` with a ``test`` entry exists (the run finished and tested);
- ``failed``: ``error.txt`` exists and no complete ``metrics.json`` (``midl.train`` writes the
  traceback there);
- ``incomplete``: neither (interrupted, or still running).

A run is identified by its :class:`RunKey`: the setting (``+experiment/setting``), the block,
the label-noise rate, the seed and the scale, read from Hydra's record of the job
(``.hydra/hydra.yaml`` choices and ``.hydra/overrides.yaml``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class RunKey:
    """What identifies a run inside a table: ``(setting, block, noise, seed, scale)``."""

    setting: str
    block: str
    noise: float
    seed: int
    scale: str | None


@dataclass
class Run:
    """One run folder: its key, status, ``metrics.json`` record and side files."""

    path: Path
    key: RunKey
    status: str
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def side_json(self, name: str) -> dict[str, Any] | None:
        """A JSON file next to ``metrics.json`` (e.g. ``cifar10c_severity3.json``), or None."""
        path = self.path / name
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def analysis(self, eval_name: str) -> dict[str, Any] | None:
        """``metrics.json``'s ``analysis.<eval_name>`` (written by ``midl.evaluate``), or None."""
        return (self.record.get("analysis") or {}).get(eval_name)


def _overrides(path: Path) -> dict[str, str]:
    items = yaml.safe_load((path / ".hydra" / "overrides.yaml").read_text()) or []
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def _choices(path: Path) -> dict[str, Any]:
    hydra_yaml = path / ".hydra" / "hydra.yaml"
    if not hydra_yaml.exists():
        return {}
    text = hydra_yaml.read_text()
    # hydra.yaml is large; the choices block is all we need
    start = text.find("    choices:\n")
    if start < 0:
        return {}
    lines = []
    for line in text[start:].splitlines()[1:]:
        if not line.startswith("      "):
            break
        lines.append(line.strip())
    return yaml.safe_load("\n".join(lines)) or {}


def read_run(path: Path) -> Run | None:
    """Read one run folder; None if it is not a run of a table sweep (no setting/seed)."""
    try:
        overrides = _overrides(path)
    except (OSError, yaml.YAMLError):
        return None
    choices = _choices(path)
    setting = choices.get("experiment/setting") or overrides.get("experiment/setting")
    if setting is None or "seed" not in overrides:
        return None
    block = choices.get("block") or overrides.get("block", "midl")
    noise = float(overrides.get("data.label_noise", 0.0))
    scale = choices.get("scale") or overrides.get("scale")
    key = RunKey(str(setting), str(block), noise, int(overrides["seed"]), scale)
    record: dict[str, Any] = {}
    status = "incomplete"
    metrics = path / "metrics.json"
    if metrics.exists():
        try:
            record = json.loads(metrics.read_text())
        except (OSError, json.JSONDecodeError):
            record = {}
    if record.get("test"):
        status = "complete"
    elif (path / "error.txt").exists():
        status = "failed"
    return Run(path, key, status, record)


def collect_runs(sweep_dirs: list[str | Path]) -> list[Run]:
    """Every table run below the given folders (searched recursively), sorted by path.

    Raises:
        FileNotFoundError: if a given folder does not exist.
    """
    runs = []
    seen = set()
    for sweep_dir in sweep_dirs:
        root = Path(sweep_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"sweep folder not found: {root}")
        for overrides in sorted(root.rglob(".hydra/overrides.yaml")):
            path = overrides.parent.parent.resolve()
            if path in seen:
                continue
            seen.add(path)
            run = read_run(path)
            if run is not None:
                runs.append(run)
    return sorted(runs, key=lambda r: str(r.path))
