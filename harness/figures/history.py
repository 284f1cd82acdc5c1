"""Trend plots of the nightly history: per metric, one line per variant across runs (past eight
variants, small multiples: one panel per variant family such as ``qat-sym-*``).

Each figure shows the tolerance band of ``[regression]`` around the drift reference (median of the
last N complete runs), commits as x labels (``*`` = dirty checkout), step changes as dashed vertical
lines, partial runs as hollow grey markers outside the lines, and drift regressions ringed in red.
The SVG carries a ``<title>`` per point (run, commit, value), so a browser shows it on hover.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd

from harness.bench.history import DriftReport, Step, rule
from harness.bench.report import variant_order
from harness.cache import atomic_write_text

MAX_HOVER_POINTS = 600  # one SVG group per point; past this the file grows for little use
MAX_LINES = 8  # more lines than this in one metric: one panel per variant family (small multiples)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _label(rec: pd.Series) -> str:
    sha = f"{rec['sha']}{'*' if rec['dirty'] else ''}"
    return f"{rec['time']:%m-%d %H:%M}\n{sha}" + ("\npartial" if rec["partial"] else "")


def family(variant: str) -> str:
    """The panel a variant goes to when a metric has too many lines: its id with the numbers starred
    (``qat-sym-4`` -> ``qat-sym-*``, ``struct-l1-40-ft`` -> ``struct-l1-*-ft``)."""
    return re.sub(r"(?<=-)\d+(?=-|$)", "*", variant)


def _panel(ax, sub: pd.DataFrame, keys: list[tuple[str, str]], metric: str, order: dict[str, int],
           drift: DriftReport | None, steps: list[Step], kind: str, tol: float, several_units: bool,
           hover: dict[str, str]) -> None:
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    bad = {(d.variant, d.metric, d.unit) for d in drift.regressions} if drift else set()
    for i, (variant, unit) in enumerate(keys):
        s = sub[(sub["variant"] == variant) & (sub["unit"] == unit)]
        color = colors[i % len(colors)]
        label = f"{variant} ({unit or '-'})" if several_units else variant
        s = s.assign(x=s["run"].map(order)).sort_values("x")
        full = s[~s["partial"]]
        ax.plot(full["x"], full["value"], "-o", color=color, label=label, markersize=4, zorder=3)
        part = s[s["partial"]]
        if not part.empty:
            ax.plot(part["x"], part["value"], "x", color="grey", markersize=7, zorder=2,
                    label=None if i else "partial run (not compared)")
        if drift is not None and drift.reference_runs:
            ref = [d for d in drift.drifts if d.variant == variant and d.metric == metric and d.unit == unit]
            if ref and kind in ("growth", "drop"):
                r = ref[0].reference
                lo, hi = (r - tol, r) if kind == "drop" else (r, r * (1 + tol) if r >= 0 else r * (1 - tol))
                ax.axhspan(lo, hi, color=color, alpha=0.12, zorder=1)
                ax.axhline(r, color=color, lw=0.8, ls=":", zorder=1)
        if (variant, metric, unit) in bad and not full.empty:
            last = full.iloc[-1]
            ax.plot([last["x"]], [last["value"]], "o", ms=13, mfc="none", mec="red", mew=2, zorder=4)
        if len(sub) <= MAX_HOVER_POINTS:
            for rec in s.itertuples(index=False):
                gid = f"pt-{_safe(variant)}-{_safe(unit)}-{order[rec.run]}"
                (pt,) = ax.plot([rec.x], [rec.value], "o", ms=8, alpha=0.0, zorder=5)
                pt.set_gid(gid)
                hover[gid] = (f"{variant} {metric} = {rec.value:.6g} {rec.unit}\nrun {rec.run}\n"
                              f"commit {rec.sha}{' (dirty)' if rec.dirty else ''}"
                              + (f"\npartial: {rec.partial_reason}" if rec.partial else ""))
    variants = {v for v, _ in keys}
    for st in steps:
        if st.metric != metric or st.run not in order or st.variant not in variants:
            continue
        x = order[st.run] - 0.5
        ax.axvline(x, color="red" if st.kind == "value" else "purple", ls="--", lw=1, zorder=2)
        ax.annotate(f"{'step' if st.kind == 'value' else 'budget'} {st.variant}", (x, 1.0),
                    xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right", fontsize=7,
                    color="red" if st.kind == "value" else "purple")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="best")


def draw_metric(df: pd.DataFrame, runs: pd.DataFrame, metric: str, out_dir: Path, drift: DriftReport | None,
                steps: list[Step], tolerances: dict[str, float] | None = None) -> tuple[Path, Path]:
    """Draw one metric's trend figure (one panel, or one panel per variant family past MAX_LINES
    lines); returns (png, svg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = df[df["metric"] == metric]
    order = {r: i for i, r in enumerate(runs["run"])}
    kind, tol = rule(metric, tolerances)
    units = sorted(set(sub["unit"]) - {""})
    keys = sorted({(v, u) for v, u in zip(sub["variant"], sub["unit"])}, key=lambda k: (variant_order(k[0]), k[1]))
    panels: dict[str, list[tuple[str, str]]] = {}
    if len(keys) <= MAX_LINES:
        panels[""] = keys
    else:
        for k in keys:
            panels.setdefault(family(k[0]), []).append(k)
    ncols = 1 if len(panels) == 1 else min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    width = max(6.0, 0.9 * len(order) + 2) if ncols == 1 else ncols * max(4.0, 0.5 * len(order) + 2)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 4.0 if nrows == 1 else 2.8 * nrows + 0.6),
                             sharex=True, squeeze=False)
    hover: dict[str, str] = {}
    several_units = len(set(sub["unit"])) > 1  # e.g. instructions (emulated) and cycles (a real board)
    flat = list(axes.flat)
    for ax, (name, members) in zip(flat, panels.items()):
        _panel(ax, sub, members, metric, order, drift, steps, kind, tol, several_units, hover)
        if name:
            ax.set_title(name, fontsize=8)
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    for ax in flat:
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([_label(r) for _, r in runs.iterrows()], fontsize=6 if len(panels) > 1 else 7)
        ax.set_xlim(-0.6, len(order) - 0.4)
    band = {"growth": f"band: +{tol:.1%} allowed growth", "drop": f"band: -{tol:.4g} allowed drop"}.get(kind, "")
    title = f"{metric}" + (f" [{', '.join(units)}]" if units else "") + (f"  ({band})" if band else "")
    if len(panels) == 1:
        flat[0].set_title(title, fontsize=10)
        flat[0].set_ylabel(", ".join(units) or metric)
    else:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"history_{_safe(metric)}.png"
    svg = out_dir / f"history_{_safe(metric)}.svg"
    fig.savefig(png, dpi=110)
    # text stays text (searchable, smaller); a per-figure salt keeps ids unique when pages inline several SVGs
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"kws-{metric}"}):
        fig.savefig(svg)
    plt.close(fig)
    if hover:
        text = svg.read_text()

        def add_title(m: re.Match) -> str:
            return m.group(0) + f"\n   <title>{html.escape(hover[m.group(1)])}</title>"

        text = re.sub(r'<g id="(pt-[^"]+)">', lambda m: add_title(m) if m.group(1) in hover else m.group(0), text)
        atomic_write_text(svg, text)
    for p in (png, svg):
        p.chmod(0o644)
    return png, svg


def draw(df: pd.DataFrame, runs: pd.DataFrame, out_dir: Path, drift: DriftReport | None, steps: list[Step],
         tolerances: dict[str, float] | None = None) -> dict[str, tuple[Path, Path]]:
    """One (png, svg) per metric, metrics in name order."""
    return {m: draw_metric(df, runs, m, out_dir, drift, steps, tolerances) for m in sorted(set(df["metric"]))}
