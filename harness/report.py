"""Tables and reports of a run: the terminal table, Markdown, HTML, JSON, and the plots.

Why one module: the end-of-session table in pytest and ``python -m harness report`` must show the
same thing, so both call ``summary_rows`` and render it; what a test measured is what the CLI shows.
"""

from __future__ import annotations

import contextlib
import html
import importlib
import io
import json
from pathlib import Path
from typing import Any, Callable

from .cache import atomic_write_text
from .errors import HarnessError
from .results import Row, Run

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
    ("params", ("nonzero_params", "params"), _count),
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


def summary_rows(run: Run) -> list[dict[str, Any]]:
    """One dict per variant (in variant_order): formatted cells, failing checks, and the verdict."""
    out = []
    for variant, metrics in sorted(run.latest().items(), key=lambda kv: variant_order(kv[0])):
        cells: dict[str, str] = {}
        for header, names, fmt in COLUMNS:
            cells[header] = ""
            for name in names:
                estimate = name.startswith("~")
                row = metrics.get(name.lstrip("~"))
                if row is not None:
                    cells[header] = ("~" if estimate else "") + fmt(row)
                    break
        failed = [r for r in metrics.values() if r.passed is False]
        checked = [r for r in metrics.values() if r.passed is not None]
        verdict = "FAIL" if failed else ("PASS" if checked else "-")
        out.append({
            "variant": variant,
            "cells": cells,
            "failed": [f"{r.metric}={r.value:.6g}{(' ' + r.unit) if r.unit else ''} (limit {r.limit:.6g})"
                       if r.limit is not None else f"{r.metric}={r.value:.6g}" for r in failed],
            "checked": len(checked),
            "verdict": verdict,
            "metrics": {m: {"value": r.value, "unit": r.unit, "limit": r.limit, "pass": r.passed}
                        for m, r in metrics.items()},
        })
    return out


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
        verdict = {"PASS": "[green]PASS[/]", "FAIL": "[red]FAIL[/]"}.get(r["verdict"], "-")
        if r["verdict"] != "-":
            verdict += f" ({r['checked'] - len(r['failed'])}/{r['checked']})"
        table.add_row(r["variant"], *[r["cells"][h] for h in cols], verdict)
    return table


def failures_text(run: Run) -> list[str]:
    return [f"{r['variant']}: {f}" for r in summary_rows(run) for f in r["failed"]]


def print_table(run: Run, console: Any = None, title: str | None = None) -> None:
    from rich.console import Console

    console = console or Console()
    console.print(rich_table(run, title))
    for line in failures_text(run):
        console.print(f"[red]failed[/] {line}")


def markdown(run: Run) -> str:
    rows = summary_rows(run)
    cols = _used_headers(rows)
    meta = run.metadata
    git = meta.get("git", {})
    lines = [f"# kws-harness run {run.path.name}", ""]
    lines.append(f"- git: {git.get('sha', '?')}{' (dirty)' if git.get('dirty') else ''}")
    if "dataset" in meta:
        lines.append(f"- data set: {meta['dataset'].get('id', '?')} ({meta['dataset'].get('hash', '?')})")
    for label, dev in meta.get("devices", {}).items():
        lines.append(f"- device {label}: " + ", ".join(f"{k}={v}" for k, v in dev.items() if k != "label"))
    lines += ["", "| " + " | ".join(["variant", *cols, "budgets"]) + " |",
              "|" + "---|" * (len(cols) + 2)]
    for r in rows:
        lines.append("| " + " | ".join([r["variant"], *[r["cells"][h] for h in cols], r["verdict"]]) + " |")
    fails = failures_text(run)
    if fails:
        lines += ["", "## Failed checks", ""] + [f"- {f}" for f in fails]
    lines += ["", "## Versions", ""] + [f"- {k}: {v}" for k, v in meta.get("versions", {}).items()]
    return "\n".join(lines) + "\n"


