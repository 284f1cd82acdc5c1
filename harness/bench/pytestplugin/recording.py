"""The results store seen from a test: ``record`` appends a row at once and checks its budget.

A row is on disk before the test can fail, so a run killed or failed halfway keeps what it measured.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.bench.pytestplugin.state import KwsState
from harness.errors import HarnessError


def check_baseline(state: KwsState) -> None:
    from harness.bench.results import load_run

    base = load_run(state.baseline)
    have = set(base.variants)
    common = [v for v in state.variant_ids or [] if v in have]
    if not common:
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
            state.store.write_metadata(**run_metadata(state.budgets, **extra))
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
