"""The results store seen from a test: ``record`` appends a row at once and checks its budget.

A row is on disk before the test can fail, so a run killed or failed halfway keeps what it measured.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from harness.bench.pytestplugin.state import KwsState
from harness.errors import HarnessError


def check_baseline(state: KwsState) -> None:
    from harness.bench.results import FINDING, load_run

    base = load_run(state.baseline)
    have = set(base.variants)
    common = [v for v in state.variant_ids or [] if v in have]
    if not common and FINDING not in have:  # a findings-only run is a baseline for the findings
        raise HarnessError(
            f"baseline {state.baseline} has none of the selected variants "
            f"({', '.join(state.variant_ids[:5])}{' ...' if len(state.variant_ids) > 5 else ''}); "
            f"it has: {', '.join(sorted(have)[:8]) or 'nothing'}"
        )


def open_store(state: KwsState) -> Any:
    if state.store is None:
        from harness.bench.results import RunStore

        state.store = RunStore(state.run_dir, writer=state.worker)
        state.store.set_where(device=state.device)  # the board fixture adds place/exporter/serial
        meta = state.run_dir / "metadata.json"
        if not meta.exists():
            from harness.bench.results import run_metadata

            extra: dict[str, Any] = {"devices_requested": state.devices}
            if state.baseline is not None:
                extra["baseline"] = str(state.baseline)
                if state.notes:
                    extra["baseline_notes"] = list(state.notes)
            state.store.write_metadata(**run_metadata(state.budgets, **extra))
        if state.plan:
            from harness.cache import atomic_write_json

            os.chmod(atomic_write_json(state.run_dir / "plan.json", state.plan), 0o644)
    return state.store


class Recorder:
    """``record(variant, metric, value, unit, limit=None, passed=None)``: append a row now.

    Without an explicit limit/passed, the budgets file decides. Call ``assert_budgets()`` at the end
    of a test so every value is on disk before the test fails on the first one over budget.
    """

    def __init__(self, state: KwsState, test_id: str, properties: list | None = None):
        self.state = state
        self.test_id = test_id
        self.properties = properties if properties is not None else []  # JUnit XML <property> rows
        self.failures: list[str] = []
        self.rows: list[Any] = []

    def __call__(self, variant: str, metric: str, value: float, unit: str = "",
                 limit: float | None = None, passed: bool | None = None) -> Any:
        store = open_store(self.state)
        message = None
        if limit is None and passed is None and self.state.budgets is not None:
            check = self.state.budgets.check(variant, metric, float(value))
            if check.key is not None:
                limit = float(check.limit) if not isinstance(check.limit, bool) else float(check.limit)
                passed = check.passed
                message = check.message(unit)
        elif passed is False:
            message = f"{variant}: {metric} = {float(value):.6g} {unit} fails (limit {limit})"
        row = store.record(variant, metric, value, unit, limit, passed, self.test_id)
        self.state.recorded += 1
        self.state.measured[(variant, metric)] = row
        self.properties.append((metric, f"{row.value:.6g}{(' ' + unit) if unit else ''}"))
        self.rows.append(row)
        if passed is False and message:
            self.failures.append(message)
        return row

    def assert_budgets(self) -> None:
        if self.failures:
            pytest.fail("over budget: " + "; ".join(self.failures), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """In benchmark tests (those using ``record``), a HarnessError (board stopped answering, bad frame)
    fails the test with its one line instead of a library traceback."""
    try:
        return (yield)
    except HarnessError as exc:
        if "record" not in getattr(item, "fixturenames", ()):
            raise
        message = str(exc)
    pytest.fail(message, pytrace=False)


def _message(report: pytest.TestReport) -> str:
    """The first line of what made a test fail or skip (no traceback)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (file, line, reason)
        text = str(longrepr[2])
    else:
        crash = getattr(longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(longrepr or "")
    text = text.removeprefix("Skipped: ").removeprefix("Failed: ")
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line[:300]


class OutcomeLog:
    """Registered by pytest_configure in the main process (or the xdist controller): keeps each
    benchmark test's outcome beside the rows (outcomes.jsonl), so a metric that was never measured
    can be explained ("not measured: test_x failed: board stopped answering")."""

    def __init__(self, state: KwsState):
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown" or (report.when == "setup" and report.passed):
            return
        if "kws_variant" not in report.keywords:
            return
        outcome = report.outcome if report.when == "call" else ("error" if report.failed else report.outcome)
        from harness.bench.results import utc_now

        try:
            open_store(self.state).append_json("outcomes", {
                "nodeid": report.nodeid, "when": report.when, "outcome": outcome,
                "message": "" if report.passed else _message(report), "timestamp": utc_now()})
        except HarnessError as exc:
            self.state.notes.append(f"outcomes not kept: {exc}")
