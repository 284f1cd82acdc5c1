"""The end-of-run table: read back from disk (all workers' rows), printed once by the controller."""

from __future__ import annotations

import io
from typing import Any

import pytest

from harness.bench.pytestplugin.state import STASH_STATE, KwsState
from harness.errors import HarnessError


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remember whether the session stopped before every test ran (-x, --maxfail): such a run is partial."""
    state = session.config.stash.get(STASH_STATE, None)
    if state is not None and (session.shouldfail or session.shouldstop):
        state.stopped_early = str(session.shouldfail or session.shouldstop)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print the run's table (one row per variant) from what is on disk, all workers included."""
    state = config.stash.get(STASH_STATE, None)
    if state is None or getattr(config, "workerinput", None) is not None:
        return
    if not (state.run_dir.is_dir() and any(state.run_dir.glob("measurements*.csv"))):
        return
    from harness.bench.report import verdict_line, failures_text, findings_table, rich_table, run_verdict
    from harness.bench.results import RunStore, load_run, utc_now

    try:
        store = state.store or RunStore(state.run_dir)
        end: dict[str, Any] = {"finished": utc_now(), "exitstatus": int(exitstatus)}
        if state.stopped_early:
            end["stopped_early"] = state.stopped_early
        store.write_metadata(**end)
        run = load_run(state.run_dir)
    except HarnessError as exc:
        terminalreporter.write_line(f"kws-harness: {exc}", red=True)
        return
    from rich.console import Console

    buf = io.StringIO()
    tty = terminalreporter.hasmarkup
    width = getattr(terminalreporter._tw, "fullwidth", 120) if tty else 200  # logs: never squeeze the table
    console = Console(file=buf, width=width, force_terminal=tty,
                      color_system="standard" if terminalreporter.hasmarkup else None)
    console.print(rich_table(run))
    from rich.markup import escape  # test ids hold [brackets], which rich would read as markup

    for line in failures_text(run):
        console.print(f"failed: {escape(line)}", soft_wrap=True)
    found = findings_table(run)
    if found is not None:
        console.print(found)
    if state.baseline is not None:
        _baseline_summary(state, run, console)
    for note in state.notes:
        console.print(f"note: {escape(note)}", soft_wrap=True)
    console.print(verdict_line(run_verdict(run)), soft_wrap=True)
    console.print(f"results: {state.run_dir}", soft_wrap=True)
    console.print(f"report:  python -m harness report {state.run_dir}", soft_wrap=True)
    terminalreporter.section("kws-harness results", sep="=")
    terminalreporter.write(buf.getvalue())


def _baseline_summary(state: KwsState, run: Any, console: Any) -> None:
    """The regressions of this run against the baseline (all variants), and the variants it lacks."""
    from harness.bench.compare import compare_runs
    from harness.bench.results import load_run

    try:
        base = load_run(state.baseline)
        tolerances = state.budgets.regression if state.budgets is not None else None
        cmp = compare_runs(base, run, tolerances, variants=run.variants, planned=run.plan if run.plan else None)
    except HarnessError as exc:
        state.notes.append(f"baseline: {exc}")
        return
    if cmp.regressions:
        console.print(_regression_table(cmp))
    console.print(f"baseline {state.baseline.name}: {len(cmp.regressions)} regression(s) in "
                  f"{len(cmp.diffs)} compared values", soft_wrap=True)
    if cmp.only_in_new:
        state.notes.append(f"not in baseline {state.baseline.name} (not compared): {', '.join(cmp.only_in_new)}")


def _regression_table(cmp: Any) -> Any:
    from rich.table import Table

    table = Table(title="Regressions against the baseline", title_justify="left")
    for col in ("variant", "metric", "baseline", "now", "change", "allowed"):
        table.add_column(col, no_wrap=True)
    for d in cmp.regressions:
        change = f"{d.change:+.4f}" if d.kind == "drop" else f"{d.change:+.1%}"
        allowed = f"-{d.tolerance:.4f}" if d.kind == "drop" else f"+{d.tolerance:.1%}"
        table.add_row(d.variant, d.metric, f"{d.base:.6g}", f"{d.new:.6g} {d.unit}".strip(), change, allowed)
    return table
