"""No file midl reads can run code, and no secret from the environment reaches a run's folder
name, record or logs."""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from conftest import REPO, real_data_dir
from midl.config import run_name
from midl.data.formats import UnsafePickleError, load_cifar_pickle, read_cifar_batch
from midl.runs.secrets import MASK, redact_secrets, secret_values

# ---------------------------------------------------------------- restricted CIFAR unpickler


class _Payload:
    """Pickles as a call to ``os.system(command)``: loading it with ``pickle.load`` runs it."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _cifar_entry(n: int = 4) -> dict:
    """A CIFAR-10 batch as the published files hold it (bytes keys, uint8 rows, int labels)."""
    rng = np.random.default_rng(0)
    return {b"batch_label": b"testing batch 1 of 1", b"labels": [i % 10 for i in range(n)],
            b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


def test_malicious_cifar_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({**_cifar_entry(), b"batch_label": _Payload(f"touch {marker}")},
                           protocol=2)
    pickle.loads(payload)  # the fixture is real: a plain unpickler runs the command
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    path.parent.mkdir()
    path.write_bytes(payload)
    with pytest.raises(UnsafePickleError, match=r"data_batch_1: refused to load: the pickle "
                                                r"asks for (posix|os)\.system"):
        read_cifar_batch(path)
    assert not marker.exists()


@pytest.mark.parametrize("obj, refused", [
    (eval, r"builtins\.eval"),
    (Path("x"), r"pathlib.*Path"),
    (np.array([1, 2], dtype=object), r"array of Python objects"),
    ({b"data": {1, 2}}, r"holds a set"),
])
def test_anything_but_cifar_contents_is_refused(tmp_path, obj, refused):
    path = tmp_path / "test_batch"
    # protocol 4 pickles a set with its own opcodes, so the set reaches the value check
    path.write_bytes(pickle.dumps({b"labels": [0], b"extra": obj}, protocol=4))
    with pytest.raises(UnsafePickleError, match=rf"test_batch: .*{refused}"):
        load_cifar_pickle(path)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("core", ["numpy.core", "numpy._core"])
def test_real_format_cifar_pickle_loads(tmp_path, protocol, core):
    """Both NumPy module spellings (the published Python 2 files name numpy.core.multiarray,
    NumPy >= 2 writes numpy._core) and every protocol NumPy's arrays pickle with."""
    entry = _cifar_entry()
    entry[b"labels"] = [np.int64(v) for v in entry[b"labels"]]  # NumPy scalars, too
    data = pickle.dumps(entry, protocol=protocol)
    if protocol <= 2:  # GLOBAL opcodes name "module\nname\n" as text: rename the module
        data = data.replace(b"numpy._core.", f"{core}.".encode())
        assert f"{core}.multiarray".encode() in data
    elif core == "numpy.core":
        pytest.skip("protocols >= 4 name modules in length-prefixed strings")
    path = tmp_path / "data_batch_1"
    path.write_bytes(data)
    images, labels = read_cifar_batch(path, num_classes=10)
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.uint8
    np.testing.assert_array_equal(images.reshape(4, -1), entry[b"data"])
    assert labels.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("folder, names, label_key, classes", [
    ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
     "labels", 10),
    ("cifar-100-python", ["train", "test"], "fine_labels", 100),
])
def test_real_cifar_files_load_with_the_restricted_unpickler(folder, names, label_key, classes):
    root = real_data_dir() / folder
    if not all((root / n).exists() for n in names):
        pytest.skip(f"real CIFAR files not found under {root}")
    for name in names:
        images, labels = read_cifar_batch(root / name, label_key=label_key,
                                          num_classes=classes)
        assert images.shape[1:] == (3, 32, 32) and len(images) == len(labels) > 0
        assert 0 <= labels.min() and labels.max() < classes


# ---------------------------------------------------------------- no code-running loaders

# (file, call) pairs allowed with the reason. Each must still exist (a stale entry fails).
ALLOWED = {
    ("midl/metrics/memory.py", "pickle.load"):
        "loads the model it pickled itself into a private temporary folder (mode 0700) for "
        "its own measurement subprocess; no outside file is read",
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


PICKLE_MODULES = {"pickle", "marshal", "dill", "cloudpickle", "shelve"}
CODE_RUNNERS = {"eval", "exec", "builtins.eval", "builtins.exec", "__import__"}
UNSAFE_LOADERS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "marshal.load",
                  "marshal.loads", "dill.load", "dill.loads", "cloudpickle.load",
                  "cloudpickle.loads", "shelve.open", "joblib.load", "pd.read_pickle",
                  "pandas.read_pickle", "yaml.unsafe_load", "yaml.full_load"}