def html_report(run: Run) -> str:
    rows = summary_rows(run)
    cols = _used_headers(rows)
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in ["variant", *cols, "budgets"])
    body = []
    for r in rows:
        color = {"PASS": "#2a2", "FAIL": "#c22"}.get(r["verdict"], "#888")
        tds = "".join(f"<td>{esc(c)}</td>" for c in [r["variant"], *[r["cells"][h] for h in cols]])
        title = esc("; ".join(r["failed"]))
        body.append(f"<tr>{tds}<td style='color:{color}' title='{title}'><b>{r['verdict']}</b></td></tr>")
    figs = sorted((run.path / "figures").glob("*.png")) if (run.path / "figures").is_dir() else []
    imgs = "".join(f"<figure><img src='figures/{esc(p.name)}' width='480'><figcaption>{esc(p.stem)}</figcaption></figure>" for p in figs)
    meta = esc(json.dumps({k: run.metadata.get(k) for k in ("git", "dataset", "devices", "versions")}, indent=1, default=str))
    return (
        "<!doctype html><meta charset='utf-8'><title>kws-harness " + esc(run.path.name) + "</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}"
        "td:first-child{text-align:left}table{border-collapse:collapse}tr:nth-child(even){background:#f4f4f4}</style>"
        f"<h1>kws-harness run {esc(run.path.name)}</h1><table><tr>{head}</tr>{''.join(body)}</table>"
        f"{imgs}<h2>Metadata</h2><pre>{meta}</pre>"
    )


def to_json(run: Run) -> dict[str, Any]:
    return {"run": str(run.path), "metadata": run.metadata, "variants": summary_rows(run)}


# this run's metric -> the variants-table column harness.figures_compression reads
_TABLE_COLUMNS = {"accuracy": "test_acc", "params": "parameters", "nonzero_params": "nonzero_parameters",
                  "flops": "flops", "host_latency_cpu": "host_cpu_ms", "flash_estimate": "flash_bytes",
                  "ram_estimate": "ram_bytes"}


def _variants_table(run: Run) -> Path | None:
    """This run's numbers in the variants-table layout, so the figures show what this run measured."""
    latest = run.latest()
    if not any("accuracy" in m for m in latest.values()):
        return None
    cols = ["variant", *_TABLE_COLUMNS.values()]
    lines = [",".join(cols)]
    for v, metrics in latest.items():
        cells = [v] + [repr(metrics[m].value) if m in metrics else "" for m in _TABLE_COLUMNS]
        lines.append(",".join(cells))
    return atomic_write_text(run.path / "variants_table.csv", "\n".join(lines) + "\n")


def draw_figures(run: Run) -> list[Path]:
    """Call harness.figures_compression (when present) with this run's on-device network times.

    The figures are drawn from this run's own rows (written as variants_table.csv); a run without
    host accuracy falls back to the sweep's table (results/variants/variants.csv).
    """
    try:
        module = importlib.import_module("harness.figures_compression")
    except ModuleNotFoundError as exc:
        if exc.name == "harness.figures_compression":
            return []
        raise
    import argparse

    out = run.path / "figures"
    argv = ["--out", str(out)]
    table = _variants_table(run)
    if table is not None:
        argv += ["--table", str(table)]
    device_rows = [(v, m["device_network"].value) for v, m in run.latest().items() if "device_network" in m]
    if device_rows:
        lines = ["variant,metric,value"] + [f"{v},device_network_time,{val!r}" for v, val in device_rows]
        csv_path = atomic_write_text(run.path / "device_network_time.csv", "\n".join(lines) + "\n")
        argv += ["--device-results", str(csv_path)]
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints each path; --json output must stay JSON
        module.run(parser.parse_args(argv))
    return sorted(out.glob("*.png")) if out.is_dir() else []


def write_reports(run: Run, figures: bool = True, notes: list[str] | None = None) -> list[Path]:
    """Write report.md, report.html and summary.json (and the plots) into the run folder.

    ``notes`` collects what was left out (e.g. the figures when no variants table exists)."""
    notes = notes if notes is not None else []
    written: list[Path] = []
    if figures:
        try:
            written += draw_figures(run)
        except HarnessError as exc:  # no sweep table yet: the reports still matter
            notes.append(f"figures skipped: {exc}")
    written.append(atomic_write_text(run.path / "report.md", markdown(run)))
    written.append(atomic_write_text(run.path / "report.html", html_report(run)))
    written.append(atomic_write_text(run.path / "summary.json", json.dumps(to_json(run), indent=2, default=str) + "\n"))
    for p in written:
        p.chmod(0o644)  # atomic writes make 0600 files; reports are meant to be shared
    return written
