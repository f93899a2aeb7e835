"""The parts a table is made of (:mod:`midl.reporting.tables` assembles them): how one number is
read from a run (:class:`Extractor`), columns, rows, cells and the notes several tables share.

Units follow the paper: accuracy, F1, ANR, ECE and activation frequency in percent; FLOPs in
millions per sample; latency in ms; memory in MB; SMI in nats; Brier score unitless.

Column definitions (ours):

- ``acc``, ``f1``: ``test/acc``, ``test/f1`` x 100 (F1: macro over classes; the positive class
  ``>50K`` alone for Adult), of the checkpoint each run tests (the best val/acc one);
  ``acc_last``: ``test_last``'s ``test/acc`` x 100, the final weights of the same run;
- ``anr``: the nonzero-gate ANR (``test/anr``: fraction of neurons with alpha_hat != 0, k/d for
  MID-L; 100% for dense blocks); ``anr_tau``: the fraction with alpha_hat > 0.5
  (``test/anr_tau``). The paper does not say which one it prints, so both are compared with it;
- ``flops``: dense FLOPs per sample (``FlopCounterMode``, 2 x MAC); ``flops_cond``: the
  conditional FLOPs a sparse implementation skipping masked work would need;
- ``c10c``: mean accuracy over the CIFAR-10-C corruptions at severity 3
  (``midl.evaluate eval_data=cifar10c`` -> ``cifar10c_severity3.json``);
- latency / memory: ``midl.evaluate analysis=[flops,latency,memory]`` (eval name
  ``efficiency``): median ms per forward pass of the batch on this CPU, peak RSS (MB) of an
  isolated measuring process (it includes the Python and torch runtime, so it is not the
  paper's quantity); GPU columns are ``n/a (no GPU)`` unless the analysis ran on CUDA;
- ``smi``: SMI (nats) between the last-layer embedding and the labels; ``smi_floor``: the same
  estimate with the labels permuted (the estimator's bias floor, mean over permutations);
  ``smi_above``: ``smi`` - ``smi_floor``, the dependence beyond the bias (compare methods by
  this one); ``act_freq``: the mean per-neuron activation frequency x 100
  (``midl.evaluate analysis=[smi]``, eval name ``smi``);
- ``brier``: the Brier score summed over classes (``brier_sum``, 0-2); ``brier_mean``: divided
  by the number of classes, the definition the paper's Table 7 values allow (compared with the
  paper; :mod:`midl.metrics.calibration`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from midl.reporting.runs import Run

CIFAR10C_FILE = "cifar10c_severity3.json"


@dataclass(frozen=True)
class Extractor:
    """How to read one number from a complete run; ``needs`` names the analysis it requires
    (``efficiency``, ``smi``, ``tsne``, ``cifar10c``) or None (the test stage has it).

    ``optional`` names the record sections (top-level keys of ``metrics.json``) that some
    records lack, e.g. ``test_last`` or ``memorization`` in records written before they
    existed: without one of them the value is missing (None). ``fn`` returns None for an
    absent analysis; any other failed lookup (a mistyped key) raises.

    ``of_model_only``: the value depends on the architecture and the input shape alone
    (FLOPs, latency, memory), not on the data the run trained on, so it stays comparable with
    the paper's on a stand-in dataset (:func:`midl.reporting.runs.data_caveat`).

    ``machine``: for a value that measures the machine as much as the model (latency,
    memory), how to name the machine it was measured on (:func:`measured_on`); a table whose
    column holds values of more than one machine says so (:mod:`midl.reporting.render`)."""

    name: str
    fn: Callable[[Run], float | None]
    needs: str | None = None
    optional: tuple[str, ...] = ()
    source: str | None = None  # the record section the value comes from, when one may lack it
    of_model_only: bool = False
    machine: Callable[[Run], str] | None = None

    def lacks(self, run: Run) -> str | None:
        """The record section (``optional`` or ``source``) whose absence leaves this value
        missing for ``run``, or None: the table names such runs in the cell."""
        sections = (*self.optional, *((self.source,) if self.source else ()))
        return next((s for s in sections if s not in run.record), None)

    def __call__(self, run: Run) -> float | None:
        if any(section not in run.record for section in self.optional):
            return None
        value = self.fn(run)
        return None if value is None else float(value)


def _logged(run: Run, key: str) -> float | None:
    """The test stage's ``test/<key>``; None where the stage did not log it (a block or data
    set without that metric). The ``test`` section itself is required."""
    return run.record["test"].get(f"test/{key}")


def test_metric(key: str, factor: float = 1.0) -> Extractor:
    """``metrics.json``'s ``test/<key>`` times ``factor`` (100 for percent)."""
    def read(run: Run) -> float | None:
        value = _logged(run, key)
        return None if value is None else value * factor
    return Extractor(key, read)


