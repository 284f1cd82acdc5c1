"""export-metrics: each format checked against its documented shape with a small schema checker.

Shapes (from the tools' documentation):
- Bencher Metric Format: {"<benchmark name>": {"<measure slug>": {"value": float, "lower_value"?: float,
  "upper_value"?: float}}}
- github-action-benchmark customSmallerIsBetter / customBiggerIsBetter:
  [{"name": str, "unit": str, "value": number, "range"?: str, "extra"?: str}]
- JUnit XML: <testsuite><properties><property name=".." value=".."/>...</properties><testcase/>...
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.bench import exports, results
from harness.cli import main
from harness.errors import HarnessError

NUMBER = {"type": "number"}
STRING = {"type": "string"}

BMF = {"type": "object", "additionalProperties": {
    "type": "object", "additionalProperties": {
        "type": "object", "required": ["value"], "additionalProperties": False,
        "properties": {"value": NUMBER, "lower_value": NUMBER, "upper_value": NUMBER}}}}

GAB = {"type": "array", "items": {
    "type": "object", "required": ["name", "unit", "value"], "additionalProperties": False,
    "properties": {"name": STRING, "unit": STRING, "value": NUMBER, "range": STRING, "extra": STRING}}}


def check(schema: dict[str, Any], value: Any, where: str = "$") -> None:
    """A JSON-schema subset: type (object/array/number/string), properties, required, additionalProperties, items."""
    t = schema["type"]
    if t == "object":
        assert isinstance(value, dict), f"{where}: expected an object"
        for key in schema.get("required", []):
            assert key in value, f"{where}: missing {key!r}"
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, v in value.items():
            assert isinstance(key, str) and key, f"{where}: bad key {key!r}"
            if key in props:
                check(props[key], v, f"{where}.{key}")
            elif extra is False:
                raise AssertionError(f"{where}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                check(extra, v, f"{where}.{key}")
    elif t == "array":
        assert isinstance(value, list), f"{where}: expected an array"
        for i, v in enumerate(value):
            check(schema["items"], v, f"{where}[{i}]")
    elif t == "number":
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), \
            f"{where}: expected a finite number, got {value!r}"
    elif t == "string":
        assert isinstance(value, str), f"{where}: expected a string"


def test_schema_checker_rejects_wrong_shapes() -> None:
    for bad in ({"fp32": {"flash": {"val": 1.0}}}, {"fp32": {"flash": {"value": "1"}}},
                {"fp32": {"flash": {"value": 1.0, "extra": 2}}}, {"fp32": [1.0]}, [], {"fp32": {"f": {"value": float("nan")}}}):
        with pytest.raises(AssertionError):
            check(BMF, bad)
    for bad in ({}, [{"name": "a", "value": 1}], [{"name": "a", "unit": "B", "value": "1"}],
                [{"name": "a", "unit": "B", "value": 1, "range": 3}], [{"name": "a", "unit": "B", "value": True}]):
        with pytest.raises(AssertionError):
            check(GAB, bad)
    check(BMF, {"fp32": {"flash": {"value": 1.0, "lower_value": 0.5}}})
    check(GAB, [{"name": "fp32 flash", "unit": "B", "value": 1, "range": "1 - 2"}])


def _run(path: Path) -> results.Run:
    store = results.RunStore(path)
    for r in [("fp32", "accuracy", 0.94, "", 0.85, True), ("fp32", "flash", 36000, "B"),
              ("fp32", "device_network", 697880, "instructions"), ("fp32", "device_network_best", 697000, "instructions"),
              ("fp32", "device_network_worst", 699000, "instructions"), ("fp32", "exact", 1, "bool"),
              ("qat-sym-4", "accuracy", 0.91, ""), ("qat-sym-4", "host_latency_cpu", 0.21, "ms")]:
        store.record(*r)
    store.write_metadata(git={"sha": "abc1234", "dirty": False})
    return results.load_run(path)


def test_bencher_metric_format(tmp_path: Path) -> None:
    bmf = exports.to_bencher(_run(tmp_path / "r"))
    check(BMF, bmf)
    assert bmf["fp32"]["device-network"] == {"value": 697880.0, "lower_value": 697000.0, "upper_value": 699000.0}
    assert bmf["qat-sym-4"]["host-latency-cpu"] == {"value": 0.21}
    assert "device-network-best" not in bmf["fp32"]  # bounds, not measures


def test_github_action_benchmark_lists(tmp_path: Path) -> None:
    run = _run(tmp_path / "r")
    smaller = exports.to_github_action_benchmark(run, "smaller")
    bigger = exports.to_github_action_benchmark(run, "bigger")
    check(GAB, smaller)
    check(GAB, bigger)
    assert {i["name"] for i in smaller} == {"fp32 flash", "fp32 device_network", "qat-sym-4 host_latency_cpu"}
    assert {i["name"] for i in bigger} == {"fp32 accuracy", "fp32 exact", "qat-sym-4 accuracy"}
    net = next(i for i in smaller if i["name"] == "fp32 device_network")
    assert net["unit"] == "instructions" and net["range"] == "697000 - 699000" and "abc1234" in net["extra"]
    with pytest.raises(HarnessError, match="--direction"):
        exports.to_github_action_benchmark(run, "sideways")


def test_cli_writes_json_and_junit_properties(nights, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    night2 = nights.runs[1]
    assert main(["export-metrics", str(night2), "--format", "bencher"]) == 0
    bmf = json.loads(capsys.readouterr().out)
    check(BMF, bmf)
    assert set(bmf) == {"fp32"} and {"flash", "device-network", "exact"} <= set(bmf["fp32"])
    out = tmp_path / "gab.json"
    assert main(["export-metrics", str(night2), "--format", "github-action-benchmark", "--out", str(out)]) == 0
    check(GAB, json.loads(out.read_text()))
    # JUnit: the XML pytest --junitxml wrote for that night, properties added in place
    before = ET.parse(nights.junit).getroot()
    cases = len(before.findall(".//testcase"))
    assert main(["export-metrics", str(night2), "--format", "junit-properties", "--junit", str(nights.junit)]) == 0
    root = ET.parse(nights.junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert list(suite)[0].tag == "properties" and len(root.findall(".//testcase")) == cases
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["kws.run"] == night2.name
    rows = results.load_run(night2).latest()["fp32"]
    assert float(props["kws.fp32.flash"]) == rows["flash"].value and props["kws.fp32.flash.unit"] == "B"
    assert float(props["kws.fp32.device_network"]) == rows["device_network"].value
    for name, value in props.items():
        if name.startswith("kws.fp32.") and not name.endswith(".unit"):
            assert math.isfinite(float(value)), name
    # a second export replaces, never duplicates
    assert main(["export-metrics", str(night2), "--format", "junit-properties", "--junit", str(nights.junit)]) == 0
    again = ET.parse(nights.junit).getroot()
    assert len(again.findall(".//testsuite/properties/property")) == len(suite.find("properties"))


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _run(tmp_path / "r")
    assert main(["export-metrics", str(run.path), "--format", "junit-properties"]) == 2
    assert "needs --junit FILE" in capsys.readouterr().err
    (tmp_path / "bad.xml").write_text("<testsuites><oops")
    assert main(["export-metrics", str(run.path), "--format", "junit-properties", "--junit", str(tmp_path / "bad.xml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot read JUnit XML") and "\n" not in err
