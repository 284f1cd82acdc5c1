"""History on hand-made run folders (fast): partial rules, unreadable runs, units, the drift window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.bench import history, results
from harness.cli import main
from harness.errors import HarnessError


def _night(root: Path, day: int, flash: float, net: float = 700000, unit: str = "instructions", **meta) -> Path:
    path = root / "runs" / f"202611{day:02d}T021700Z-abc{day:04d}"
    store = results.RunStore(path)
    store.record("fp32", "flash", flash, "B", 1048576, True)
    store.record("fp32", "device_network", net, unit)
    store.record("fp32", "regression_flash", 0.01, "rel")  # derived by --baseline: not history
    fields = {"started": f"2026-11-{day:02d}T02:17:00Z", "finished": f"2026-11-{day:02d}T02:30:00Z",
              "exitstatus": 0, "git": {"sha": f"abc{day:04d}", "dirty": False}}
    fields.update(meta)
    store.write_metadata(**{k: v for k, v in fields.items() if v is not None})
    return path


def test_partial_rules(tmp_path: Path) -> None:
    done = results.load_run(_night(tmp_path, 1, 100))
    assert history.partial_reason(done) == ""
    assert history.partial_reason(results.load_run(_night(tmp_path, 2, 100, exitstatus=1))) == ""  # failed tests
    assert "exit status 2" in history.partial_reason(results.load_run(_night(tmp_path, 3, 100, exitstatus=2)))
    assert "did not finish" in history.partial_reason(results.load_run(_night(tmp_path, 4, 100, finished=None)))
    assert "stopped early" in history.partial_reason(results.load_run(_night(tmp_path, 5, 100, stopped_early="-x")))
    # rows without metadata (imported) are not judged
    bare = tmp_path / "bare"
    results.write_rows(bare, [results.Row("fp32", "flash", 1.0, "B")])
    assert history.partial_reason(results.load_run(bare)) == ""


def test_window_median_and_unreadable_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # ten nights of +1 %: the window decides how far back the reference sits
    for day in range(1, 11):
        _night(tmp_path, day, 10000 * 1.01 ** (day - 1))
    broken = _night(tmp_path, 11, 1)
    (broken / "metadata.json").write_text("{not json")
    df = history.load_history(tmp_path)
    assert len(df.attrs["skipped"]) == 1 and broken.name in df.attrs["skipped"][0]
    assert not df["metric"].str.startswith("regression_").any()
    tol = {"size_growth": 0.02}
    for window, fires in [(1, False), (2, False), (3, True), (9, True)]:
        rep = history.drift_check(df, window=window, tolerances=tol)
        flash = [d for d in rep.drifts if d.metric == "flash"][0]
        assert len(rep.reference_runs) == window
        # median of the `window` nights before night 10 lags (window + 1) / 2 nights behind it
        assert flash.change == pytest.approx(1.01 ** ((window + 1) / 2) - 1, abs=2e-4)
        assert (not flash.ok) == fires, (window, flash.describe())
    assert main(["history", str(tmp_path), "--no-plots", "--window", "9"]) == 1
    out = capsys.readouterr().out
    assert f"skipped {broken.name}: cannot read" in out and "slow drift" in out
    assert main(["history", str(tmp_path), "--no-plots", "--window", "0"]) == 2
    assert "--window 0: must be at least 1 run" in capsys.readouterr().err


def test_units_are_never_mixed(tmp_path: Path) -> None:
    _night(tmp_path, 1, 100, net=700000)
    _night(tmp_path, 2, 100, net=700000)
    _night(tmp_path, 3, 100, net=9000000, unit="cycles")  # a real board that night
    df = history.load_history(tmp_path)
    rep = history.drift_check(df, tolerances={})
    assert not [d for d in rep.drifts if d.metric == "device_network"]  # nothing in cycles to compare with
    assert not [s for s in history.step_changes(df) if s.metric == "device_network"]
    from harness.figures import history as fig

    png, svg = fig.draw_metric(df, history.runs_table(df), "device_network", tmp_path / "f", rep, [])
    text = svg.read_text()
    assert "fp32 (cycles)" in text and "fp32 (instructions)" in text


def test_since_and_filters(tmp_path: Path) -> None:
    for day in (1, 2, 3):
        _night(tmp_path, day, 100)
    assert sorted(set(history.load_history(tmp_path, since="2026-11-02")["run"])) == [
        "20261102T021700Z-abc0002", "20261103T021700Z-abc0003"]
    assert set(history.load_history(tmp_path, metrics=["fla*"])["metric"]) == {"flash"}
    with pytest.raises(HarnessError, match="no measurements under .* match since 2027-01-01"):
        history.load_history(tmp_path, since="2027-01-01")
    assert json.loads(json.dumps(history.drift_check(history.load_history(tmp_path)).to_json()))["newest"] \
        == "20261103T021700Z-abc0003"


def test_many_variants_make_small_multiples(tmp_path: Path) -> None:
    ids = ["fp32"] + [f"{m}-{s}-{b}" for m in ("ptq", "qat") for s in ("sym", "asym") for b in (2, 4, 8)]
    for day in (1, 2):
        store = results.RunStore(tmp_path / "runs" / f"202611{day:02d}T021700Z-abc")
        for i, v in enumerate(ids):
            store.record(v, "accuracy", 0.5 + i / 100)
        store.write_metadata(started=f"2026-11-{day:02d}T02:17:00Z", finished=f"2026-11-{day:02d}T02:40:00Z",
                             exitstatus=0)
    from harness.figures import history as fig

    df = history.load_history(tmp_path)
    assert len(ids) > fig.MAX_LINES
    _, svg = fig.draw_metric(df, history.runs_table(df), "accuracy", tmp_path / "f", None, [])
    text = svg.read_text()
    for panel in ("fp32", "ptq-sym-*", "ptq-asym-*", "qat-sym-*", "qat-asym-*"):
        assert f">{panel}<" in text, panel  # one titled panel per family
    small = df[df["variant"].isin(ids[:3])]
    _, svg = fig.draw_metric(small, history.runs_table(small), "accuracy", tmp_path / "g", None, [])
    assert ">ptq-sym-*<" not in svg.read_text()  # a few variants share one panel
