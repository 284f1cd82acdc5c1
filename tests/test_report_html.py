"""The answer-first report (harness.bench.html_report) on small hand-made runs: verdict, order, table."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from harness.bench import compare, history, html_report, results


def _run(path: Path, rows: list[tuple], **meta) -> results.Run:
    store = results.RunStore(path)
    for r in rows:
        store.record(*r)
    store.write_metadata(started="2026-11-05T02:17:00Z", finished="2026-11-05T03:20:30Z", exitstatus=0,
                         git={"sha": "abc1234", "dirty": True},
                         dataset={"id": "synthetic", "hash": "455e3b7e", "test_samples": 1368},
                         versions={"python": "3.11.7", "qemu-system-arm": "QEMU 7.2"}, **meta)
    store.set_device("emu-main", {"board": "emu_m4", "firmware": "0.1.0", "backend": "aot",
                                  "clock_hz": 25000000, "timer_unit": "instructions"})
    return results.load_run(path)


ROWS = [
    ("fp32", "accuracy", 0.94, "", 0.85, True),
    ("fp32", "flash", 36000, "B", 1048576, True),
    ("fp32", "device_network", 697880, "instructions", 8e6, True),
    ("qat-sym-4", "accuracy", 0.80, "", 0.85, False),
    ("qat-sym-4", "flash", 30000, "B", 1048576, True),
    ("qat-sym-4", "device_network", 500000, "instructions", 8e6, True),
    ("ptq-sym-8", "accuracy", 0.93, "", 0.85, True),
    ("ptq-sym-8", "device_network", 600000, "instructions", 8e6, True),
]


def test_failed_budget_makes_fail_and_is_listed_first(tmp_path: Path) -> None:
    run = _run(tmp_path / "runs" / "20261105T021700Z-abc1234", ROWS)
    ans = html_report.answer(run)
    assert ans.verdict == "FAIL" and ans.variants == 3 and ans.checks == 8 and ans.failed_checks == 1
    assert ans.failed_budgets == ["qat-sym-4: accuracy=0.8 (limit 0.85)"]
    md = html_report.render_markdown(run, ans)
    order = [md.index(s) for s in ("**FAIL**", "## Regressions", "## Failed budgets", "## Findings", "## Run",
                                   "## Variants")]
    assert order == sorted(order)
    assert "- git: abc1234 (dirty)" in md and "emu_m4, firmware 0.1.0" in md and "hash 455e3b7e" in md
    assert "- duration: 1 h 3 min 30 s" in md
    assert "| variant | accuracy [%] | flash [KiB] | device net [k instructions] | budgets |" in md
    assert "| qat-sym-4 | **80.0** | 29.3 | 500.0 | FAIL |" in md


def test_pass_partial_and_regressions_worst_first(tmp_path: Path) -> None:
    ok = [r for r in ROWS if r[0] != "qat-sym-4"]
    base = _run(tmp_path / "runs" / "20261104T021700Z-abc1234", ok)
    run = _run(tmp_path / "runs" / "20261105T021700Z-abc1234", ok)
    assert html_report.answer(run).verdict == "PASS"
    worse = [("fp32", "accuracy", 0.92, ""), ("fp32", "device_network", 800000, "instructions"),
             ("ptq-sym-8", "device_network", 640000, "instructions")]
    new = _run(tmp_path / "runs" / "20261106T021700Z-abc1234", ok + worse)
    cmp = compare.compare_runs(base, new)
    ans = html_report.answer(new, cmp)
    assert ans.verdict == "FAIL" and ans.baseline == base.path.name
    # +14.6 % of a 5 % tolerance before -0.02 of 0.01 before +6.7 % of 5 %
    assert [r.split(":")[0] for r in ans.regressions] == ["fp32 device_network", "fp32 accuracy",
                                                          "ptq-sym-8 device_network"]
    partial = _run(tmp_path / "runs" / "20261107T021700Z-abc1234", ok)
    (partial.path / "metadata.json").write_text(
        (partial.path / "metadata.json").read_text().replace('"exitstatus": 0', '"exitstatus": 2'))
    partial = results.load_run(partial.path)
    ans = html_report.answer(partial, drift=history.drift_check(history.load_history(tmp_path)))
    assert ans.verdict == "PARTIAL" and "exit status 2" in ans.partial
    assert ans.drift_note.startswith("drift: not checked")  # a partial run is never the newest compared
    assert "verdict: PARTIAL (partial run: ended with exit status 2" in ans.lines()[0]


def test_html_is_self_contained_sortable_and_highlights_failures(tmp_path: Path) -> None:
    run = _run(tmp_path / "runs" / "20261105T021700Z-abc1234", ROWS)
    fig = tmp_path / "fig.png"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.figure(figsize=(2, 2)).savefig(fig)
    plt.close("all")
    out = html_report.render_html(run, html_report.answer(run), [fig])
    assert "name='viewport'" in out and "<script>" in out and "table.sortable" in out
    srcs = re.findall(r"src='([^']*)'", out)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)  # nothing to fetch
    assert base64.b64decode(srcs[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<th scope='col'>accuracy [%]</th>" in out
    assert "<td class='fail' data-v='0.8'>80.0</td>" in out
    assert out.index("id='verdict'") < out.index("id='regressions'") < out.index("id='failed-budgets'") \
        < out.index("id='metadata'") < out.index("id='table'") < out.index("id='figures'")


def test_findings_from_rows(tmp_path: Path) -> None:
    run = _run(tmp_path / "r", ROWS + [("finding", "qat_beats_ptq", 1.0, "bool"),
                                       ("finding", "prune_cliff", 0.0, "bool")])
    names = {(n, ok) for n, ok, _ in html_report.findings(run)}
    assert names == {("qat_beats_ptq", True), ("prune_cliff", False)}
    md = html_report.render_markdown(run, html_report.answer(run))
    assert "- reproduced: qat_beats_ptq" in md and "- NOT reproduced: prune_cliff" in md


def test_long_lists_fold_after_the_worst_few(tmp_path: Path) -> None:
    rows = [(f"qat-sym-{b}-x{i}", "accuracy", 0.5 + i / 100, "", 0.85, False) for b in (2, 4) for i in range(5)]
    run = _run(tmp_path / "r", rows)
    ans = html_report.answer(run)
    assert ans.failed_checks == 10
    out = html_report.render_html(run, ans)
    section = out[out.index("id='failed-budgets'"):out.index("id='findings'")]
    assert section.count("<li>") == 10 and "<details><summary>5 more</summary>" in section
    assert section.index("<details>") > section.index("<li>")  # the first five stay visible
