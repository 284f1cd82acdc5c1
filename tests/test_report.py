"""Report tables (terminal, Markdown, HTML, JSON), the compare diff logic, and the two CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.bench import compare, html_report, report, results
from harness.figures import run as figure_run
from harness.cli import main
from harness.errors import HarnessError


def _markdown(run: results.Run) -> str:
    return html_report.render_markdown(run, html_report.answer(run))


def _html(run: results.Run) -> str:
    return html_report.render_html(run, html_report.answer(run))


def _run(path: Path, rows: list[tuple]) -> results.Run:
    store = results.RunStore(path)
    for r in rows:
        store.record(*r)
    return results.load_run(path)


BASE = [
    ("fp32", "accuracy", 0.94, "", 0.9, True),
    ("fp32", "flash", 40000, "B", 1048576, True),
    ("fp32", "device_network", 700000, "instructions"),
    ("fp32", "host_latency_cpu", 0.2, "ms"),
    ("fp32", "exact", 1.0, "bool", 1.0, True),
    ("qat-sym-4", "accuracy", 0.90, ""),
    ("qat-sym-4", "device_network", 650000, "instructions"),
]


def test_compare_flags_drop_and_growth_beyond_tolerance(tmp_path: Path) -> None:
    base = _run(tmp_path / "base", BASE)
    new = _run(tmp_path / "new", [
        ("fp32", "accuracy", 0.935, ""),                       # -0.005: within 0.01
        ("fp32", "flash", 41000, "B"),                         # +2.5 %: over 2 %
        ("fp32", "device_network", 720000, "instructions"),    # +2.9 %: within 5 %
        ("fp32", "host_latency_cpu", 0.25, "ms"),              # +25 %: within 50 %
        ("fp32", "exact", 0.0, "bool"),                        # lost exactness
        ("qat-sym-4", "accuracy", 0.85, ""),                   # -0.05: over
        ("qat-sym-4", "device_network", 650000, "cycles"),     # other unit: fails, not comparable
        ("ptq-sym-8", "accuracy", 0.93, ""),                   # not in baseline
    ])
    cmp = compare.compare_runs(base, new, {"size_growth": 0.02, "accuracy_drop": 0.01})
    bad = {(d.variant, d.metric) for d in cmp.regressions}
    assert bad == {("fp32", "flash"), ("fp32", "exact"), ("qat-sym-4", "accuracy"), ("qat-sym-4", "device_network")}
    assert not cmp.ok
    assert cmp.only_in_new == ["ptq-sym-8"]
    units = [d for d in cmp.regressions if "units differ" in d.note]
    assert len(units) == 1 and "650000 cycles" in units[0].describe()
    s = cmp.summary()
    assert "4 regression(s)" in s and "not in baseline: ptq-sym-8" in s and "qat-sym-4 accuracy" in s
    # a looser tolerance lets the same numbers pass
    loose = compare.compare_runs(base, new, {"size_growth": 0.05, "accuracy_drop": 0.1}, variants=["fp32"])
    assert {(d.variant, d.metric) for d in loose.regressions} == {("fp32", "exact")}


def test_compare_fails_on_metrics_missing_from_the_new_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = _run(tmp_path / "base", BASE)
    # the board died: fp32 has no exact, no device_network in the new run
    new = _run(tmp_path / "new", [r for r in BASE if r[1] not in ("exact", "device_network") or r[0] != "fp32"])
    cmp = compare.compare_runs(base, new)
    assert {(d.variant, d.metric) for d in cmp.missing} == {("fp32", "exact"), ("fp32", "device_network")}
    assert not cmp.ok and "not measured in the new run" in cmp.summary()
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "new")]) == 1
    out = capsys.readouterr()
    assert "NOT MEASURED" in out.out and "2 not measured in the new run" in out.err
    assert json.loads(json.dumps(cmp.to_json()))["ok"] is False  # NaN written as null


def test_compare_flags_a_finding_that_stopped_reproducing(tmp_path: Path) -> None:
    results.RunStore(tmp_path / "base").record_finding("qat_beats_ptq[sym]", True, "QAT 0.9 vs PTQ 0.5")
    results.RunStore(tmp_path / "base").record("fp32", "accuracy", 0.9)
    results.RunStore(tmp_path / "new").record_finding("qat_beats_ptq[sym]", False, "QAT 0.4 vs PTQ 0.5")
    results.RunStore(tmp_path / "new").record("fp32", "accuracy", 0.9)
    cmp = compare.compare_runs(results.load_run(tmp_path / "base"), results.load_run(tmp_path / "new"))
    assert [(d.variant, d.metric) for d in cmp.regressions] == [("finding", "qat_beats_ptq[sym]")]
    assert "finding" not in cmp.only_in_new


def test_compare_baseline_with_other_variants_is_an_error(tmp_path: Path) -> None:
    base = _run(tmp_path / "base", [("fp32", "accuracy", 0.9, "")])
    new = _run(tmp_path / "new", [("qat-sym-2", "accuracy", 0.5, "")])
    with pytest.raises(HarnessError, match="has none of the variants"):
        compare.compare_runs(base, new)


def test_report_table_markdown_html_json(tmp_path: Path) -> None:
    run = _run(tmp_path / "r", BASE + [("qat-sym-4", "flash_estimate", 5000, "B"),
                                       ("qat-sym-4", "accuracy_yes", 0.5, "", 0.8, False)])
    rows = {r["variant"]: r for r in report.summary_rows(run)}
    assert rows["fp32"]["verdict"] == "PASS" and rows["qat-sym-4"]["verdict"] == "FAIL"
    assert rows["fp32"]["cells"]["flash"] == "39.1 KiB"
    assert rows["qat-sym-4"]["cells"]["flash"] == "~4.9 KiB"  # an estimate, marked
    assert rows["fp32"]["cells"]["device net"] == "700.0 k instr"
    assert "accuracy_yes=0.5" in rows["qat-sym-4"]["failed"][0]
    from rich.console import Console

    console = Console(record=True, width=160)
    report.print_table(run, console)
    text = console.export_text()
    assert "fp32" in text and "PASS" in text and "FAIL" in text and "94.0 %" in text
    md = _markdown(run)
    assert "| fp32 |" in md and "## Failed budgets" in md and "accuracy_yes=0.5" in md
    html = _html(run)
    assert "<table" in html and "qat-sym-4" in html
    written = html_report.write_reports(run)
    assert {p.name for p in written} == {"report.md", "report.html", "summary.json"}
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["variants"][0]["variant"] == "fp32"


def test_cli_report_and_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "results"
    a = root / "runs" / "20260101T000000Z-aaa"
    b = root / "runs" / "20260102T000000Z-bbb"
    _run(a, BASE)
    _run(b, [(v, m, val * (1.2 if m == "device_network" else 1.0), *rest) for v, m, val, *rest in BASE])
    assert main(["report", str(root), "--json", "--no-plots"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run"] == str(b) and (b / "report.md").exists()
    assert main(["compare", str(a), str(b)]) == 1
    out = capsys.readouterr()
    assert "REGRESSION" in out.out and "device_network" in out.out and "regression" in out.err
    assert main(["compare", str(a), str(a), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main(["report", str(b), "--baseline", "last", "--no-write"]) == 1
    assert main(["compare", str(tmp_path / "nope"), str(b)]) == 2
    assert "no runs found" in capsys.readouterr().err


def test_report_draws_the_compression_figures_from_the_run(tmp_path: Path) -> None:
    pytest.importorskip("harness.figures.compression")
    rows = [("fp32", "accuracy", 0.94, "")]
    for bits in (2, 4, 8):
        rows += [(f"qat-sym-{bits}", "accuracy", 0.9 - 0.01 * (8 - bits), ""),
                 (f"ptq-sym-{bits}", "accuracy", 0.9 - 0.05 * (8 - bits), "")]
    for pct in (10, 40, 70):
        v = f"struct-l1-{pct}-ft"
        rows += [(v, "accuracy", 0.9, ""), (v, "nonzero_params", 16652 * (1 - pct / 100), ""),
                 (v, "flops", 672004 * (1 - pct / 100), ""), (v, "host_latency_cpu", 0.2, "ms"),
                 (v, "device_network", 800000 * (1 - pct / 100), "instructions")]
    run = _run(tmp_path / "r", rows)
    written = {p.name for p in html_report.write_reports(run, figures=figure_run.draw)}
    assert {"fig08_quant_sym.png", "fig10_struct_params.png", "fig12b_struct_mcu.png"} <= written
    assert (run.path / "figures" / "fig12b_struct_mcu.png").stat().st_size > 1000


def _planned_run(path: Path, finished: bool = True, exitstatus: int = 1) -> results.Run:
    """A run as the plugin leaves it when the board died during fp32's device tests: the plan says
    which test measures which budgeted metric, outcomes.jsonl says how each test ended."""
    from harness.bench import budgets

    b = budgets.loads('[budget."*"]\naccuracy_min = 0.8\nexact = true\ndevice_accuracy_min = 0.8\n\n'
                      '[budget."ptq-*-2"]\nreport_only = true\n')
    store = results.RunStore(path)
    store.write_metadata(**results.run_metadata(b))
    dev = "suites/test_device.py::test_device_accuracy_and_exactness"
    plan = {v: {"accuracy": f"suites/test_host.py::test_accuracy[{v}]", "exact": f"{dev}[{v}]",
                "device_accuracy": f"{dev}[{v}]"} for v in ("fp32", "qat-sym-4", "ptq-sym-2")}
    (path / "plan.json").write_text(json.dumps(plan))
    for v, acc in (("fp32", 0.9), ("qat-sym-4", 0.85), ("ptq-sym-2", 0.3)):
        store.record(v, "accuracy", acc, "", *((0.8, acc >= 0.8) if v != "ptq-sym-2" else ()))
        store.append_json("outcomes", {"nodeid": plan[v]["accuracy"], "outcome": "passed", "timestamp": results.utc_now()})
    store.append_json("outcomes", {"nodeid": f"{dev}[fp32]", "outcome": "failed", "timestamp": results.utc_now(),
                                   "message": "device emu-main: board stopped answering (HELLO timed out)"})
    for v in ("qat-sym-4", "ptq-sym-2"):
        store.record(v, "device_accuracy", 0.9, "", 0.8, True)
        store.record(v, "exact", 1.0, "bool", 1.0, True)
    if finished:
        store.write_metadata(finished=results.utc_now(), exitstatus=exitstatus)
    return results.load_run(path)


def test_a_budgeted_metric_never_measured_fails_the_variant(tmp_path: Path) -> None:
    run = _planned_run(tmp_path / "r")
    rows = {r["variant"]: r for r in report.summary_rows(run)}
    assert rows["fp32"]["verdict"] == "FAIL"  # accuracy held, but exact and device_accuracy never came
    assert set(rows["fp32"]["not_measured"]) == {"exact", "device_accuracy"}
    assert "board stopped answering" in rows["fp32"]["not_measured"]["exact"]
    assert rows["qat-sym-4"]["verdict"] == "PASS"
    assert rows["ptq-sym-2"]["verdict"] == "data point"  # report_only: never PASS, its floor not checked
    md = _markdown(run)
    assert "exact: not measured: test_device_accuracy_and_exactness[fp32] failed: device emu-main: board stopped" in md
    assert "| ptq-sym-2 |" in md and "data point" in md and "# kws-harness run r: **FAIL**" in md
    summary = report.to_json(run)
    assert summary["verdict"] == "FAIL" and summary["partial"] is False
    assert json.loads(json.dumps(summary, default=str))["variants"][0]["verdict"] == "FAIL"


def test_a_run_that_did_not_finish_is_partial_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "results" / "runs"
    done = root / "20260101T000000Z-aaa"
    _run(done, BASE)
    results.RunStore(done).write_metadata(started="x", finished="y", exitstatus=0)
    killed = root / "20260102T000000Z-bbb"
    run = _planned_run(killed, finished=False)
    assert run.status()[0] and "did not finish" in run.status()[1]
    v = report.run_verdict(run)
    assert v["partial"] and v["verdict"] == "FAIL"  # fp32 has metrics never measured
    assert "Partial run: did not finish" in _markdown(run)
    # a run interrupted by SIGTERM (exit status 2) is partial too; the next run's --baseline last passes over both
    interrupted = root / "20260103T000000Z-ccc"
    _run(interrupted, BASE)
    results.RunStore(interrupted).write_metadata(started="x", finished="y", exitstatus=2)
    assert "interrupted" in results.load_run(interrupted).status()[1]
    notes: list[str] = []
    assert results.baseline_run("last", root / "20260104T000000Z-ddd", notes=notes) == done
    assert "passed over partial run(s) 20260103T000000Z-ccc" in notes[0] and "took 20260101T000000Z-aaa" in notes[0]
    assert main(["report", str(interrupted), "--no-write"]) == 1  # nothing failed, but a partial run passes nothing
    out = capsys.readouterr().out
    assert "verdict: PARTIAL" in out
    summary = json.loads((html_report.write_reports(results.load_run(interrupted))[2]).read_text())
    assert summary["verdict"] == "PARTIAL" and summary["partial"] is True
    assert main(["report", str(done), "--no-write"]) == 0


def test_table_shows_parameters_and_non_zero_apart_and_the_findings(tmp_path: Path) -> None:
    store = results.RunStore(tmp_path / "r")
    store.record("fp32", "params", 16652)
    store.record("fp32", "nonzero_params", 16652)
    store.record("unstruct-l1-70-ft", "params", 16652)
    store.record("unstruct-l1-70-ft", "nonzero_params", 4996)
    store.record_finding("with_finetuning_70[struct]", False, "fine-tuned 70%-pruned model is 26.5 pts below fp32")
    store.record_finding("with_finetuning_70[unstruct]", True, "fp32 90.8%, 70% pruned fine-tuned 86.7%")
    run = results.load_run(tmp_path / "r")
    rows = {r["variant"]: r for r in report.summary_rows(run)}
    assert "finding" not in rows
    assert rows["unstruct-l1-70-ft"]["cells"]["params"] == "16.7 k" and rows["unstruct-l1-70-ft"]["cells"]["non-zero"] == "4996"
    assert rows["fp32"]["cells"]["non-zero"] == ""  # no zeros: nothing to say
    md = _markdown(run)
    assert "- NOT reproduced: with_finetuning_70[struct] (fine-tuned 70%-pruned model is 26.5 pts below fp32)" in md
    assert "- reproduced: with_finetuning_70[unstruct] (fp32 90.8%, 70% pruned fine-tuned 86.7%)" in md
    from rich.console import Console

    console = Console(record=True, width=200)
    report.print_table(run, console)
    text = console.export_text()
    assert "non-zero" in text and "not reproduced" in text and "The paper's findings on this data" in text


def test_compare_ignores_what_the_new_run_never_planned_to_measure(tmp_path: Path) -> None:
    base = _run(tmp_path / "base", BASE)
    new = _run(tmp_path / "new", [r for r in BASE if r[1] in ("accuracy", "host_latency_cpu")])  # -k host
    plan = {"fp32": {"accuracy": "t::a[fp32]", "host_latency_cpu": "t::c[fp32]"}, "qat-sym-4": {"accuracy": "t::a"}}
    assert compare.compare_runs(base, new, planned=plan).ok
    plan["fp32"]["exact"] = "t::d[fp32]"  # planned and missing: that fails
    assert [(d.variant, d.metric) for d in compare.compare_runs(base, new, planned=plan).regressions] == [("fp32", "exact")]


def test_compare_with_a_budgets_file_that_is_not_utf8_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(tmp_path / "a", BASE)
    _run(tmp_path / "b", BASE)
    bad = tmp_path / "budgets.toml"
    bad.write_bytes(b"[regression]\naccuracy_drop = 0.01 # \xff\n")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--budgets", str(bad)]) == 2  # an error, not "regression"
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "budgets.toml:2: not UTF-8 text (byte 0xff" in err and len(err.splitlines()) == 1


def test_html_report_carries_the_verdict(tmp_path: Path) -> None:
    run = _planned_run(tmp_path / "r", finished=False)
    html = _html(run)
    assert "kws-harness r: FAIL" in html and "did not finish" in html
