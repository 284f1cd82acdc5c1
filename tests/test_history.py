"""Nightly history on five nights (tests/nights.py: two real emulated-board runs, three derived copies
with an injected 1 %/night flash drift and an 8 % device_network step, one partial run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.bench import compare, history, results
from harness.cli import main
from harness.errors import HarnessError

pytestmark = [pytest.mark.slow, pytest.mark.device]

TOL = {"accuracy_drop": 0.01, "latency_growth": 0.05, "host_latency_growth": 0.5, "size_growth": 0.02}


def test_table_has_every_run_and_marks_the_partial_one(nights) -> None:
    df = history.load_history(nights.root)
    runs = history.runs_table(df)
    assert runs["run"].tolist() == sorted([p.name for p in nights.runs] + [nights.partial.name])
    part = runs[runs["partial"]]
    assert part["run"].tolist() == [nights.partial.name]
    assert "did not finish" in part["partial_reason"].iloc[0]
    assert set(df["variant"]) == {"fp32"}
    assert {"flash", "device_network", "device_accuracy", "exact"} <= set(df["metric"])
    assert {b.split()[0] for b in df["board"]} == {"emu_m4"}  # board and firmware version from its HELLO
    # filters
    since = history.load_history(nights.root, since="2026-11-04")
    assert sorted(set(since["run"])) == [nights.runs[3].name, nights.runs[4].name]
    only = history.load_history(nights.root, metrics=["device_*"])
    assert set(only["metric"]) <= {m for m in df["metric"] if m.startswith("device_")}
    with pytest.raises(HarnessError, match="match variants qat-"):
        history.load_history(nights.root, variants=["qat-*"])
    with pytest.raises(HarnessError, match="--since 'yesterday-ish' is not a date"):
        history.load_history(nights.root, since="yesterday-ish")


def test_drift_check_fires_on_a_slow_drift_that_night_to_night_misses(nights) -> None:
    # night to night: flash never grows by more than 2 % (1 % per night)
    loaded = [results.load_run(p) for p in nights.runs]
    for a, b in zip(loaded, loaded[1:]):
        cmp = compare.compare_runs(a, b, TOL)
        assert not [d for d in cmp.regressions if d.metric == "flash"], cmp.summary()
    # newest vs median of the four nights before it: +2.5 % > 2 %
    report = history.drift_check(history.load_history(nights.root), window=7, tolerances=TOL)
    assert report.newest == nights.runs[-1].name
    assert report.reference_runs == [p.name for p in nights.runs[:-1]]  # the partial run is never a reference
    assert report.skipped_partial == [nights.partial.name]
    flash = [d for d in report.regressions if d.metric == "flash"]
    assert len(flash) == 1 and flash[0].slow and flash[0].last_ok
    assert flash[0].change == pytest.approx(1.01 ** 4 / ((1.01 + 1.01 ** 2) / 2) - 1, rel=1e-6)
    assert [d.metric for d in report.missed_by_last_night] == ["flash"]
    # the step is beyond tolerance too, but night to night saw it (not a slow drift)
    net = [d for d in report.regressions if d.metric == "device_network"]
    assert len(net) == 1 and not net[0].slow
    # unchanged values are within tolerance
    assert all(d.ok for d in report.drifts if d.metric in ("ram", "exact", "params"))
    # a window of one run is the night-to-night comparison: the slow drift is missed
    one = history.drift_check(history.load_history(nights.root), window=1, tolerances=TOL)
    assert not [d for d in one.regressions if d.metric == "flash"]


def test_step_changes_mark_the_injected_changes(nights) -> None:
    steps = history.step_changes(history.load_history(nights.root), TOL)
    budget = [s for s in steps if s.kind == "budget"]
    value = [s for s in steps if s.kind == "value"]
    # night 2 ran with device_network_max lowered from 8M to 4M
    assert [(s.run, s.metric, s.before, s.after) for s in budget] == [
        (nights.runs[1].name, "device_network", 8e6, 4e6)]
    # night 4: device_network +8 %; the partial run between 3 and 4 (halved) makes no step
    network = [s for s in value if s.metric == "device_network"]
    assert [s.run for s in network] == [nights.runs[3].name]
    assert network[0].change == pytest.approx(0.08)
    # night 2 measured 16 device samples instead of 8: only metrics computed over those samples may step
    # there (whether they do depends on the data set); nothing else steps anywhere
    others = [s for s in value if s.metric != "device_network"]
    assert all(s.run == nights.runs[1].name and s.metric in ("device_accuracy", "exact_fraction") for s in others), \
        [(s.run, s.metric) for s in others]


def test_history_command_draws_trends_and_marks_changes(nights, tmp_path: Path) -> None:
    out = tmp_path / "hist"
    rc = main(["history", str(nights.root), "--out", str(out), "--window", "7"])
    assert rc == 1  # a drift beyond tolerance
    page = (out / "history.html").read_text()
    assert "fp32 flash" in page and "slow drift" in page and nights.partial.name in page
    for metric in ("flash", "device_network", "exact"):
        assert (out / f"history_{metric}.png").stat().st_size > 5000
        assert (out / f"history_{metric}.svg").exists()
    svg = (out / "history_device_network.svg").read_text()
    assert "step fp32" in svg and "budget fp32" in svg  # the dashed markers' labels
    sha = results.load_run(nights.runs[0]).metadata["git"]["sha"]
    titles = re.findall(r"<title>([^<]*)</title>", svg)
    assert any(f"commit {sha}" in t and nights.runs[0].name in t for t in titles)  # hover text per point
    assert any("partial:" in t for t in titles)
    assert "<svg" in page and page.count("<figure") >= 10  # inline, so hover works offline
    csv = (out / "history.csv").read_text().splitlines()
    assert csv[0].startswith("run,time,sha,dirty,partial")


def test_history_command_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["history", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no runs found under") and "\n" not in err
