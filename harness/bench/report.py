"""A run's rows, verdict and terminal table; the JSON summary.

Why one module: the end-of-session table in pytest and ``python -m harness report`` must show the
same thing, so both call ``summary_rows`` and render it; what a test measured is what the CLI shows.
The files (report.md, report.html, summary.json) are written by ``harness.bench.html_report``.
"""

from __future__ import annotations

from typing import Any, Callable

from harness.bench.results import FINDING, Row, Run

# (header, metrics tried in order, formatter). The first metric present fills the cell; "~" marks
# an estimate standing in for a measurement that is not there yet.


def _pct(r: Row) -> str:
    return f"{r.value * 100:.1f} %"


def _count(r: Row) -> str:
    v = r.value
    return f"{v / 1e6:.2f} M" if v >= 1e6 else (f"{v / 1e3:.1f} k" if v >= 1e4 else f"{v:.0f}")


def _bytes(r: Row) -> str:
    v = r.value
    return f"{v / 1024:.1f} KiB" if v >= 1024 else f"{v:.0f} B"


def _ms(r: Row) -> str:
    return f"{r.value:.3f} ms" if r.value >= 0.01 else f"{r.value * 1000:.1f} us"


def _device_time(r: Row) -> str:
    unit = {"instructions": "instr", "cycles": "cyc"}.get(r.unit, r.unit)
    return f"{_count(r)} {unit}".strip()


def _ms_est(r: Row) -> str:
    return f"~{r.value:.2f} ms"


def _exact(r: Row) -> str:
    return "yes" if r.value else "NO"


COLUMNS: list[tuple[str, tuple[str, ...], Callable[[Row], str]]] = [
    ("accuracy", ("accuracy",), _pct),
    ("device acc", ("device_accuracy",), _pct),
    ("params", ("params",), _count),
    ("non-zero", ("nonzero_params",), _count),  # shown where pruning left zeros (blank when = params)
    ("FLOPs", ("flops",), _count),
    ("flash", ("flash", "~flash_estimate"), _bytes),
    ("RAM", ("ram", "~ram_estimate"), _bytes),
    ("host CPU", ("host_latency_cpu",), _ms),
    ("device net", ("device_network",), _device_time),
    ("device pre", ("device_preprocessing",), _device_time),
    ("net ms@64MHz", ("device_network_ms_est",), _ms_est),
    ("pre ms@64MHz", ("device_preprocessing_ms_est",), _ms_est),
    ("exact", ("exact",), _exact),
]


_KIND_ORDER = {"fp32": 0, "ptq": 1, "qat": 2, "struct": 3, "unstruct": 4}


def variant_order(variant: str) -> tuple:
    """Table order: fp32, PTQ, QAT, structured, unstructured; numbers compared as numbers."""
    parts = variant.split("-")
    rest = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts[1:])
    return (_KIND_ORDER.get(parts[0], 9), parts[0], rest)


def _outcome_text(rec: dict[str, Any] | None, test: str) -> str:
    name = test.split("::")[-1]
    if rec is None:
        return f"{name} did not run to the end (run stopped before it, or it was killed)"
    what = {"failed": "failed", "error": "errored"}.get(rec.get("outcome", ""), rec.get("outcome", "?"))
    msg = str(rec.get("message") or "").strip()
    return f"{name} {what}" + (f": {msg}" if msg else "")


def not_measured(run: Run, variant: str, metrics: dict[str, Row], budgets: Any) -> list[tuple[str, str]]:
    """``[(metric, why)]``: budgeted metrics a selected test was to measure for ``variant`` that are
    absent from the run (board died, test failed, run killed). Skipped tests expect nothing."""
    out = []
    for metric, test in run.plan.get(variant, {}).items():
        if metric in metrics or budgets.limit_for(variant, metric) is None:
            continue
        rec = run.outcomes.get(test)
        if rec is not None and rec.get("outcome") == "skipped":
            continue
        if rec is not None and rec.get("outcome") == "passed":
            why = f"{test.split('::')[-1]} passed without recording it"
        else:
            why = _outcome_text(rec, test)
        out.append((metric, why))
    return out


def summary_rows(run: Run) -> list[dict[str, Any]]:
    """One dict per variant (in variant_order): formatted cells, failing checks, and the verdict.

    Verdicts: FAIL when a budget failed or a budgeted metric that a selected test was to measure is
    missing ("not measured: ..."); "data point" for a ``report_only`` variant (never PASS); PASS when
    every checked budget held; "-" when nothing was checked."""
    from harness.bench.budgets import Budgets

    budgets = Budgets.from_json(run.metadata.get("budgets"))
    latest = run.latest()
    out = []
    for variant in sorted(run.model_variants, key=variant_order):
        metrics = latest.get(variant, {})
        cells: dict[str, str] = {}
        for header, names, fmt in COLUMNS:
            cells[header] = ""
            for name in names:
                estimate = name.startswith("~")
                row = metrics.get(name.lstrip("~"))
                if row is not None:
                    cells[header] = ("~" if estimate else "") + fmt(row)
                    break
        if cells.get("non-zero") == cells.get("params"):
            cells["non-zero"] = ""
        failed = [r for r in metrics.values() if r.passed is False]
        checked = [r for r in metrics.values() if r.passed is not None]
        missing = not_measured(run, variant, metrics, budgets)
        data_point = budgets.report_only(variant)
        if failed or missing:
            verdict = "FAIL"
        elif data_point:
            verdict = "data point"
        else:
            verdict = "PASS" if checked else "-"
        out.append({
            "variant": variant,
            "cells": cells,
            "failed": [f"{r.metric}={r.value:.6g}{(' ' + r.unit) if r.unit else ''} (limit {r.limit:.6g})"
                       if r.limit is not None else f"{r.metric}={r.value:.6g}" for r in failed]
                      + [f"{m}: not measured: {why}" for m, why in missing],
            "not_measured": {m: why for m, why in missing},
            "checked": len(checked) + len(missing),
            "report_only": data_point,
            "verdict": verdict,
            "metrics": {m: {"value": r.value, "unit": r.unit, "limit": r.limit, "pass": r.passed}
                        for m, r in metrics.items()},
        })
    return out