def _per_million(key: str) -> Callable[[Run], float | None]:
    def read(run: Run) -> float | None:
        value = _logged(run, key)
        return None if value is None else value / 1e6
    return read


def _c10c(run: Run) -> float | None:
    side = run.side_json(CIFAR10C_FILE)
    return None if side is None else side["accuracy"]["mean"] * 100


def _efficiency(kind: str, batch: int, field_name: str, device: str) -> Callable[[Run], Any]:
    def read(run: Run) -> float | None:
        result = run.analysis("efficiency")
        if result is None:
            return None
        on_cuda = str((result.get("config") or {}).get("device", "cpu")).startswith("cuda")
        if on_cuda != (device == "gpu"):
            return None
        return result[kind][f"batch_{batch}"][field_name]
    return read


def measured_on(run: Run) -> str:
    """The machine ``run``'s efficiency analysis measured on, as tables name it: the GPU's name
    for a CUDA measurement, else the CPU model and the vector instructions torch used on it
    (``AMD EPYC (AVX512)``, from the analysis's ``hardware``); ``unknown machine`` where the
    analysis did not record it (a value of ``run`` exists only after that analysis ran)."""
    result = run.analysis("efficiency") or {}
    hardware = result.get("hardware") or {}
    if str((result.get("config") or {}).get("device", "cpu")).startswith("cuda"):
        return str(hardware.get("gpu") or "unknown GPU")
    model = hardware.get("cpu_model")
    if not model:
        return "unknown machine"
    isa = hardware.get("cpu_isa")
    return f"{model} ({isa})" if isa else str(model)


def _smi_field(name: str) -> Callable[[Run], Any]:
    def read(run: Run) -> float | None:
        result = run.analysis("smi")
        return None if result is None else result["smi"]["embedding"].get(name)
    return read


def _brier_mean(run: Run) -> float | None:
    test = run.record["test"]
    if "test/brier_mean" in test:
        return test["test/brier_mean"]
    # runs tested before brier_mean was logged: brier_sum / C (C from the data module class)
    from hydra.utils import get_class

    try:
        num_classes = get_class(run.record["config"]["data"]["_target_"]).num_classes
    except (ImportError, ValueError, AttributeError):
        return None
    brier = test.get("test/brier")
    return None if brier is None else brier / num_classes


def _act_freq(run: Run) -> float | None:
    result = run.analysis("smi")
    if result is None:
        return None
    freq = result["smi"]["activation_frequency"]
    return 100 * sum(freq) / len(freq)


def _acc_last(run: Run) -> float | None:
    record = run.record
    if "test_last" in record:
        return record["test_last"]["test/acc"] * 100
    if record.get("tested_checkpoint") == "final weights":  # test_ckpt=last: the same
        return record["test"]["test/acc"] * 100
    return None  # recorded before midl.train also tested the final weights


ACC = test_metric("acc", 100)
ACC_LAST = Extractor("acc_last", _acc_last, source="test_last")
F1 = test_metric("f1", 100)
ANR = test_metric("anr", 100)
ANR_TAU = test_metric("anr_tau", 100)
ECE = test_metric("ece", 100)
BRIER = test_metric("brier")
BRIER_MEAN = Extractor("brier_mean", _brier_mean)
FLOPS = Extractor("flops", _per_million("flops"), of_model_only=True)
FLOPS_COND = Extractor("flops_cond", _per_million("flops_conditional"),
                       of_model_only=True)
C10C = Extractor("cifar10c", _c10c, needs="cifar10c")
SMI = Extractor("smi", _smi_field("smi"), needs="smi")
SMI_FLOOR = Extractor("smi_floor", _smi_field("floor"), needs="smi")
SMI_ABOVE = Extractor("smi_above", _smi_field("above_floor"), needs="smi")
ACT_FREQ = Extractor("act_freq", _act_freq, needs="smi")
ECE_LAST = Extractor("ece_last", lambda r: r.record["test_last"]["test/ece"] * 100,
                     optional=("test_last",))
