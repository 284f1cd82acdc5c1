"""Budgets: the limits each variant must meet, read from a TOML file (``budgets.toml``).

Why a file and not constants in the suites: the limits belong to the product a user ships (their
board's flash, their accuracy target), so they change per project while the suites stay the same.

Format::

    [budget."*"]            # applies to every variant
    accuracy_min = 0.90
    flash_max = "1 MB"
    ram_max = "256 KB"

    [budget."qat-*-2"]      # glob pattern on the variant id
    accuracy_min = 0.6      # later sections override earlier ones, key by key
    exact = true

    [regression]            # tolerances against a baseline run (harness.bench.compare)
    accuracy_drop = 0.01    # absolute (0.01 = one point)
    latency_growth = 0.05   # relative (0.05 = 5 %)
    size_growth = 0.02

Precedence: every section whose pattern matches the variant applies, in file order; a later section
overrides a key set by an earlier one and leaves the other keys alone.

``report_only = true`` marks variants kept as data points (a curve the paper draws, not a model to
ship): their floors (every ``*_min`` key) are not checked, the other limits still are, and the
report says "data point" instead of PASS.

Units: sizes are bytes as an integer or a string with B, KB/KiB, MB/MiB (binary: 1 KB = 1024 B,
as board datasheets count flash and RAM); times are strings with s, ms or us (values kept in ms);
fractions are numbers in [0, 1] or strings like "90 %"; counts are integers or strings with a k/M
suffix ("1.2M"). Device times (``device_*_max``) are in the board's own timer unit (instructions on
the emulated board, cycles on a real one) and are plain counts.
"""

from __future__ import annotations

import fnmatch
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.errors import HarnessError

# --- units -------------------------------------------------------------------------------------

_SIZE_UNITS = {"b": 1, "kb": 1024, "kib": 1024, "mb": 1024**2, "mib": 1024**2}
_TIME_UNITS_MS = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "µs": 1e-3}
_COUNT_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}
_NUM_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-zµ%]*)\s*$")


