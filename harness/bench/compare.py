"""Regression check: this run against a baseline run, with tolerances from the budgets file.

Why separate from budgets: a budget is an absolute promise (fits in 256 KB); a regression is a
relative one (no worse than last night). Accuracy is compared by absolute drop, on-device time,
host latency and sizes by relative growth. Variants present on one side only are listed, never
silently skipped; a baseline sharing no variant with the run is an error. A metric the baseline has
and the new run lacks (for a variant both have), a unit that changed, and a paper finding that
reproduced in the baseline and no longer does all fail the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.bench.results import FINDING, Run, load_run, resolve_run

# metric -> (kind, tolerance key). kind "drop": absolute decrease is bad; "growth": relative increase.
METRICS: dict[str, tuple[str, str]] = {
    "accuracy": ("drop", "accuracy_drop"),
    "tflite_accuracy": ("drop", "accuracy_drop"),
    "device_accuracy": ("drop", "accuracy_drop"),
    "exact_fraction": ("drop", "accuracy_drop"),
    "device_network": ("growth", "latency_growth"),
    "device_preprocessing": ("growth", "latency_growth"),
    "device_total": ("growth", "latency_growth"),
    "device_network_cycles_est": ("growth", "latency_growth"),  # emulated board: deterministic estimates
    "device_preprocessing_cycles_est": ("growth", "latency_growth"),
    "host_latency_cpu": ("growth", "host_latency_growth"),
    "host_latency_gpu": ("growth", "host_latency_growth"),
    "flash": ("growth", "size_growth"),
    "ram": ("growth", "size_growth"),
    "flash_estimate": ("growth", "size_growth"),
    "ram_estimate": ("growth", "size_growth"),
    "params": ("growth", "size_growth"),
    "flops": ("growth", "size_growth"),
}

DEFAULT_TOLERANCES = {"accuracy_drop": 0.01, "latency_growth": 0.05, "host_latency_growth": 0.5, "size_growth": 0.02}


@dataclass(frozen=True)
class Diff:
    """One metric of one variant, baseline vs new."""

    variant: str
    metric: str
    base: float
    new: float
    unit: str
    change: float  # absolute change for "drop" metrics, relative change for "growth" metrics
    tolerance: float
    kind: str
    ok: bool | None  # False: a regression (or missing, or units differ: see note)
    note: str = ""

    def describe(self) -> str:
        if self.note:
            return f"{self.variant} {self.metric}: {self.note}"
        if self.kind == "drop":
            what = f"changed by {self.change:+.4f} (allowed drop {self.tolerance:.4f})"
        else:
            what = f"changed by {self.change:+.1%} (allowed growth {self.tolerance:.1%})"
        return f"{self.variant} {self.metric}: {self.base:.6g} -> {self.new:.6g} {self.unit} {what}"


@dataclass
class Comparison:
    base_path: str
    new_path: str
    diffs: list[Diff] = field(default_factory=list)
    only_in_new: list[str] = field(default_factory=list)  # variants the baseline lacks
    only_in_base: list[str] = field(default_factory=list)  # variants this run did not measure
    tolerances: dict[str, float] = field(default_factory=dict)

    @property
    def regressions(self) -> list[Diff]:
        return [d for d in self.diffs if d.ok is False]

    @property
    def missing(self) -> list[Diff]:
        """Metrics the baseline measured and the new run did not (for variants both have)."""
        return [d for d in self.diffs if d.kind == "missing"]

    @property
    def ok(self) -> bool:
        return not self.regressions

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base_path,
            "new": self.new_path,
            "ok": self.ok,
            "tolerances": self.tolerances,
            "only_in_new": self.only_in_new,
            "only_in_base": self.only_in_base,
            "diffs": [{k: (None if isinstance(x, float) and x != x else x) for k, x in d.__dict__.items()}
                      for d in self.diffs],  # NaN (not measured) as null: strict JSON
        }

    def summary(self) -> str:
        """One line for a failed test or the CLI."""
        parts = []
        if self.regressions:
            parts.append(f"{len(self.regressions)} regression(s): " + "; ".join(d.describe() for d in self.regressions))
            if self.missing:
                parts.append(f"{len(self.missing)} of them not measured in the new run")
        else:
            parts.append(f"no regression in {len(self.diffs)} compared values")
        if self.only_in_new:
            parts.append(f"not in baseline: {', '.join(self.only_in_new)}")
        if self.only_in_base:
            parts.append(f"in the baseline only (not compared): {', '.join(self.only_in_base)}")
        return " | ".join(parts)


def compare_runs(base: Run, new: Run, tolerances: dict[str, float] | None = None,
                 variants: list[str] | None = None, planned: dict[str, dict[str, str]] | None = None) -> Comparison:
    """Compare the latest value of each (variant, metric) in ``new`` with ``base``.

    A metric the baseline has and ``new`` lacks fails; with ``planned`` (the new run's plan, e.g.
    ``new.plan``: variant -> metrics its selected tests were to measure) only if it was planned, so
    ``-k host --baseline last`` does not fail on the device metrics it never meant to measure."""
    tol = dict(DEFAULT_TOLERANCES)
    tol.update(tolerances or {})
    b, n = base.latest(), new.latest()
    names = variants if variants is not None else list(n)
    cmp = Comparison(str(base.path), str(new.path), tolerances=tol)
    common = [v for v in names if v in b]
    cmp.only_in_new = [v for v in names if v not in b and v != FINDING]
    cmp.only_in_base = [v for v in b if v not in names and v != FINDING]
    if names and not common:
        raise HarnessError(
            f"baseline {base.path} has none of the variants of this run "
            f"({', '.join(names[:6])}{' ...' if len(names) > 6 else ''}); baseline has: "
            f"{', '.join(list(b)[:6]) or 'nothing'}"
        )
    for v in common:
        if v == FINDING:
            _compare_findings(b[v], n.get(v, {}), cmp)
            continue
        for metric, (kind, key) in METRICS.items():
            if metric not in b[v]:
                continue
            rb, t = b[v][metric], tol[key]
            if metric not in n.get(v, {}):
                if planned is not None and metric not in planned.get(v, {}):
                    continue
                cmp.diffs.append(Diff(v, metric, rb.value, float("nan"), rb.unit, 0.0, t, "missing", False,
                                      f"not measured in the new run (baseline {rb.value:.6g} {rb.unit})".rstrip()))
                continue
            rn = n[v][metric]
            if rb.unit != rn.unit:
                cmp.diffs.append(Diff(v, metric, rb.value, rn.value, rn.unit, 0.0, t, kind, False,
                                      f"units differ: baseline {rb.value:.6g} {rb.unit or '-'} vs new "
                                      f"{rn.value:.6g} {rn.unit or '-'} (not comparable: a different board or timer?)"))
                continue
            if kind == "drop":
                change = rn.value - rb.value
                ok = -change <= t + 1e-12
            else:
                change = (rn.value - rb.value) / rb.value if rb.value else (0.0 if rn.value == 0 else float("inf"))
                ok = change <= t + 1e-12
            cmp.diffs.append(Diff(v, metric, rb.value, rn.value, rn.unit, change, t, kind, ok))
        if "exact" in b[v]:
            was = b[v]["exact"].value
            if "exact" not in n.get(v, {}):
                if planned is not None and "exact" not in planned.get(v, {}):
                    continue
                cmp.diffs.append(Diff(v, "exact", was, float("nan"), "", 0.0, 0.0, "missing", False,
                                      "not measured in the new run"))
            else:
                now = n[v]["exact"].value
                cmp.diffs.append(Diff(v, "exact", was, now, "", now - was, 0.0, "drop", not (was and not now)))
    return cmp


def _compare_findings(base: dict[str, Any], new: dict[str, Any], cmp: Comparison) -> None:
    """A paper finding that reproduced in the baseline and no longer does is a regression."""
    for name, rb in base.items():
        rn = new.get(name)
        if rn is None:
            continue  # not checked in this run (its variants not selected): nothing to compare
        ok = not (rb.value and not rn.value)
        cmp.diffs.append(Diff(FINDING, name, rb.value, rn.value, "", rn.value - rb.value, 0.0, "drop", ok,
                              "" if ok else "reproduced in the baseline, not reproduced now"))


def compare_paths(base: str, new: str, tolerances: dict[str, float] | None = None) -> Comparison:
    """Resolve both run paths (a run folder, or a results root meaning its latest run) and compare."""
    new_path = resolve_run(new)
    base_path = resolve_run(base, exclude=new_path)
    return compare_runs(load_run(base_path), load_run(new_path), tolerances)


def render(cmp: Comparison, only_changes: bool = False) -> Any:
    """A rich Table of the diffs (regressions marked)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Regression check: {Path(cmp.new_path).name} vs baseline {Path(cmp.base_path).name}")
    for col in ("variant", "metric", "baseline", "new", "change", "allowed", ""):
        table.add_column(col, justify="right" if col in ("baseline", "new", "change", "allowed") else "left",
                         no_wrap=col in ("variant", "metric", ""))
    for d in cmp.diffs:
        if only_changes and d.ok and d.change == 0:
            continue
        if d.kind == "missing":
            table.add_row(d.variant, escape(d.metric), f"{d.base:.6g}", "[red]missing[/]", "", "", "[red]NOT MEASURED[/]")
            continue
        if d.note.startswith("units differ"):
            table.add_row(d.variant, escape(d.metric), f"{d.base:.6g}", f"{d.new:.6g} {d.unit}".strip(), "", "",
                          "[red]UNITS DIFFER[/]")
            continue
        if d.kind == "drop":
            change, allowed = f"{d.change:+.4f}", f"-{d.tolerance:.4f}"
        else:
            change, allowed = f"{d.change:+.1%}", f"+{d.tolerance:.1%}"
        mark = "[red]REGRESSION[/]" if d.ok is False else ("[yellow]n/a[/]" if d.ok is None else "[green]ok[/]")
        table.add_row(d.variant, escape(d.metric), f"{d.base:.6g}", f"{d.new:.6g} {d.unit}".strip(), change, allowed, mark)
    for v in cmp.only_in_new:
        table.add_row(v, "-", "[yellow]missing[/]", "", "", "", "[yellow]not in baseline[/]")
    return table
