"""Regression against a baseline run (``--baseline last|PATH``), per variant, with the tolerances
of the budgets file's [regression] section. Runs after the variant's other tests (same session
parameter, later module), so it sees everything this run measured for the variant."""

from __future__ import annotations

from typing import Any

import pytest

from harness.bench import compare, results


def test_no_regression(variant_id: str, kws: Any, budgets: Any, record: Any) -> None:
    if kws.baseline is None:
        pytest.skip("no baseline given (use --baseline last or --baseline PATH)")
    base = results.load_run(kws.baseline)
    if variant_id not in base.variants:
        pytest.skip(f"{variant_id} is not in baseline {kws.baseline} (reported in the session summary)")
    current = results.load_run(kws.run_dir)
    if variant_id not in current.variants:
        pytest.skip(f"{variant_id}: nothing measured in this run to compare")
    # only what this run's selected tests were to measure can be missing (-k host measures no device metric)
    cmp = compare.compare_runs(base, current, budgets.regression, variants=[variant_id], planned=current.plan)
    for d in cmp.diffs:
        if d.ok is not None and d.kind != "missing":  # a missing metric already fails the variant ("not measured")
            record(variant_id, f"regression_{d.metric}", d.change, "abs" if d.kind == "drop" else "rel",
                   limit=d.tolerance, passed=d.ok)
    if not cmp.ok:
        pytest.fail(f"regression vs {kws.baseline.name}: " + "; ".join(d.describe() for d in cmp.regressions),
                    pytrace=False)
