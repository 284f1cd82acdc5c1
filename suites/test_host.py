"""Host side: accuracy per class (PyTorch and the exported int8 model), batch-1 CPU and GPU latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness.data.dataset import CLASSES
from harness.model import evaluate, stats
from harness.device import reference


@pytest.mark.kws_metrics("accuracy", *[f"accuracy_{c}" for c in CLASSES])
def test_accuracy(variant_id: str, host_model: Any, test_set: tuple[np.ndarray, np.ndarray], record: Any) -> None:
    """Test-split accuracy, overall and per class, of the variant's PyTorch model."""
    x, y = test_set
    result = evaluate.evaluate(host_model, x, y)
    record(variant_id, "accuracy", result.accuracy)
    for c in result.per_class():
        if c["samples"]:
            record(variant_id, f"accuracy_{c['class']}", c["accuracy"])
    record.assert_budgets()


@pytest.mark.kws_metrics("tflite_accuracy")
def test_tflite_accuracy(variant_id: str, tflite_path: Path, test_set: tuple[np.ndarray, np.ndarray], record: Any) -> None:
    """Accuracy of the exported int8 .tflite under the TFLM reference kernels (what the board runs)."""
    x, y = test_set
    result = evaluate.evaluate(lambda xs: reference.predict(tflite_path, xs), x, y)
    record(variant_id, "tflite_accuracy", result.accuracy)
    record.assert_budgets()


def _timed(model: Any, x: torch.Tensor, sync: Any = None) -> Any:
    def run() -> Any:
        with torch.inference_mode():
            out = model(x)
        if sync:
            sync()
        return out
    return run


def _benchmark(request: pytest.FixtureRequest) -> Any:
    """pytest-benchmark's fixture, or None when the plugin is not loaded (``-p no:benchmark``)."""
    if not request.config.pluginmanager.hasplugin("benchmark"):
        return None
    return request.getfixturevalue("benchmark")


@pytest.mark.kws_metrics("host_latency_cpu")
def test_host_cpu_latency(variant_id: str, variant: Any, record: Any, request: pytest.FixtureRequest) -> None:
    """Batch-1 CPU latency (pytest-benchmark, one thread), median in ms; the paper's is 2.010 ms.
    Without pytest-benchmark (``-p no:benchmark``, ``--benchmark-disable``, xdist) the library's own
    measurement (``stats.host_latency``) gives the same median."""
    model = variant.plain_model().eval()
    x = torch.randn(1, 49, 40)
    benchmark = _benchmark(request)
    if benchmark is None or benchmark.disabled:  # xdist: pytest-benchmark turns itself off there
        median_ms = stats.host_latency(model, "cpu", repeats=100, warmup=10, threads=1)["median_ms"]
    else:
        benchmark.extra_info["variant"] = variant_id
        benchmark.pedantic(_timed(model, x), rounds=100, warmup_rounds=10, iterations=1)
        median_ms = benchmark.stats.stats.median * 1e3
    record(variant_id, "host_latency_cpu", median_ms, "ms")
    record.assert_budgets()


@pytest.mark.kws_metrics("host_latency_gpu")
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this host (torch.cuda.is_available() is False)")
def test_host_gpu_latency(variant_id: str, variant: Any, record: Any) -> None:
    """Batch-1 GPU latency (the paper: 34 us on a T4), median in ms."""
    lat = stats.host_latency(variant.plain_model(), "cuda", repeats=200, warmup=20)
    record(variant_id, "host_latency_gpu", lat["median_ms"], "ms")
    record.assert_budgets()
