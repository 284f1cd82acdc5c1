"""The kws-harness pytest plugin (loaded by the root conftest.py as ``harness.bench.pytestplugin``).

Only re-exports: options.py (options and their validation), parametrize.py (variants, xdist
scheduling), recording.py (the ``record`` store and the HarnessError -> one-line failure hook),
fixtures.py (kws, budgets, results_store, record, device_spec), terminal.py (the end-of-run table),
state.py (what was resolved). Importing it stays cheap: standard library, pytest and the floor only;
budgets, results, report and torch are imported when first needed.
"""

from harness.bench.pytestplugin.fixtures import budgets, device_spec, kws, record, results_store
from harness.bench.pytestplugin.options import pytest_addoption, pytest_configure, pytest_configure_node
from harness.bench.pytestplugin.parametrize import (pytest_collection_finish, pytest_collection_modifyitems,
                                                    pytest_generate_tests,
                                                    pytest_xdist_make_scheduler, selected_variant_ids,
                                                    variant_keywords, variant_scope)
from harness.bench.pytestplugin.recording import Recorder, pytest_runtest_call
from harness.bench.pytestplugin.state import STASH_STATE, KwsState, kws_state
from harness.bench.pytestplugin.terminal import pytest_sessionfinish, pytest_terminal_summary

__all__ = [
    "KwsState", "Recorder", "STASH_STATE", "budgets", "device_spec", "kws", "kws_state", "pytest_addoption",
    "pytest_collection_finish", "pytest_collection_modifyitems", "pytest_configure", "pytest_configure_node", "pytest_generate_tests",
    "pytest_runtest_call", "pytest_sessionfinish", "pytest_terminal_summary", "pytest_xdist_make_scheduler", "record", "results_store",
    "selected_variant_ids", "variant_keywords", "variant_scope",
]