def parse_size(value: Any) -> int:
    """Bytes from ``123``, ``"64 KB"``, ``"1 MB"`` (binary multiples)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 262144 or \"256 KB\", got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative, got {value}")
        return value
    if isinstance(value, str):
        m = _NUM_UNIT.match(value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            return int(round(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]))
        raise ValueError(f"bad size {value!r}: use bytes or a number with B, KB, KiB, MB or MiB")
    raise ValueError(f"expected a size such as 262144 or \"256 KB\", got {type(value).__name__}")


def parse_time_ms(value: Any) -> float:
    """Milliseconds from ``"2 ms"``, ``"150 us"``, ``"1.5 s"`` (a unit is required)."""
    if isinstance(value, str):
        m = _NUM_UNIT.match(value)
        if m and m.group(2).lower() in _TIME_UNITS_MS:
            return float(m.group(1)) * _TIME_UNITS_MS[m.group(2).lower()]
        raise ValueError(f"bad time {value!r}: use a number with s, ms or us, e.g. \"2 ms\"")
    raise ValueError(f"expected a time with a unit such as \"2 ms\", got {type(value).__name__}")


def parse_fraction(value: Any) -> float:
    """A fraction in [0, 1] from ``0.9`` or ``"90 %"``."""
    if isinstance(value, bool):
        raise ValueError("expected a fraction such as 0.9 or \"90 %\", got a boolean")
    if isinstance(value, (int, float)):
        frac = float(value)
    elif isinstance(value, str):
        m = _NUM_UNIT.match(value)
        if not (m and m.group(2) == "%"):
            raise ValueError(f"bad fraction {value!r}: use a number in [0, 1] or a percentage \"90 %\"")
        frac = float(m.group(1)) / 100.0
    else:
        raise ValueError(f"expected a fraction such as 0.9, got {type(value).__name__}")
    if not 0.0 <= frac <= 1.0 or math.isnan(frac):
        raise ValueError(f"fraction must lie in [0, 1], got {value!r}")
    return frac


def parse_count(value: Any) -> float:
    """A non-negative count from ``16652``, ``3.5e6`` or ``"1.2M"``."""
    if isinstance(value, bool):
        raise ValueError("expected a count, got a boolean")
    if isinstance(value, (int, float)):
        count = float(value)
    elif isinstance(value, str):
        m = _NUM_UNIT.match(value)
        if not (m and m.group(2).lower() in _COUNT_SUFFIX):
            raise ValueError(f"bad count {value!r}: use a number, optionally with k, M or G")
        count = float(m.group(1)) * _COUNT_SUFFIX[m.group(2).lower()]
    else:
        raise ValueError(f"expected a count, got {type(value).__name__}")
    if count < 0 or math.isnan(count):
        raise ValueError(f"count must not be negative, got {value!r}")
    return count


def parse_ratio(value: Any) -> float:
    """A non-negative relative amount (``0.05`` = 5 %), or ``"5 %"``."""
    if isinstance(value, str) and value.strip().endswith("%"):
        m = _NUM_UNIT.match(value)
        if m and m.group(2) == "%":
            return float(m.group(1)) / 100.0
    return parse_count(value)


def parse_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


# --- what each key means ----------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """One budget key: which metrics it limits, in which direction, parsed how."""

    key: str
    metrics: tuple[str, ...]  # metric names (see harness.bench.results) or prefixes ending in "*"
    kind: str  # "min" (value >= limit), "max" (value <= limit) or "true" (value must be 1)
    parse: Callable[[Any], Any]
    doc: str


LIMITS: dict[str, Limit] = {
    lim.key: lim
    for lim in [
        Limit("accuracy_min", ("accuracy",), "min", parse_fraction, "host test accuracy (PyTorch)"),
        Limit("class_accuracy_min", ("accuracy_*",), "min", parse_fraction, "host test accuracy of every class"),
        Limit("tflite_accuracy_min", ("tflite_accuracy",), "min", parse_fraction, "accuracy of the int8 .tflite (TFLM reference)"),
        Limit("device_accuracy_min", ("device_accuracy",), "min", parse_fraction, "on-device accuracy on --device-samples inputs"),
        Limit("params_max", ("params",), "max", parse_count, "parameters (non-zero for pruned models)"),
        Limit("flops_max", ("flops",), "max", parse_count, "FLOPs per inference (2 per MAC)"),
        Limit("flash_max", ("flash_estimate", "flash"), "max", parse_size, "flash: estimate and ELF"),
        Limit("ram_max", ("ram_estimate", "ram"), "max", parse_size, "RAM: estimate and ELF"),
        Limit("host_latency_max", ("host_latency_cpu",), "max", parse_time_ms, "host batch-1 CPU latency"),
        Limit("gpu_latency_max", ("host_latency_gpu",), "max", parse_time_ms, "host batch-1 GPU latency"),
        Limit("device_network_max", ("device_network",), "max", parse_count, "on-device network time (timer units)"),
        Limit("device_preprocessing_max", ("device_preprocessing",), "max", parse_count, "on-device front end time"),
        Limit("device_total_max", ("device_total",), "max", parse_count, "on-device audio-to-class time"),
        Limit("exact", ("exact",), "true", parse_bool, "device scores bit-identical to the TFLM reference"),
    ]
}

# Keys that are not limits of a metric.
FLAGS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "report_only": (parse_bool, "a data point, not a model to ship: floors (*_min) are not checked, "
                                "the verdict says 'data point', never PASS"),
}

REGRESSION_KEYS: dict[str, tuple[Callable[[Any], float], float, str]] = {
    # key: (parser, default, meaning)
    "accuracy_drop": (parse_fraction, 0.01, "largest allowed absolute accuracy drop (0.01 = 1 point)"),
    "latency_growth": (parse_ratio, 0.05, "largest allowed relative growth of on-device time"),
    "host_latency_growth": (parse_ratio, 0.5, "largest allowed relative growth of host latency (noisy)"),
    "size_growth": (parse_ratio, 0.02, "largest allowed relative growth of flash, RAM, parameters"),
}


@dataclass(frozen=True)
class Check:
    """The outcome of one measured value against its limit."""

    variant: str
    metric: str
    value: float
    limit: float | bool | None
    key: str | None
    passed: bool | None  # None: no limit applies

    def message(self, unit: str = "") -> str:
        """The line a failing test shows: variant, metric, measured value, limit."""
        u = f" {unit}" if unit else ""
        if self.key is None:
            return f"{self.variant}: {self.metric} = {_fmt(self.value)}{u} (no budget)"
        rel = {"min": ">=", "max": "<=", "true": "=="}[LIMITS[self.key].kind]
        verdict = "meets" if self.passed else "fails"
        lim = "true" if LIMITS[self.key].kind == "true" else f"{_fmt(self.limit)}{u}"
        return f"{self.variant}: {self.metric} = {_fmt(self.value)}{u} {verdict} budget {self.key} {rel} {lim}"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


@dataclass
class Section:
    pattern: str
    values: dict[str, Any]  # parsed
    line: int


@dataclass
class Budgets:
    """A loaded, validated budgets file."""

    path: Path | None
    sections: list[Section] = field(default_factory=list)
    regression: dict[str, float] = field(default_factory=dict)
    text: str = ""

    def for_variant(self, variant: str) -> dict[str, Any]:
        """The merged limits for one variant id (matching sections in file order, later wins)."""
        merged: dict[str, Any] = {}
        for sec in self.sections:
            if fnmatch.fnmatchcase(variant, sec.pattern):
                merged.update(sec.values)
        return merged

    def report_only(self, variant: str) -> bool:
        """True when ``variant`` is kept as a data point (``report_only = true``)."""
        return bool(self.for_variant(variant).get("report_only", False))

    def limit_for(self, variant: str, metric: str) -> tuple[str, Any] | None:
        """``(key, limit)`` of the budget that limits ``metric`` for ``variant``, if any (a data
        point's floors do not apply)."""
        merged = self.for_variant(variant)
        data_point = bool(merged.get("report_only", False))
        for key, lim in LIMITS.items():
            if data_point and lim.kind == "min":
                continue
            if key in merged and _metric_matches(metric, lim.metrics):
                return key, merged[key]
        return None

    def check(self, variant: str, metric: str, value: float) -> Check:
        """Compare one measurement with its budget (``passed=None`` when no budget applies)."""
        found = self.limit_for(variant, metric)
        if found is None:
            return Check(variant, metric, value, None, None, None)
        key, limit = found
        kind = LIMITS[key].kind
        if kind == "min":
            ok = value >= limit
        elif kind == "max":
            ok = value <= limit
        else:
            ok = (not limit) or bool(value)
        return Check(variant, metric, value, limit, key, bool(ok))

    def to_json(self) -> dict[str, Any]:
        """What a run's metadata records as 'budgets used'."""
        return {
            "path": str(self.path) if self.path else None,
            "sections": [{"pattern": s.pattern, "line": s.line, **s.values} for s in self.sections],
            "regression": dict(self.regression),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "Budgets":
        """The budgets a run recorded in its metadata (``to_json``), already parsed; empty when absent."""
        data = data or {}
        sections = []
        for sec in data.get("sections", []) or []:
            values = {k: v for k, v in sec.items() if k in LIMITS or k in FLAGS}
            sections.append(Section(str(sec.get("pattern", "*")), values, int(sec.get("line", 0) or 0)))
        path = data.get("path")
        return cls(path=Path(path) if path else None, sections=sections, regression=dict(data.get("regression") or {}))


def _metric_matches(metric: str, patterns: tuple[str, ...]) -> bool:
    return any(
        metric.startswith(p[:-1]) if p.endswith("*") else metric == p for p in patterns
    )


def _line_of(text: str, key: str, section_header: str | None) -> int:
    """1-based line of ``key = ...`` (inside ``section_header`` if given), else of the header, else 1."""
    lines = text.splitlines()
    start = 0
    if section_header is not None:
        hdr = re.compile(r"^\s*\[\s*" + section_header + r"\s*\]")
        for i, line in enumerate(lines):
            if hdr.match(line):
                start = i
                break
    key_re = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
    for i in range(start, len(lines)):
        if i > start and re.match(r"^\s*\[", lines[i]) and section_header is not None:
            break
        if key_re.match(lines[i]):
            return i + 1
    return start + 1


def _header_re(pattern: str) -> str:
    return r"budget\s*\.\s*[\"']" + re.escape(pattern) + r"[\"']"


def loads(text: str, path: Path | None = None) -> Budgets:
    """Parse and validate budgets TOML text; errors name the file and line."""
    where = str(path) if path else "<budgets>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"{where}: invalid TOML: {exc}") from None

    def fail(line: int, msg: str) -> HarnessError:
        return HarnessError(f"{where}:{line}: {msg}")

    budgets = Budgets(path=path, text=text, regression={k: d for k, (_, d, _) in REGRESSION_KEYS.items()})
    for top, value in data.items():
        if top not in ("budget", "regression"):
            raise fail(_line_of(text, top, None), f"unknown section or key {top!r} (expected [budget.\"PATTERN\"] or [regression])")
    sections = data.get("budget", {})
    if not isinstance(sections, dict):
        raise fail(_line_of(text, "budget", None), "'budget' must be a table of [budget.\"PATTERN\"] sections")
    for pattern, body in sections.items():
        hdr = _header_re(pattern)
        line = _line_of(text, "\0never", hdr)
        if not isinstance(body, dict):
            raise fail(line, f"[budget.{pattern!r}] must be a table of limits")
        parsed: dict[str, Any] = {}
        for key, raw in body.items():
            kline = _line_of(text, key, hdr)
            if key not in LIMITS and key not in FLAGS:
                close = ", ".join(sorted([*LIMITS, *FLAGS]))
                raise fail(kline, f"unknown budget key {key!r} in [budget.{pattern!r}]; known keys: {close}")
            try:
                parsed[key] = LIMITS[key].parse(raw) if key in LIMITS else FLAGS[key][0](raw)
            except ValueError as exc:
                raise fail(kline, f"{key}: {exc}") from None
        budgets.sections.append(Section(pattern, parsed, line))
    reg = data.get("regression", {})
    if not isinstance(reg, dict):
        raise fail(_line_of(text, "regression", None), "'regression' must be a table")
    for key, raw in reg.items():
        kline = _line_of(text, key, r"regression")
        if key not in REGRESSION_KEYS:
            raise fail(kline, f"unknown regression key {key!r}; known keys: {', '.join(sorted(REGRESSION_KEYS))}")
        try:
            budgets.regression[key] = REGRESSION_KEYS[key][0](raw)
        except ValueError as exc:
            raise fail(kline, f"{key}: {exc}") from None
    budgets.sections.sort(key=lambda s: s.line)  # file order, whatever tomllib's dict order
    return budgets


def load(path: str | Path) -> Budgets:
    """Read and validate a budgets file (HarnessError naming the file and line on any problem)."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HarnessError(f"budgets file {path} does not exist") from None
    except IsADirectoryError:
        raise HarnessError(f"budgets file {path} is a directory, not a TOML file") from None
    except OSError as exc:
        raise HarnessError(f"budgets file {path} cannot be read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise HarnessError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                           f"a budgets file is TOML, which is UTF-8") from None
    return loads(text, path)


def default_path() -> Path:
    from harness.paths import REPO_ROOT

    return REPO_ROOT / "budgets.toml"