# the final weights' training accuracy on the flipped labels (midl.metrics.memorization)
MEMORIZED = Extractor("memorized", lambda r: r.record["memorization"]["memorized"] * 100,
                      optional=("memorization",))


def _fall(run: Run) -> float | None:
    """Best clean validation accuracy minus the final weights' test accuracy (points): a large
    fall is the signature of a network that memorized its noisy labels after its best epoch
    (configs/regime/memorize.yaml's rule: 10 points). None where the best checkpoint was
    chosen on noisy validation labels (its accuracy is not a clean one)."""
    last = _acc_last(run)
    if last is None or run.record["config"]["data"].get("noisy_val"):
        return None
    return run.record["best_val"]["val/acc"] * 100 - last


FALL = Extractor("fall", _fall, source="test_last")


def latency(batch: int, device: str = "cpu") -> Extractor:
    """Median latency (ms) of a forward pass of ``batch`` inputs on ``device`` (cpu | gpu)."""
    return Extractor(f"latency_{device}_b{batch}",
                     _efficiency("latency", batch, "median_ms", device), needs="efficiency",
                     of_model_only=True, machine=measured_on)


def memory(batch: int) -> Extractor:
    """Peak inference memory (MB) at ``batch`` (CPU: peak RSS of the measuring process)."""
    return Extractor(f"memory_b{batch}", _efficiency("memory", batch, "peak_mb", "cpu"),
                     needs="efficiency", of_model_only=True, machine=measured_on)


@dataclass(frozen=True)
class Column:
    """One measured column: header, unit, the paper's field (None: the paper has none) and how
    to read ours (None: not measurable here, shown as ``na``); ``noise`` replaces the row's
    label-noise rate for this column (e.g. the 20% noise column)."""

    key: str
    label: str
    unit: str
    paper_field: str | None
    value: Extractor | None
    noise: float | None = None
    na: str = "n/a"
    digits: int = 1


@dataclass(frozen=True)
class Cell:
    """A row-specific replacement of a column: another noise rate and/or extractor, or a
    fixed note (``value=None``)."""

    value: Extractor | None
    noise: float | None = None
    na: str = "n/a"


@dataclass(frozen=True)
class Row:
    """One row: the runs it aggregates (setting, block, noise) and its paper row (matched by
    ``paper_match`` in the paper table's list; None: the paper has no such row)."""

    label: str
    setting: str
    block: str
    paper_match: dict[str, Any] | None
    noise: float = 0.0
    cells: dict[str, Cell] = field(default_factory=dict)
    note: str = ""
    regime: str = "standard"    # configs/regime/: how the row's runs were trained
    tuning: str = "none"        # configs/tuning/: the paper's hyperparameters or a winner's


@dataclass(frozen=True)
class TableSpec:
    """A paper table: its paper key in ``results/paper_reference.yaml``, rows and columns."""

    name: str
    title: str
    paper_key: str | None
    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    notes: tuple[str, ...] = ()


GPU_NA = "n/a (no GPU)"
CPU_MEM_NOTE = ("Memory: peak RSS of an isolated CPU process running the forward pass "
                "(includes the Python/torch runtime); the paper does not say how or where it "
                "measured memory, so the difference is not a like-for-like comparison.")
ANR_NOTE = ("ANR: `anr` is the nonzero-gate ANR (k/d = 50% for MID-L with top-k 50%), "
            "`anr_tau` the fraction of gates above 0.5; the paper's 41.8% (top-k 50%) cannot be "
            "the first, so both are compared with it. Blocks without a learned gate report "
            "their nonzero-gate ANR in both columns (midl.metrics.anr): dense layers and "
            "fixed_alpha 100% (fixed_alpha's gate is 0.5 on every neuron), random_topk 50% "
            "(gate 0.5 on its k kept neurons); a gate of exactly 0.5 is not above 0.5, so a "
            "strict threshold would count none of their neurons.")

def noise_note(columns: str = "The noise columns test", last: str = "columns") -> str:
    """The label-noise note of a table whose noise columns test the best checkpoint and whose
    'last epoch' column(s) the final weights (Tables 3, 11 and 8)."""
    return ("Label noise: only the training labels are flipped (symmetric, to another class); "
            f"the validation and test labels stay clean. {columns} the checkpoint of best "
            "clean validation accuracy (early stopping on clean labels), the 'last epoch' "
            f"{last} the final weights of the same runs (`test_last` of the record). The "
            "paper does not say which it tests, so both are compared with its number.")


NOISE_NOTE = noise_note()
