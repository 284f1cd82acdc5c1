"""The report a team reads in the morning: the answer first, then how it was measured, then the numbers.

Why a module of its own: ``report`` keeps the per-variant verdicts (``summary_rows``) that the
terminal table, the CLI and the pytest plugin share; this module only arranges them for people:
verdict, counts, regressions against the baseline and the drift check (worst first), failed budgets,
findings, run metadata, a sortable table with units in the headers, figures inlined. One HTML file
that opens offline and on a phone, and the same order in Markdown (for a CI job summary).
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from harness.bench import report
from harness.bench.compare import Comparison, Diff
from harness.bench.history import DriftReport, Step, partial_reason, severity
from harness.bench.results import Row, Run
from harness.cache import atomic_write_text
from harness.errors import HarnessError

esc = html.escape

# (header, metrics tried in order, unit shown in the header, scale). "~" marks an estimate standing in
# for a measurement; a unit of None means "k" + the rows' own unit (the board's timer unit).
TABLE: list[tuple[str, tuple[str, ...], str | None, float, str]] = [
    ("accuracy", ("accuracy",), "%", 100.0, "{:.1f}"),
    ("TFLite acc", ("tflite_accuracy",), "%", 100.0, "{:.1f}"),
    ("device acc", ("device_accuracy",), "%", 100.0, "{:.1f}"),
    ("params", ("nonzero_params", "params"), "count", 1.0, "{:.0f}"),
    ("FLOPs", ("flops",), "k", 1e-3, "{:.1f}"),
    ("flash", ("flash", "~flash_estimate"), "KiB", 1 / 1024, "{:.1f}"),
    ("RAM", ("ram", "~ram_estimate"), "KiB", 1 / 1024, "{:.1f}"),
    ("host CPU", ("host_latency_cpu",), "ms", 1.0, "{:.3f}"),
    ("device net", ("device_network",), None, 1e-3, "{:.1f}"),
    ("device pre", ("device_preprocessing",), None, 1e-3, "{:.1f}"),
    ("exact", ("exact",), "", 1.0, ""),
]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;padding:12px;max-width:1100px;
 line-height:1.4;color:#222}
h1{font-size:1.3em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .3em;border-bottom:1px solid #ddd}
.verdict{font-size:1.6em;font-weight:700;padding:8px 14px;border-radius:6px;display:inline-block;color:#fff}
.v-PASS{background:#1a7f37}.v-FAIL{background:#c62828}.v-PARTIAL{background:#b26a00}
.counts{margin:.4em 0 .8em;color:#444}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-size:.9em}td,th{padding:3px 8px;text-align:right;white-space:nowrap}
td:first-child,th:first-child{text-align:left;position:sticky;left:0;background:#fff}
tr:nth-child(even),tr:nth-child(even) td:first-child{background:#f5f5f5}th:first-child{background:#eee;z-index:1}
th{background:#eee;position:sticky;top:0}th.sortable{cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.fail{background:#fdd;color:#900;font-weight:600}td.pass{color:#1a7f37;font-weight:600}
ul.worst li{margin:.15em 0}.bad{color:#c62828}.ok{color:#1a7f37}.muted{color:#777}
img,svg{max-width:100%;height:auto}figure{margin:.5em 0}figcaption{font-size:.85em;color:#555}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;font-size:.9em}dl.meta dt{font-weight:600}
dl.meta dd{margin:0;overflow-wrap:anywhere}
"""

