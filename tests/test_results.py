"""Results store: rows appended at once, whole rows only, survive a crash; metadata; run lookup."""

from __future__ import annotations

import csv
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from harness.bench import results
from harness.errors import HarnessError


def test_record_appends_and_reads_back(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r1"
    store = results.RunStore(run_dir)
    store.record("fp32", "accuracy", 0.93, "", limit=0.9, passed=True, test_id="t::a")
    # on disk before anything else happens (no buffering until the end of the session)
    with open(store.csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["variant"] == "fp32" and rows[0]["pass"] == "true" and float(rows[0]["limit"]) == 0.9
    store.record("fp32", "flash", 20480, "B")
    worker = results.RunStore(run_dir, writer="gw1")
    worker.record("qat-sym-4", "accuracy", 0.5, "", limit=0.9, passed=False)
    run = results.load_run(run_dir)
    assert [r.metric for r in run.rows] == ["accuracy", "flash", "accuracy"]
    assert run.variants == ["fp32", "qat-sym-4"]
    latest = run.latest()
    assert latest["qat-sym-4"]["accuracy"].passed is False
    assert latest["fp32"]["flash"].unit == "B" and latest["fp32"]["flash"].passed is None


def _crashing_child(run_dir: str) -> None:
    store = results.RunStore(Path(run_dir))
    for i in range(5):
        store.record("fp32", f"m{i}", i, "")
    os._exit(3)  # dies without any cleanup, like a killed process


def test_rows_survive_a_crash_mid_run(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_crashing_child, args=(str(tmp_path),))
    p.start()
    p.join(30)
    assert p.exitcode == 3
    run = results.load_run(tmp_path)
    assert [r.value for r in run.rows] == [0, 1, 2, 3, 4]


def test_survives_an_exception_and_a_torn_last_line(tmp_path: Path) -> None:
    store = results.RunStore(tmp_path)
    with pytest.raises(RuntimeError):
        store.record("fp32", "accuracy", 0.9)
        raise RuntimeError("board died")
    with open(store.csv_path, "a") as f:
        f.write("fp32,flash,")  # a row cut in half by a power loss
    run = results.load_run(tmp_path)
    assert [(r.metric, r.value) for r in run.rows] == [("accuracy", 0.9)]


def test_metadata_merge_and_devices(tmp_path: Path) -> None:
    store = results.RunStore(tmp_path)
    store.write_metadata(**results.run_metadata(None, dataset={"id": "synthetic", "hash": "abc"}))
    store.write_metadata(finished="now")
    store.set_device("emu-gw0", {"firmware": "1.0", "timer_unit": "instructions"})
    store.record("fp32", "accuracy", 0.9)
    run = results.load_run(tmp_path)
    meta = run.metadata
    assert meta["dataset"]["hash"] == "abc" and meta["finished"] == "now"
    assert meta["versions"]["python"] and "torch" in meta["versions"] and "qemu-system-arm" in meta["versions"]
    assert meta["git"]["sha"]
    assert meta["devices"]["emu-gw0"]["timer_unit"] == "instructions"
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temp files


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_not_writable_is_one_clear_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(HarnessError, match="not writable"):
            results.RunStore(ro / "runs" / "x")
    finally:
        ro.chmod(0o755)


def test_not_writable_when_path_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(HarnessError, match=r"results directory .*file/run is not writable"):
        results.RunStore(f / "run")


def test_run_lookup_and_baseline(tmp_path: Path) -> None:
    a = results.new_run_dir(tmp_path, sha="aaa")
    results.RunStore(a).record("fp32", "accuracy", 0.9)
    b = a.with_name(a.name.replace("aaa", "bbb").replace("T", "U", 1))  # sorts after a
    results.RunStore(b).record("fp32", "accuracy", 0.91)
    assert results.list_runs(tmp_path) == [a, b]
    assert results.resolve_run(tmp_path) == b
    assert results.resolve_run(a) == a
    assert results.baseline_run("last", b) == a
    with pytest.raises(HarnessError, match="no earlier run"):
        results.baseline_run("last", a)
    with pytest.raises(HarnessError, match="does not exist"):
        results.baseline_run(str(tmp_path / "missing"), b)
    with pytest.raises(HarnessError, match="no runs found"):
        results.resolve_run(tmp_path / "runs" / "nothing-here")
    with pytest.raises(HarnessError, match="no measurements"):
        (tmp_path / "empty").mkdir()
        results.load_run(tmp_path / "empty")


def test_rows_say_where_they_were_measured_and_old_runs_still_load(tmp_path: Path) -> None:
    store = results.RunStore(tmp_path / "new")
    store.set_where(device="labgrid:emu-1")
    store.record("fp32", "accuracy", 0.9)  # host metric before the board is up: only the worker's device
    store.set_device("labgrid:emu-1", {"board": "emu_m4", "place": "emu-1", "exporter": "exp-a",
                                       "exporter_host": "lab-a", "board_serial": "ABC123"})
    store.record("fp32", "device_network", 697880, "instructions")
    rows = {r.metric: r for r in results.load_run(tmp_path / "new").rows}
    assert (rows["accuracy"].device, rows["accuracy"].place) == ("labgrid:emu-1", "")
    r = rows["device_network"]
    assert (r.device, r.place, r.exporter, r.exporter_host, r.board_serial) == (
        "labgrid:emu-1", "emu-1", "exp-a", "lab-a", "ABC123")
    header = (tmp_path / "new" / "measurements.csv").read_text().splitlines()[0]
    assert header == ",".join(results.COLUMNS) and header.startswith("variant,metric,value,unit,limit,pass,test_id,timestamp,")
    old = tmp_path / "old"
    old.mkdir()
    (old / "measurements.csv").write_text("variant,metric,value,unit,limit,pass,test_id,timestamp\n"
                                          "fp32,flash,35248.0,B,,,t,2026-01-01T00:00:00.000000Z\n")
    (row,) = results.load_run(old).rows
    assert row.value == 35248.0 and row.place == "" and row.board_serial == ""
