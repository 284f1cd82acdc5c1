"""The plugin's infrastructure fixtures (the suites' own chain lives in suites/conftest.py).

``pytest --fixtures suites/`` lists them with these docstrings.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.bench.pytestplugin.recording import Recorder, open_store
from harness.bench.pytestplugin.state import KwsState, kws_state


@pytest.fixture(scope="session")
def kws(request: pytest.FixtureRequest) -> KwsState:
    """The plugin's resolved state: this worker's device, run folder, budgets, baseline."""
    return kws_state(request.config)


@pytest.fixture(scope="session")
def budgets(kws: KwsState) -> Any:
    """The loaded budgets (harness.bench.budgets.Budgets); an empty set when no file exists."""
    if kws.budgets is None:
        from harness.bench.budgets import Budgets

        kws.budgets = Budgets(path=None)
    return kws.budgets


@pytest.fixture(scope="session")
def results_store(kws: KwsState) -> Any:
    """This process's harness.bench.results.RunStore (created on first use)."""
    return open_store(kws)


@pytest.fixture
def record(request: pytest.FixtureRequest, kws: KwsState) -> Recorder:
    """Append a measurement to the run store at once and check it against the budgets."""
    return Recorder(kws, request.node.nodeid, request.node.user_properties)


@pytest.fixture(scope="session")
def device_spec(kws: KwsState) -> str:
    """This worker's board: 'emu', 'auto', a serial port or a pyserial URL."""
    return kws.device
