"""``python -m midl.timing``: a table's models timed in interleaved sessions on real CIFAR-10
images, the file the claims audit reads, and its refusal to replace a result silently."""

from __future__ import annotations

import json

import pytest

from conftest import require_real
from midl import timing
from midl.metrics import interleaved
from midl.reporting.tables import TABLES


def test_batch_sizes_are_the_tables_latency_columns():
    for table, batch in timing.BATCH_SIZES.items():
        column = next(c for c in TABLES[table].columns if c.key == "latency_cpu")
        assert column.value.name == f"latency_cpu_b{batch}"


def test_unknown_table_is_refused():
    with pytest.raises(interleaved.SessionsError, match="unknown table 'table3'"):
        timing.table_models("table3", "smoke", [0])


def test_sessions_of_table10_on_real_images(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MIDL_DATA_DIR", str(require_real("cifar-10-batches-py")))
    assert timing.main(["--scale", "smoke", "--tables", "table10", "--sessions", "5",
                        "--out", str(tmp_path)]) == 0
    path = tmp_path / "smoke" / interleaved.FILE
    record = interleaved.load_sessions(path)
    table = record["tables"]["table10"]
    assert table["batch_size"] == 1 and table["models"] == ["dropout/seed=0", "midl/seed=0"]
    orders = [s["order"] for s in table["sessions"]]
    assert orders == [["dropout/seed=0", "midl/seed=0"], ["midl/seed=0", "dropout/seed=0"]] * 2 \
        + [["dropout/seed=0", "midl/seed=0"]]
    # medians in ms for one image (no bound on the ratio: a machine busy with other jobs
    # times noisily, and speed targets live in `make bench`)
    medians = [s["median_ms"] for s in table["sessions"]]
    assert all(0 < ms < 1000 for m in medians for ms in m.values())
    assert interleaved.arm_ratios(table, "midl", "dropout") == pytest.approx(
        [m["midl/seed=0"] / m["dropout/seed=0"] for m in medians])
    assert table["hardware"]["cpu_count"] and table["commit"]["hash"] is not None
    assert str(tmp_path) not in json.dumps(record)  # no path of this machine in the result
    assert timing.main(["--scale", "smoke", "--tables", "table10", "--out",
                        str(tmp_path)]) == 2  # exists: refused without --force
    assert "pass --force" in capsys.readouterr().err
    # --update replaces the given tables' sessions and keeps the others
    record["tables"]["table5"] = {"kept": True}
    path.write_text(json.dumps(record))
    assert timing.main(["--scale", "smoke", "--tables", "table10", "--sessions", "5",
                        "--out", str(tmp_path), "--update"]) == 0
    updated = interleaved.load_sessions(path)["tables"]
    assert updated["table5"] == {"kept": True}
    assert updated["table10"]["sessions"] != table["sessions"]