def unsafe_calls(source: str) -> list[tuple[int, str]]:
    """(line, what) for each call in ``source`` that can run code from a file or a string."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module in PICKLE_MODULES:
            found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Call) and (problem := _unsafe(node)) is not None:
            found.append((node.lineno, problem))
    return found


def _unsafe(call: ast.Call) -> str | None:
    """What makes ``call`` able to run code (None: it cannot)."""
    name = _dotted(call.func)
    if name in CODE_RUNNERS:
        return f"{name}("
    if name in UNSAFE_LOADERS:
        return name
    if name == "torch.load":
        flag = _keyword(call, "weights_only")
        if not (isinstance(flag, ast.Constant) and flag.value is True):
            return "torch.load without weights_only=True"
    elif name == "yaml.load":
        loader = _keyword(call, "Loader")
        if loader is None and len(call.args) > 1:
            loader = call.args[1]
        if _dotted(loader) not in {"yaml.SafeLoader", "yaml.CSafeLoader"}:
            return "yaml.load without a safe Loader"
    elif name in {"np.load", "numpy.load"}:
        flag = _keyword(call, "allow_pickle")
        if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
            return "np.load with allow_pickle"
    return None


def test_scanner_finds_each_unsafe_call():
    source = "\n".join([
        "import pickle, torch, yaml, numpy as np",
        "pickle.load(f)", "pickle.loads(b)", "torch.load(p)", "torch.load(p, weights_only=False)",
        "yaml.load(s)", "yaml.load(s, Loader=yaml.Loader)", "eval('1')", "exec('x=1')",
        "np.load(p, allow_pickle=True)",
        # safe forms: not reported
        "torch.load(p, map_location='cpu', weights_only=True)",
        "yaml.load(s, Loader=yaml.SafeLoader)", "yaml.safe_load(s)", "model.eval()",
        "np.load(p, mmap_mode='r')",
    ])
    assert [line for line, _ in unsafe_calls(source)] == list(range(2, 11))


def test_package_has_no_code_running_loaders():
    package = REPO / "midl"
    found, seen_allowed = [], set()
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        for line, what in unsafe_calls(path.read_text(encoding="utf-8")):
            if (relative, what) in ALLOWED:
                seen_allowed.add((relative, what))
            else:
                found.append(f"{relative}:{line}: {what}")
    assert not found, "calls that can run code from a file:\n" + "\n".join(found)
    assert seen_allowed == set(ALLOWED), f"stale ALLOWED entries: {set(ALLOWED) - seen_allowed}"


# ---------------------------------------------------------------- secrets


def test_redact_secrets_masks_secret_looking_variables_everywhere():
    env = {"WANDB_API_KEY": "secret123", "HF_TOKEN": "hf_abcdef", "DB_Password": "hunter22",
           "MY_SECRET_X": "s3cr3tvalue", "AWS_SECRET_KEY": "42424242",
           "SHORT_KEY": "1", "HOME": "/home/secret123-user"}
    record = {"foo": "secret123", "cmd": "train +a=secret123 +b=hf_abcdef",
              "nested": [{"p": "hunter22"}, ("s3cr3tvalue", 1)], "n": 42424242,
              "secret123": 1.5, "flag": True, "one": 1, "home": "/home/user"}
    masked = redact_secrets(record, environ=env)
    assert masked == {"foo": MASK, "cmd": f"train +a={MASK} +b={MASK}",
                      "nested": [{"p": MASK}, (MASK, 1)], "n": MASK, MASK: 1.5, "flag": True,
                      "one": 1, "home": "/home/user"}
    assert record["foo"] == "secret123"  # the input is not modified
    # HOME is not secret-looking; the 1-character SHORT_KEY is too short to mask
    assert secret_values(env) == ["s3cr3tvalue", "hf_abcdef", "secret123", "42424242",
                                  "hunter22"]


def test_folder_name_from_typed_overrides_not_resolved(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "secret123")
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "configs")):
        full = compose("train", overrides=["+foo=${oc.env:WANDB_API_KEY}", "seed=3"],
                       return_hydra_config=True)
    assert full.foo == "secret123"  # the config itself still resolves the value
    assert Path(full.hydra.run.dir).name == "+foo=__oc.env:WANDB_API_KEY_,seed=3"
    assert full.hydra.sweep.subdir == "+foo=__oc.env:WANDB_API_KEY_,seed=3"
    assert run_name("+foo=secret123,seed=3") == "+foo=___,seed=3"  # typed literally


def test_secret_never_reaches_folder_name_record_or_logs(tmp_path):
    """The issue's reproduction in a real process: a key interpolated from the environment
    reaches no folder name, record, log or checkpoint; a token typed literally on the command
    line is masked in the folder name and the record (Hydra's ``.hydra/`` keeps the command
    line as typed)."""
    env = {**os.environ, "MIDL_OUTPUT_DIR": str(tmp_path / "out"), "WANDB_API_KEY": "secret123",
           "HF_TOKEN": "typed456xyz"}
    done = subprocess.run(
        [sys.executable, "-m", "midl.train", "+foo=${oc.env:WANDB_API_KEY}", "+bar=typed456xyz",
         "trainer.max_epochs=1", "callbacks.progress_bar.refresh_rate=0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = tmp_path / "out" / "train" / "runs"
    assert [p.name for p in runs.iterdir()] == [
        "+bar=___,+foo=__oc.env:WANDB_API_KEY_,trainer.max_epochs=1"]
    run_dir = next(runs.iterdir())
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["config"]["foo"] == MASK and record["config"]["bar"] == MASK
    assert "typed456xyz" not in json.dumps(record)
    files = list((tmp_path / "out").rglob("*"))
    assert run_dir / "train.log" in files and run_dir / "checkpoints" / "last.ckpt" in files
    for path in files:
        assert "secret123" not in str(path) and "typed456xyz" not in str(path)
        if path.is_file():
            assert b"secret123" not in path.read_bytes(), path
    assert "secret123" not in done.stdout + done.stderr  # the printed config tree too
    assert "typed456xyz" not in done.stdout + done.stderr
