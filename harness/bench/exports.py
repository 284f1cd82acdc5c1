"""A run's measurements in the formats of the dashboards teams already use.

- ``bencher``: Bencher Metric Format (BMF) JSON, ``{benchmark: {measure: {value, lower_value?, upper_value?}}}``;
  the benchmark is the variant id, the measure the metric name as a slug (``device-network``). On-device
  time carries the best/worst of its repeats as lower/upper values.
- ``github-action-benchmark``: the ``customSmallerIsBetter`` or ``customBiggerIsBetter`` list of
  ``{name, unit, value, range?, extra?}``; one list holds one direction, so ``direction`` picks it.
- ``junit-properties``: one ``<property name="kws.<variant>.<metric>" value="..."/>`` per metric in the
  ``<properties>`` of the first ``<testsuite>`` of the JUnit XML that ``pytest --junitxml`` wrote.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.bench.compare import METRICS
from harness.bench.report import variant_order
from harness.bench.results import Row, Run
from harness.errors import HarnessError

FORMATS = ("bencher", "github-action-benchmark", "junit-properties")

# Spread of a timed metric: recorded beside it, exported as its bounds rather than as measures of their own.
_BOUNDS = {"device_network": ("device_network_best", "device_network_worst")}
_BOUND_NAMES = {n for pair in _BOUNDS.values() for n in pair}


def bigger_is_better(metric: str) -> bool:
    """Accuracies, exactness and their kin: a drop is bad. Everything else (time, size) grows badly."""
    if metric in METRICS:
        return METRICS[metric][0] == "drop"
    return metric == "exact" or metric.startswith(("accuracy", "device_accuracy", "tflite_accuracy"))


def _rows(run: Run) -> list[tuple[str, str, Row, dict[str, Row]]]:
    out = []
    for variant, metrics in sorted(run.latest().items(), key=lambda kv: variant_order(kv[0])):
        if variant == "finding":  # the paper's findings (pseudo-variant): verdicts, not metrics
            continue
        for metric, r in metrics.items():
            if metric in _BOUND_NAMES or metric.startswith("regression_") or not math.isfinite(r.value):
                continue
            out.append((variant, metric, r, metrics))
    return out


def slug(metric: str) -> str:
    """Bencher measure slugs are lower case with hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", metric.lower()).strip("-")


def to_bencher(run: Run) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for variant, metric, r, metrics in _rows(run):
        m: dict[str, float] = {"value": float(r.value)}
        lo, hi = _BOUNDS.get(metric, (None, None))
        if lo in metrics and hi in metrics and metrics[lo].unit == r.unit and metrics[hi].unit == r.unit:
            m["lower_value"], m["upper_value"] = float(metrics[lo].value), float(metrics[hi].value)
        out.setdefault(variant, {})[slug(metric)] = m
    return out


def to_github_action_benchmark(run: Run, direction: str = "smaller") -> list[dict[str, Any]]:
    """The customSmallerIsBetter (``direction='smaller'``) or customBiggerIsBetter list."""
    if direction not in ("smaller", "bigger"):
        raise HarnessError(f"--direction {direction!r}: expected 'smaller' or 'bigger'")
    git = run.metadata.get("git", {})
    extra = f"run {run.path.name}, commit {git.get('sha', '?')}{' (dirty)' if git.get('dirty') else ''}"
    out: list[dict[str, Any]] = []
    for variant, metric, r, metrics in _rows(run):
        if bigger_is_better(metric) != (direction == "bigger"):
            continue
        item: dict[str, Any] = {"name": f"{variant} {metric}",
                                "unit": r.unit or ("fraction" if direction == "bigger" else "count"),
                                "value": float(r.value)}
        lo, hi = _BOUNDS.get(metric, (None, None))
        if lo in metrics and hi in metrics:
            item["range"] = f"{metrics[lo].value:g} - {metrics[hi].value:g}"
        item["extra"] = extra + (f", test {r.test_id}" if r.test_id else "")
        out.append(item)
    return out


def add_junit_properties(run: Run, junit: Path, out: Path | None = None) -> Path:
    """Add a ``<property>`` per metric to the JUnit XML (in place unless ``out``); earlier kws.* ones are replaced."""
    junit = Path(junit)
    try:
        tree = ET.parse(junit)
    except (OSError, ET.ParseError) as exc:
        raise HarnessError(f"cannot read JUnit XML {junit}: {exc}") from None
    root = tree.getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise HarnessError(f"{junit} holds no <testsuite> (expected the XML of pytest --junitxml)")
    props = suite.find("properties")
    if props is None:
        props = ET.Element("properties")
        suite.insert(0, props)  # the schema wants <properties> before the test cases
    for p in list(props):
        if p.get("name", "").startswith("kws."):
            props.remove(p)
    props.append(ET.Element("property", name="kws.run", value=run.path.name))
    for variant, metric, r, _ in _rows(run):
        props.append(ET.Element("property", name=f"kws.{variant}.{metric}", value=repr(float(r.value))))
        if r.unit:
            props.append(ET.Element("property", name=f"kws.{variant}.{metric}.unit", value=r.unit))
    target = Path(out) if out is not None else junit
    try:
        tree.write(target, encoding="utf-8", xml_declaration=True)
    except OSError as exc:
        raise HarnessError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target