def findings_rows(run: Run) -> list[dict[str, Any]]:
    """The paper's findings checked in this run: reproduced, not reproduced, or a regression."""
    latest = run.latest().get(FINDING, {})
    out = []
    for name in sorted(set(latest) | set(run.findings)):
        rec = run.findings.get(name, {})
        row = latest.get(name)
        reproduced = bool(row.value) if row is not None else bool(rec.get("reproduced"))
        status = "reproduced" if reproduced else ("REGRESSION" if rec.get("regression") else "not reproduced")
        out.append({"finding": name, "status": status, "reproduced": reproduced, "detail": rec.get("detail", "")})
    return out


def run_verdict(run: Run, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The run's verdict: FAIL (a variant failed, or a finding regressed), PARTIAL (the run did not
    finish), PASS (something was checked and held), else "-"; with the counts behind it."""
    rows = summary_rows(run) if rows is None else rows
    partial, why = run.status()
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    regressed = [f["finding"] for f in findings_rows(run) if f["status"] == "REGRESSION"]
    if counts.get("FAIL") or regressed:
        verdict = "FAIL"
    elif partial:
        verdict = "PARTIAL"
    elif counts.get("PASS") or counts.get("data point"):
        verdict = "PASS"
    else:
        verdict = "-"
    return {"verdict": verdict, "partial": partial, "partial_reason": why, "counts": counts,
            "finding_regressions": regressed}


def verdict_line(v: dict[str, Any]) -> str:
    """One line: the run's verdict, the count per variant verdict, and why a partial run is partial."""
    counts = ", ".join(f"{n} {k}" for k, n in sorted(v["counts"].items()))
    line = f"verdict: {v['verdict']}" + (f" ({counts})" if counts else "")
    if v["partial"]:
        line += f"; PARTIAL RUN: {v['partial_reason']}"
    return line


def headers() -> list[str]:
    return ["variant"] + [h for h, _, _ in COLUMNS] + ["budgets"]


def _used_headers(rows: list[dict[str, Any]]) -> list[str]:
    """Leave out columns that no variant has a value for (e.g. device columns on a host-only run)."""
    return [h for h, _, _ in COLUMNS if any(r["cells"][h] for r in rows)]


def rich_table(run: Run, title: str | None = None) -> Any:
    from rich.table import Table

    rows = summary_rows(run)
    cols = _used_headers(rows)
    table = Table(title=title or f"kws-harness run {run.path.name}", title_justify="left")
    table.add_column("variant", style="bold", no_wrap=True)
    for h in cols:
        table.add_column(h, justify="right", no_wrap=True, overflow="ellipsis")
    table.add_column("budgets", justify="center", no_wrap=True)
    for r in rows:
        verdict = {"PASS": "[green]PASS[/]", "FAIL": "[red]FAIL[/]", "data point": "[cyan]data point[/]"}.get(r["verdict"], "-")
        if r["verdict"] != "-":
            verdict += f" ({r['checked'] - len(r['failed'])}/{r['checked']})"
        table.add_row(r["variant"], *[r["cells"][h] for h in cols], verdict)
    partial, why = run.status()
    if partial:
        table.caption = f"PARTIAL RUN: {why}"
    return table


def findings_table(run: Run) -> Any:
    """The paper's findings on this data (None when the run checked none)."""
    from rich.markup import escape
    from rich.table import Table

    rows = findings_rows(run)
    if not rows:
        return None
    table = Table(title="The paper's findings on this data", title_justify="left")
    table.add_column("finding", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("numbers")
    for f in rows:
        style = {"reproduced": "green", "not reproduced": "yellow", "REGRESSION": "red"}[f["status"]]
        table.add_row(escape(f["finding"]), f"[{style}]{f['status']}[/]", escape(f["detail"]))
    return table


def failures_text(run: Run) -> list[str]:
    return [f"{r['variant']}: {f}" for r in summary_rows(run) for f in r["failed"]]


def print_table(run: Run, console: Any = None, title: str | None = None) -> None:
    from rich.console import Console

    console = console or Console()
    console.print(rich_table(run, title))
    from rich.markup import escape  # test ids hold [brackets], which rich would read as markup

    for line in failures_text(run):
        console.print(f"[red]failed[/] {escape(line)}", soft_wrap=True)
    ft = findings_table(run)
    if ft is not None:
        console.print(ft)
    console.print(escape(verdict_line(run_verdict(run))), soft_wrap=True)


def to_json(run: Run) -> dict[str, Any]:
    rows = summary_rows(run)
    v = run_verdict(run, rows)
    return {"run": str(run.path), "verdict": v["verdict"], "partial": v["partial"],
            "partial_reason": v["partial_reason"], "counts": v["counts"], "metadata": run.metadata,
            "variants": rows, "findings": findings_rows(run)}
