"""Model budgets: parameters, FLOPs, flash and RAM estimates of each variant (no board needed)."""

from __future__ import annotations

from typing import Any

import pytest

from harness.model import stats


@pytest.mark.kws_metrics("params", "nonzero_params", "flops", "flash_estimate", "ram_estimate")
def test_model_budgets(variant_id: str, variant: Any, record: Any) -> None:
    """Counts at the variant's own bit width (pruned channels removed, zeros counted apart)."""
    s = stats.model_stats(variant.plain_model(), bits=variant.spec.bits)
    record(variant_id, "params", s["parameters"])
    record(variant_id, "nonzero_params", s["nonzero_parameters"])
    record(variant_id, "flops", s["flops"])
    record(variant_id, "flash_estimate", s["flash_bytes"], "B")
    record(variant_id, "ram_estimate", s["ram_bytes"], "B")
    assert s["nonzero_parameters"] <= s["parameters"]
    record.assert_budgets()
