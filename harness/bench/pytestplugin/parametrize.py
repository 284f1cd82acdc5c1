"""Variant parametrization: which variants run, their -k aliases, and one xdist worker per variant.

Tests that take ``variant_id`` are parametrized (session scope) by the ``--variants`` selection, so a
variant's tests run together on one board; under ``-n N`` the scheduler keeps them on one worker.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest

from harness.bench.pytestplugin.state import STASH_STATE, _split, _writable_root, kws_state


def variant_scope(nodeid: str, variant_ids: list[str]) -> str:
    """The variant a test node belongs to (from its ``[...]`` id), else the nodeid itself."""
    if "[" not in nodeid or not nodeid.endswith("]"):
        return nodeid
    param = nodeid[nodeid.index("[") + 1 : -1]
    for v in sorted(variant_ids, key=len, reverse=True):
        if f"-{v}-" in f"-{param}-":
            return f"variant:{v}"
    return nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """One scope per variant, so a variant's tests share one worker and its board.

    xdist's own ``loadgroup`` tags nodeids through ``item._nodeid``, which pytest 9 no longer reads
    (nodeids come from ``Node._id``), so the grouping is done here from the variant in the nodeid."""
    if config.getoption("dist", "no") != "loadgroup" or config.stash.get(STASH_STATE, None) is None:
        return None
    from xdist.scheduler import LoadScopeScheduling

    ids = selected_variant_ids(config)

    class VariantScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return variant_scope(nodeid, ids)

    return VariantScheduling(config, log)


def all_variant_ids(config: pytest.Config) -> list[str]:
    ids = config.getini("kws_variant_ids")
    if ids:
        return list(ids)
    from harness.model import variants  # the compression area's registry (imports torch)

    return list(variants.all_ids())


def selected_variant_ids(config: pytest.Config) -> list[str]:
    """Variant ids chosen by --variants (ids or glob patterns), in registry order."""
    state = kws_state(config)
    if state.variant_ids is not None:
        return state.variant_ids
    universe = all_variant_ids(config)
    patterns = _split(config.getoption("kws_variants"))
    if not patterns:
        chosen = universe
    else:
        for p in patterns:
            if not any(fnmatch.fnmatchcase(v, p) for v in universe):
                raise pytest.UsageError(
                    f"--variants {p!r} matches no variant id; valid ids: {', '.join(universe)}"
                )
        chosen = [v for v in universe if any(fnmatch.fnmatchcase(v, p) for p in patterns)]
    state.variant_ids = chosen
    return chosen


def variant_keywords(variant_id: str) -> list[str]:
    """Readable aliases added to -k matching: ``qat-sym-4`` also matches ``4bit``, ``quant``, ``sym``."""
    parts = variant_id.split("-")
    words = set(parts)
    if parts[0] in ("ptq", "qat") and len(parts) == 3:
        words |= {f"{parts[2]}bit", "quant"}
    if parts[0] in ("struct", "unstruct"):
        words |= {"pruned", f"{parts[2]}pct"} if len(parts) > 2 else {"pruned"}
    if variant_id == "fp32":
        words |= {"float", "float32"}
    return sorted(w for w in words if w)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that takes ``variant_id`` by the selected variants (session scope:
    pytest then runs a variant's tests together, so its board is started once)."""
    if "variant_id" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        if "variant_id" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return  # the test chose its own variants
    ids = selected_variant_ids(metafunc.config)
    metafunc.parametrize("variant_id", ids, ids=ids, scope="session")


@pytest.hookimpl(tryfirst=True)  # before xdist's worker hook reads the xdist_group marks
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash.get(STASH_STATE, None)
    if state is None:
        return
    bench = False
    for item in items:
        callspec = getattr(item, "callspec", None)
        vid = callspec.params.get("variant_id") if callspec else None
        if vid is not None:
            item.extra_keyword_matches.update(variant_keywords(vid))
            item.add_marker(pytest.mark.xdist_group(vid))
            item.add_marker(pytest.mark.kws_variant(vid))
        if "record" in getattr(item, "fixturenames", ()):
            bench = True
    if bench and items and not _writable_root(state.run_dir):
        # checked now, created at the first measurement (so --collect-only leaves nothing behind)
        raise pytest.UsageError(f"results directory {state.run_dir.parent.parent} is not writable")


def pytest_collection_finish(session: pytest.Session) -> None:
    """The plan: which budgeted metrics each selected test is to measure for its variant (from the
    tests' ``kws_metrics`` marks, after -k/--deselect), so a metric that never arrives is a FAIL
    ("not measured"), not a silent PASS. Written to plan.json with the first measurement."""
    state = session.config.stash.get(STASH_STATE, None)
    if state is None:
        return
    plan: dict[str, dict[str, str]] = {}
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        vid = callspec.params.get("variant_id") if callspec else None
        if vid is None:
            continue
        for mark in item.iter_markers("kws_metrics"):
            for metric in mark.args:
                plan.setdefault(vid, {}).setdefault(str(metric), item.nodeid)
    state.plan = plan