# Click a header to sort by it (numbers by the data-v value, text otherwise); click again to reverse.
SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.classList.add('sortable');
    th.addEventListener('click', function(){
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      table.querySelectorAll('th').forEach(function(h){ h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row){
        var c = row.cells[col]; var v = c.getAttribute('data-v');
        if (v === null) { v = c.textContent.trim(); }
        var n = parseFloat(v);
        return (v !== '' && !isNaN(n) && isFinite(v)) ? [0, n, ''] : [v === '' ? 2 : 1, 0, v.toLowerCase()];
      }
      rows.sort(function(a, b){
        var ka = key(a), kb = key(b);
        if (ka[0] !== kb[0]) { return ka[0] - kb[0]; }
        var d = ka[0] === 0 ? ka[1] - kb[1] : (ka[2] < kb[2] ? -1 : (ka[2] > kb[2] ? 1 : 0));
        return asc ? d : -d;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


def page(title: str, body: str) -> str:
    """A complete self-contained HTML page (viewport set for phones, sorting script inline)."""
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)}</title><link rel='icon' href='data:,'><style>{CSS}</style></head><body>"
            f"{body}<script>{SORT_JS}</script></body></html>\n")


def sortable_table(headers: list[str], rows: list[list[tuple[str, Any, str]]], table_id: str = "") -> str:
    """rows: cells of (text, sort value or None, css class)."""
    head = "".join(f"<th scope='col'>{esc(h)}</th>" for h in headers)
    body = []
    for cells in rows:
        tds = []
        for text, value, cls in cells:
            v = "" if value is None else f" data-v='{esc(str(value))}'"
            c = f" class='{cls}'" if cls else ""
            tds.append(f"<td{c}{v}>{esc(text)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    tid = f" id='{esc(table_id)}'" if table_id else ""
    return (f"<div class='scroll'><table class='sortable'{tid}><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


# --- the run report ----------------------------------------------------------------------------


@dataclass
class Answer:
    """What the first screen says: verdict, counts, what got worse (worst first), what failed."""

    verdict: str  # PASS, FAIL or PARTIAL
    partial: str  # why the run is partial ('' when complete)
    variants: int
    checks: int
    failed_checks: int
    failed_budgets: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    baseline: str | None = None
    compared: int = 0
    drift: list[str] = field(default_factory=list)
    drift_note: str = ""
    findings: list[tuple[str, bool | None, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Plain lines for a CI job summary or a terminal."""
        out = [f"verdict: {self.verdict}" + (f" (partial run: {self.partial})" if self.partial else ""),
               f"{self.variants} variant(s), {self.checks} budget check(s), {self.failed_checks} failed"]
        if self.baseline:
            out.append(f"baseline {self.baseline}: {len(self.regressions)} regression(s) in {self.compared} compared values")
        out += [f"regression {r}" for r in self.regressions]
        if self.drift_note:
            out.append(self.drift_note)
        out += [f"drift {d}" for d in self.drift]
        out += [f"failed budget {f}" for f in self.failed_budgets]
        return out


def _diff_text(d: Diff) -> str:
    return d.describe()


def findings(run: Run) -> list[tuple[str, bool | None, str]]:
    """(finding, reproduced?, detail) from ``report.findings_rows``."""
    return [(f["finding"] + (" (REGRESSION)" if f.get("status") == "REGRESSION" else ""),
             bool(f.get("reproduced")), str(f.get("detail", ""))) for f in report.findings_rows(run)]


def answer(run: Run, comparison: Comparison | None = None, drift: DriftReport | None = None) -> Answer:
    """The verdict: FAIL on a failed budget, a regression against the baseline or a drift beyond
    tolerance; else PARTIAL when the run did not finish; else PASS."""
    rows = report.summary_rows(run)
    failed = [f"{r['variant']}: {f}" for r in rows for f in r["failed"]]
    checks = sum(r["checked"] for r in rows)
    regress = sorted(comparison.regressions, key=lambda d: -severity(d.kind, d.change, d.tolerance)) if comparison else []
    drifts = drift.regressions if drift is not None and drift.newest == run.path.name else []
    reason = partial_reason(run)
    bad = bool(failed or regress or drifts or any(r["verdict"] == "FAIL" for r in rows))
    verdict_of = getattr(report, "run_verdict", None)  # the report's own run verdict, where it has one
    if callable(verdict_of):
        bad = bad or verdict_of(run, rows)["verdict"] == "FAIL"
    verdict = "FAIL" if bad else ("PARTIAL" if reason else "PASS")
    note = ""
    if drift is not None:
        if drift.newest != run.path.name:
            note = "drift: not checked (this run is partial or not the newest complete run)"
        elif not drift.reference_runs:
            note = "drift: no earlier complete run to compare with"
        else:
            note = (f"drift: vs median of {len(drift.reference_runs)} earlier run(s): "
                    f"{len(drifts)} beyond tolerance in {len(drift.drifts)} compared values")
    return Answer(verdict, reason, len(rows), checks, len(failed), failed, [_diff_text(d) for d in regress],
                  Path(comparison.base_path).name if comparison else None,
                  len(comparison.diffs) if comparison else 0,
                  [d.describe() for d in drifts],
                  note, findings(run))


def _cell(header: str, names: tuple[str, ...], scale: float, fmt: str, metrics: dict[str, Row],
          not_measured: dict[str, str] | None = None) -> tuple[str, Any, str]:
    """(text, sort value, css class) of one cell; a budgeted metric that was never measured fails."""
    for name in names:
        estimate = name.startswith("~")
        r = metrics.get(name.lstrip("~"))
        if r is None:
            continue
        cls = "fail" if r.passed is False else ""
        if header == "exact":
            return ("yes" if r.value else "NO", r.value, cls or ("" if r.value else "fail"))
        return (("~" if estimate else "") + fmt.format(r.value * scale), r.value, cls)
    if any(n.lstrip("~") in (not_measured or {}) for n in names):
        return ("not measured", None, "fail")
    return ("", None, "")


def _columns(run: Run, rows: list[dict[str, Any]]) -> list[tuple[str, tuple[str, ...], str, float, str]]:
    """The TABLE columns some variant has a value for, with the unit resolved."""
    latest = run.latest()
    used = []
    for header, names, unit, scale, fmt in TABLE:
        present = [latest.get(r["variant"], {})[n.lstrip("~")] for r in rows for n in names
                   if n.lstrip("~") in latest.get(r["variant"], {})]
        if not present:
            continue
        if unit is None:
            units = sorted({p.unit for p in present if p.unit})
            unit = "k " + "/".join(units) if units else "k"
        used.append((header, names, unit, scale, fmt))
    return used


def table_html(run: Run) -> str:
    """The per-variant table: units in the headers, failed cells highlighted, sortable."""
    latest = run.latest()
    rows = report.summary_rows(run)
    used = _columns(run, rows)
    headers = ["variant"] + [f"{h} [{u}]" if u else h for h, _, u, _, _ in used] + ["budgets"]
    body = []
    for r in rows:
        metrics = latest.get(r["variant"], {})
        cells: list[tuple[str, Any, str]] = [(r["variant"], None, "")]
        for header, names, _, scale, fmt in used:
            cells.append(_cell(header, names, scale, fmt, metrics, r.get("not_measured")))
        ok = r["checked"] - len(r["failed"])
        text = r["verdict"] + (f" {ok}/{r['checked']}" if r["checked"] else "")
        cells.append((text, r["verdict"], {"FAIL": "fail", "PASS": "pass"}.get(r["verdict"], "")))
        body.append(cells)
    return sortable_table(headers, body, "results")


def _duration(meta: dict[str, Any]) -> str:
    try:
        a = datetime.fromisoformat(meta["started"].replace("Z", "+00:00"))
        b = datetime.fromisoformat(meta["finished"].replace("Z", "+00:00"))
    except (KeyError, ValueError, AttributeError):
        return "unknown (no end recorded)"
    s = int((b - a).total_seconds())
    return f"{s // 3600} h {s % 3600 // 60} min {s % 60} s" if s >= 3600 else f"{s // 60} min {s % 60} s"


def metadata_items(run: Run) -> list[tuple[str, str]]:
    """(label, text) of what the run was measured with, in reading order."""
    meta = run.metadata
    git = meta.get("git", {})
    items = [("run", run.path.name),
             ("git", f"{git.get('sha', '?')}" + (" (dirty)" if git.get("dirty") else ""))]
    devices = meta.get("devices", {})
    for label, d in devices.items():
        items.append((f"board {label}", f"{d.get('board', '?')}, firmware {d.get('firmware', '?')}, "
                      f"{d.get('backend', '?')} backend, {d.get('clock_hz', '?')} Hz, timer {d.get('timer_unit', '?')}"))
    if not devices:
        items.append(("board", "none (host-only run)"))
    ds = meta.get("dataset")
    if ds:
        items.append(("data set", f"{ds.get('id', '?')} (hash {ds.get('hash', '?')}, "
                      f"{ds.get('test_samples', '?')} test samples)"))
    items.append(("started", str(meta.get("started", "?"))))
    items.append(("duration", _duration(meta)))
    if "exitstatus" in meta:
        items.append(("pytest exit status", str(meta["exitstatus"])))
    versions = meta.get("versions", {})
    if versions:
        items.append(("tools", ", ".join(f"{k} {v}" for k, v in versions.items() if v)))
    host = meta.get("host")
    if host:
        items.append(("host", f"{host.get('system', '?')}, {host.get('cpus', '?')} CPUs"))
    return items


FIRST_SCREEN_ITEMS = 5  # the worst few stay on the first screen; the rest fold away


def _li(items: list[str], cls: str = "", keep: int | None = None) -> str:
    """A list; past ``keep`` items the rest go into a <details> (the first screen stays short on a phone)."""
    c = f" class='{cls}'" if cls else ""
    shown, rest = (items, []) if keep is None else (items[:keep], items[keep:])
    out = f"<ul{c}>" + "".join(f"<li>{esc(i)}</li>" for i in shown) + "</ul>"
    if rest:
        out += (f"<details><summary>{len(rest)} more</summary><ul{c}>"
                + "".join(f"<li>{esc(i)}</li>" for i in rest) + "</ul></details>")
    return out


def render_html(run: Run, ans: Answer, figures: list[Path] | None = None) -> str:
    """The report page (self-contained: figures inlined as base64 PNG)."""
    parts = [f"<h1>kws-harness run {esc(run.path.name)}</h1>",
             f"<section id='answer'><div id='verdict' class='verdict v-{ans.verdict}'>{ans.verdict}</div>"]
    if ans.partial:
        parts.append(f"<p class='bad'>partial run: {esc(ans.partial)}</p>")
    parts.append(f"<p class='counts' id='counts'>{ans.variants} variant(s), {ans.checks} budget check(s), "
                 f"<span class='{'bad' if ans.failed_checks else 'ok'}'>{ans.failed_checks} failed</span></p>")
    parts.append("<section id='regressions'><h2>Regressions and drift (worst first)</h2>")
    if ans.baseline:
        parts.append(f"<p>against baseline <b>{esc(ans.baseline)}</b>: {len(ans.regressions)} regression(s) "
                     f"in {ans.compared} compared values</p>")
    else:
        parts.append("<p class='muted'>no baseline run to compare with</p>")
    if ans.regressions:
        parts.append(_li(ans.regressions, "worst bad", FIRST_SCREEN_ITEMS))
    if ans.drift_note:
        parts.append(f"<p>{esc(ans.drift_note)}</p>")
    if ans.drift:
        parts.append(_li(ans.drift, "worst bad", FIRST_SCREEN_ITEMS))
    parts.append("</section><section id='failed-budgets'><h2>Failed budgets</h2>")
    parts.append(_li(ans.failed_budgets, "bad", FIRST_SCREEN_ITEMS) if ans.failed_budgets else "<p class='ok'>none</p>")
    parts.append("</section><section id='findings'><h2>Findings</h2>")
    if ans.findings:
        parts.append(_li([f"{'reproduced' if ok else ('NOT reproduced' if ok is False else 'not checked')}: {n}"
                          + (f" ({d})" if d else "") for n, ok, d in ans.findings]))
    else:
        parts.append("<p class='muted'>no findings checked in this run</p>")
    parts.append("</section></section><section id='metadata'><h2>Run</h2><dl class='meta'>")
    parts += [f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in metadata_items(run)]
    parts.append("</dl></section><section id='table'><h2>Variants</h2>")
    parts.append(table_html(run))
    parts.append("<p class='muted'>click a column header to sort; ~ = estimate</p></section>")
    if figures:
        parts.append("<section id='figures'><h2>Figures</h2>")
        for p in figures:
            if p.suffix.lower() != ".png" or not p.exists():
                continue
            data = base64.b64encode(p.read_bytes()).decode()
            parts.append(f"<figure><img alt='{esc(p.stem)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{esc(p.stem)}</figcaption></figure>")
        parts.append("</section>")
    return page(f"kws-harness {run.path.name}: {ans.verdict}", "".join(parts))


def render_markdown(run: Run, ans: Answer) -> str:
    """The same order in Markdown (a CI job summary)."""
    lines = [f"# kws-harness run {run.path.name}: **{ans.verdict}**", ""]
    if ans.partial:
        lines += [f"Partial run: {ans.partial}", ""]
    lines += [f"{ans.variants} variant(s), {ans.checks} budget check(s), {ans.failed_checks} failed", "",
              "## Regressions and drift (worst first)", ""]
    lines.append(f"Against baseline {ans.baseline}: {len(ans.regressions)} regression(s) in {ans.compared} compared values"
                 if ans.baseline else "No baseline run to compare with.")
    lines += [f"- {r}" for r in ans.regressions]
    if ans.drift_note:
        lines += ["", ans.drift_note]
    lines += [f"- {d}" for d in ans.drift]
    lines += ["", "## Failed budgets", ""] + ([f"- {f}" for f in ans.failed_budgets] or ["none"])
    lines += ["", "## Findings", ""]
    lines += [f"- {'reproduced' if ok else ('NOT reproduced' if ok is False else 'not checked')}: {n}"
              + (f" ({d})" if d else "") for n, ok, d in ans.findings] or ["no findings checked in this run"]
    lines += ["", "## Run", ""] + [f"- {k}: {v}" for k, v in metadata_items(run)]
    rows = report.summary_rows(run)
    latest = run.latest()
    used = _columns(run, rows)
    heads = ["variant"] + [f"{h} [{u}]" if u else h for h, _, u, _, _ in used] + ["budgets"]
    lines += ["", "## Variants", "", "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for r in rows:
        cells = [_cell(h, n, s, f, latest.get(r["variant"], {}), r.get("not_measured")) for h, n, _, s, f in used]
        text = [f"**{t}**" if cls == "fail" and t else t for t, _, cls in cells]
        lines.append("| " + " | ".join([r["variant"], *text, r["verdict"]]) + " |")
    return "\n".join(lines) + "\n"


def write_reports(run: Run, figures: Callable[[Run], list[Path]] | None = None, notes: list[str] | None = None,
                  comparison: Comparison | None = None, drift: DriftReport | None = None) -> list[Path]:
    """Write report.md, report.html (answer first, self-contained) and summary.json into the run folder."""
    notes = notes if notes is not None else []
    written: list[Path] = []
    figs: list[Path] = []
    if figures is not None:
        try:
            figs = figures(run)
            written += figs
        except HarnessError as exc:  # no sweep table yet: the reports still matter
            notes.append(f"figures skipped: {exc}")
    ans = answer(run, comparison, drift)
    summary = report.to_json(run)
    summary["answer"] = ans.__dict__
    if comparison is not None:
        summary["comparison"] = comparison.to_json()
    if drift is not None:
        summary["drift"] = drift.to_json()
    written.append(atomic_write_text(run.path / "report.md", render_markdown(run, ans)))
    written.append(atomic_write_text(run.path / "report.html", render_html(run, ans, figs)))
    written.append(atomic_write_text(run.path / "summary.json", json.dumps(summary, indent=2, default=str) + "\n"))
    for p in written:
        p.chmod(0o644)
    return written


# --- the history page --------------------------------------------------------------------------


def _inline_svg(path: Path) -> str:
    text = path.read_text()
    start = text.find("<svg")
    return text[start:] if start >= 0 else ""


def history_page(df: pd.DataFrame, runs: pd.DataFrame, drift: DriftReport, steps: list[Step],
                 figures: dict[str, tuple[Path, Path]], window: int) -> str:
    """history.html: drift verdict first, then steps, runs, and one inline SVG trend per metric."""
    bad = drift.regressions
    verdict = "FAIL" if bad else "PASS"
    parts = [f"<h1>kws-harness history ({len(runs)} runs)</h1>",
             f"<section id='answer'><div id='verdict' class='verdict v-{verdict}'>{'DRIFT' if bad else 'NO DRIFT'}</div>"]
    parts.append(f"<p class='counts'>newest complete run <b>{esc(str(drift.newest))}</b>, "
                 f"reference: median of {len(drift.reference_runs)} earlier complete run(s) (window {window}); "
                 f"{len(drift.skipped_partial)} partial run(s) shown but not compared</p>")
    parts.append("<section id='regressions'><h2>Drift beyond tolerance (worst first)</h2>")
    parts.append(_li([d.describe() for d in bad], "worst bad", FIRST_SCREEN_ITEMS)
                 if bad else "<p class='ok'>none</p>")
    parts.append("</section><section id='steps'><h2>Step changes</h2>")
    parts.append(_li([s.describe() for s in steps]) if steps else "<p class='muted'>none</p>")
    parts.append("</section></section><section id='runs'><h2>Runs</h2>")
    rows = []
    for r in runs.itertuples(index=False):
        rows.append([(r.run, None, ""), (f"{r.time:%Y-%m-%d %H:%M}", r.time.isoformat(), ""),
                     (r.sha + (" (dirty)" if r.dirty else ""), None, ""), (r.board, None, ""),
                     (int(r.values).__str__(), int(r.values), ""),
                     (str(r.failed), int(r.failed), "fail" if r.failed else ""),
                     (r.partial_reason or "complete", None, "fail" if r.partial else "")])
    parts.append(sortable_table(["run", "time (UTC)", "commit", "board", "values", "failed budgets", "status"], rows, "runs-table"))
    if drift.drifts:
        parts.append("<h2>Drift check, every compared value</h2>")
        drows = []
        for d in sorted(drift.drifts, key=lambda d: -d.severity):
            fmt = (lambda c: f"{c:+.4f}") if d.kind == "drop" else (lambda c: f"{c:+.2%}")
            drows.append([(d.variant, None, ""), (d.metric, None, ""), (d.unit, None, ""),
                          (f"{d.newest:.6g}", d.newest, ""), (f"{d.reference:.6g}", d.reference, ""),
                          (fmt(d.change), d.change, "fail" if not d.ok else ""),
                          (fmt(d.last_change), d.last_change, "fail" if not d.last_ok else ""),
                          (f"{d.tolerance:.4g}" if d.kind == "drop" else f"{d.tolerance:.1%}", d.tolerance, "")])
        parts.append(sortable_table(["variant", "metric", "unit", "newest", "median", "vs median",
                                     "vs last night", "tolerance"], drows, "drift-table"))
    parts.append("<section id='figures'><h2>Trends</h2><p class='muted'>hover a point for its run and commit; "
                 "band = allowed change around the median; dashed red = step, purple = budget change; "
                 "grey x = partial run</p>")
    for metric, (png, svg) in figures.items():
        parts.append(f"<figure id='fig-{esc(metric)}'>{_inline_svg(svg)}<figcaption>{esc(metric)} "
                     f"(<a href='{esc(png.name)}'>PNG</a>, <a href='{esc(svg.name)}'>SVG</a>)</figcaption></figure>")
    parts.append("</section>")
    return page(f"kws-harness history: {'DRIFT' if bad else 'no drift'}", "".join(parts))
