"""Nightly history: every run under ``runs/`` as one pandas table, step changes, and a drift check.

Why: each run folder stands alone, and the night-to-night comparison (``compare``) only sees one
step at a time, so a slow drift of 1 % per night never trips a 2 % or 5 % tolerance. Here the newest
complete run is compared with the *median of the last N complete runs* with the same ``[regression]``
tolerances, which catches such drifts while one noisy night cannot move the reference.

Partial runs (interrupted, crashed, stopped early) stay in the table with
``partial=True`` so they can be drawn as such, but never serve as the newest run or the reference.
"""

from __future__ import annotations

import fnmatch
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.bench.compare import DEFAULT_TOLERANCES, METRICS
from harness.bench.results import Run, list_runs, load_run
from harness.errors import HarnessError

COLUMNS = ["run", "time", "sha", "dirty", "partial", "partial_reason", "variant", "metric", "value",
           "unit", "limit", "passed", "board"]

DEFAULT_WINDOW = 7  # a week of nights
DERIVED = ("regression_",)  # rows a run derives from its baseline (--baseline): comparisons, not measurements


def run_time(run: Run) -> pd.Timestamp:
    """When the run started: metadata ``started``, else the ``<UTC time>-<sha>`` folder name."""
    started = run.metadata.get("started")
    if started:
        try:
            ts = pd.Timestamp(started)
            return ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")
        except (ValueError, TypeError):
            pass
    stamp = run.path.name.split("-")[0]
    try:
        return pd.Timestamp(pd.to_datetime(stamp, format="%Y%m%dT%H%M%SZ")).tz_localize("UTC")
    except (ValueError, TypeError):
        raise HarnessError(f"run {run.path}: no 'started' in metadata.json and the folder name "
                           f"{run.path.name!r} is not <YYYYmmddTHHMMSSZ>-<sha>") from None


def board_of(run: Run) -> str:
    """``board firmware`` from the HELLO of the boards used (``host`` for a host-only run)."""
    seen: list[str] = []
    for dev in run.metadata.get("devices", {}).values():
        name = f"{dev.get('board', '?')} {dev.get('firmware', '')}".strip()
        if name not in seen:
            seen.append(name)
    return ", ".join(seen) or "host"


def partial_reason(run: Run) -> str:
    """Why a run counts as partial ('' for a complete one).

    Where the results store judges a run itself (``Run.status()``), its answer is used. Otherwise the
    same rule from metadata.json: a run that started but never recorded ``finished`` (killed, crashed,
    still running), or ended with an exit status other than 0 or 1 (interrupted, internal error, usage
    error), or stopped early, is partial. Failed tests (1) are a complete run; rows without metadata
    are not judged."""
    status_of = getattr(run, "status", None)
    if callable(status_of):
        partial, why = status_of()
        return (why or "partial") if partial else ""
    meta = run.metadata
    if not meta or "started" not in meta:
        return ""
    if "finished" not in meta:
        return "did not finish (no 'finished' in metadata.json: killed, crashed or still running)"
    code = meta.get("exitstatus")
    if isinstance(code, int) and code not in (0, 1):
        meaning = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}
        return f"ended with exit status {code}: {meaning.get(code, 'abnormal end')}"
    if meta.get("stopped_early"):
        return f"stopped early ({meta['stopped_early']}): not every selected test ran"
    return ""


def previous_complete(run_dir: Path) -> Path | None:
    """The newest complete run beside ``run_dir`` that is older than it (the natural baseline of a
    nightly report: a partial night in between is skipped, never compared with)."""
    run_dir = Path(run_dir)
    for p in reversed([r for r in list_runs(run_dir.parent) if r.name < run_dir.name]):
        if not partial_reason(load_run(p)):
            return p
    return None


def _parse_since(since: str | None) -> pd.Timestamp | None:
    if since is None:
        return None
    try:
        ts = pd.Timestamp(since)
    except (ValueError, TypeError):
        raise HarnessError(f"--since {since!r} is not a date (expected YYYY-MM-DD or an ISO time)") from None
    if ts is pd.NaT:
        raise HarnessError(f"--since {since!r} is not a date (expected YYYY-MM-DD or an ISO time)")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _match(name: str, patterns: list[str] | None) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def load_history(root: str | Path | None = None, since: str | None = None,
                 variants: list[str] | None = None, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per (run, variant, metric): the latest value of each pair in each run, oldest run first.

    ``variants`` / ``metrics`` are names or glob patterns; ``since`` a date. A results folder with
    no runs, or filters that leave nothing, is an error naming what was looked for; a run folder that
    cannot be read is left out and listed in ``df.attrs["skipped"]``."""
    start = _parse_since(since)
    paths = list_runs(root)
    where = Path(root).expanduser() if root is not None else "results/"
    if not paths:
        raise HarnessError(f"no runs found under {where} (expected {where}/runs/<time>-<sha>/measurements.csv)")
    records: list[dict[str, Any]] = []
    skipped: list[str] = []
    for path in paths:
        try:
            run = load_run(path)
            t = run_time(run)
        except HarnessError as exc:  # one unreadable night must not hide all the others
            skipped.append(f"{path.name}: {exc}")
            continue
        if start is not None and t < start:
            continue
        git = run.metadata.get("git", {})
        reason = partial_reason(run)
        board = board_of(run)
        for variant, rows in run.latest().items():
            if not _match(variant, variants):
                continue
            for metric, r in rows.items():
                if metric.startswith(DERIVED) or not _match(metric, metrics):
                    continue
                records.append({
                    "run": path.name, "time": t, "sha": git.get("sha", path.name.split("-", 1)[-1]),
                    "dirty": bool(git.get("dirty")), "partial": bool(reason), "partial_reason": reason,
                    "variant": variant, "metric": metric, "value": r.value, "unit": r.unit,
                    "limit": r.limit, "passed": r.passed, "board": board,
                })
    if not records:
        what = []
        if since:
            what.append(f"since {since}")
        if variants:
            what.append(f"variants {','.join(variants)}")
        if metrics:
            what.append(f"metrics {','.join(metrics)}")
        raise HarnessError(f"no measurements under {where}" + (f" match {'; '.join(what)}" if what else ""))
    df = pd.DataFrame.from_records(records, columns=COLUMNS)
    df = df.sort_values(["time", "run", "variant", "metric"], kind="stable").reset_index(drop=True)
    df.attrs["skipped"] = skipped  # runs that could not be read, with why
    return df


def runs_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run (oldest first): time, sha, dirty, partial and why, board, values, budget failures."""
    g = df.groupby("run", sort=False)
    out = g.agg(time=("time", "first"), sha=("sha", "first"), dirty=("dirty", "first"),
                partial=("partial", "first"), partial_reason=("partial_reason", "first"),
                board=("board", "first"), values=("value", "size"),
                failed=("passed", lambda s: int((s == False).sum())))  # noqa: E712 (None is not False)
    return out.reset_index().sort_values(["time", "run"], kind="stable").reset_index(drop=True)


def rule(metric: str, tolerances: dict[str, float] | None = None) -> tuple[str, float]:
    """(kind, tolerance) of a metric: ``[regression]``'s for the ones compare knows, else ("any", 0)."""
    tol = dict(DEFAULT_TOLERANCES)
    tol.update(tolerances or {})
    if metric in METRICS:
        kind, key = METRICS[metric]
        return kind, tol[key]
    if metric == "exact":
        return "drop", 0.0
    return "any", 0.0


def _change(kind: str, ref: float, new: float) -> float:
    if kind == "drop":
        return new - ref
    if ref == 0:
        return 0.0 if new == 0 else float("inf")
    return (new - ref) / abs(ref)


def _worse(kind: str, change: float, tol: float) -> bool:
    if kind == "drop":
        return -change > tol + 1e-12
    if kind == "growth":
        return change > tol + 1e-12
    return False  # metrics without a direction never regress; they can still make a step


def severity(kind: str, change: float, tolerance: float) -> float:
    """How bad a change is in multiples of its tolerance (for worst-first lists across metrics)."""
    bad = -change if kind == "drop" else change
    if tolerance <= 0:
        return float("inf") if bad > 0 else 0.0
    return bad / tolerance


@dataclass(frozen=True)
class Drift:
    """The newest complete run's value of one (variant, metric) against the median of the runs before it."""

    variant: str
    metric: str
    unit: str
    newest: float
    reference: float  # median of the `window` complete runs before the newest
    window: int
    change: float  # absolute for "drop" metrics, relative for "growth"
    tolerance: float
    kind: str
    ok: bool
    last: float  # the run just before the newest (what a night-to-night comparison sees)
    last_change: float
    last_ok: bool
    slow: bool = False  # no night-to-night step in the window went beyond tolerance: only this check sees it

    @property
    def severity(self) -> float:
        """Change in units of the tolerance (worst first); <= 1 when within."""
        return severity(self.kind, self.change, self.tolerance)

    def describe(self) -> str:
        fmt = (lambda c: f"{c:+.4f}") if self.kind == "drop" else (lambda c: f"{c:+.1%}")
        allowed = f"-{self.tolerance:.4f}" if self.kind == "drop" else f"+{self.tolerance:.1%}"
        text = (f"{self.variant} {self.metric}: {self.newest:.6g} {self.unit} vs median {self.reference:.6g} of "
                f"{self.window} run(s): {fmt(self.change)} (allowed {allowed}); last night {fmt(self.last_change)}"
                ).replace("  ", " ")
        return text + (" [slow drift: no night-to-night step beyond tolerance]" if self.slow and not self.ok else "")


@dataclass
class DriftReport:
    newest: str | None
    reference_runs: list[str] = field(default_factory=list)
    drifts: list[Drift] = field(default_factory=list)
    skipped_partial: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Drift]:
        return sorted((d for d in self.drifts if not d.ok), key=lambda d: -d.severity)

    @property
    def missed_by_last_night(self) -> list[Drift]:
        """Drifts beyond tolerance that no night-to-night comparison in the window flagged."""
        return [d for d in self.regressions if d.slow]

    def lines(self) -> list[str]:
        if self.newest is None:
            return ["drift: no complete run to check"]
        if not self.reference_runs:
            return [f"drift: {self.newest} is the only complete run; nothing to compare with"]
        head = (f"drift: {self.newest} vs median of {len(self.reference_runs)} earlier run(s): "
                f"{len(self.regressions)} beyond tolerance in {len(self.drifts)} compared values")
        return [head] + [f"drift {d.describe()}" for d in self.regressions]

    def to_json(self) -> dict[str, Any]:
        return {"newest": self.newest, "reference_runs": self.reference_runs,
                "skipped_partial": self.skipped_partial,
                "drifts": [asdict(d) | {"severity": d.severity} for d in self.drifts]}


def drift_check(df: pd.DataFrame, window: int = DEFAULT_WINDOW,
                tolerances: dict[str, float] | None = None, newest: str | None = None) -> DriftReport:
    """Compare the newest complete run (or ``newest``) with the median of the ``window`` complete runs before it."""
    if window < 1:
        raise HarnessError(f"--window {window}: must be at least 1 run")
    runs = runs_table(df)
    complete = runs[~runs["partial"]]["run"].tolist()
    if newest is not None:
        if newest not in runs["run"].tolist():
            raise HarnessError(f"run {newest} is not in the history")
        complete = [r for r in complete if r != newest]
        order = runs["run"].tolist()
        complete = [r for r in complete if order.index(r) < order.index(newest)] + [newest]
    report = DriftReport(newest=complete[-1] if complete else None,
                         skipped_partial=runs[runs["partial"]]["run"].tolist())
    if len(complete) < 2:
        return report
    ref_runs = complete[-1 - window:-1]
    report.reference_runs = ref_runs
    cur = df[df["run"] == report.newest]
    prev = df[df["run"].isin(ref_runs)]
    for (variant, metric), row in cur.groupby(["variant", "metric"], sort=True):
        kind, tol = rule(metric, tolerances)
        if kind == "any":
            continue
        new = float(row["value"].iloc[0])
        unit = str(row["unit"].iloc[0])
        hist = prev[(prev["variant"] == variant) & (prev["metric"] == metric) & (prev["unit"] == unit)]
        if hist.empty:
            continue
        hist = hist.set_index("run").reindex([r for r in ref_runs if r in set(hist["run"])])
        values = hist["value"].astype(float).tolist()
        ref = float(statistics.median(values))
        last = values[-1]
        change, last_change = _change(kind, ref, new), _change(kind, last, new)
        series = values + [new]
        slow = not any(_worse(kind, _change(kind, a, b), tol) for a, b in zip(series, series[1:]))
        report.drifts.append(Drift(variant, metric, unit, new, ref, len(values), change, tol, kind,
                                   not _worse(kind, change, tol), last, last_change,
                                   not _worse(kind, last_change, tol), slow))
    return report


@dataclass(frozen=True)
class Step:
    """A jump between two consecutive complete runs of one series, or a change of its budget."""

    run: str
    sha: str
    variant: str
    metric: str
    kind: str  # "value" or "budget"
    before: float | None
    after: float | None
    change: float

    def describe(self) -> str:
        if self.kind == "budget":
            return f"{self.run} ({self.sha}) {self.variant} {self.metric}: budget {self.before} -> {self.after}"
        return (f"{self.run} ({self.sha}) {self.variant} {self.metric}: {self.before:.6g} -> {self.after:.6g}"
                f" ({self.change:+.1%})")


def step_changes(df: pd.DataFrame, tolerances: dict[str, float] | None = None) -> list[Step]:
    """Steps between consecutive complete runs: a value moving by more than its ``[regression]``
    tolerance (either way; metrics without one, such as host/device ratios, make no value steps), or a
    budget limit that changed. Partial runs are skipped (a gap is not a step)."""
    steps: list[Step] = []
    full = df[~df["partial"]]
    for (variant, metric), s in full.groupby(["variant", "metric"], sort=True):
        s = s.sort_values(["time", "run"], kind="stable")
        kind, tol = rule(metric, tolerances)
        prev = None
        for rec in s.itertuples(index=False):
            if prev is not None and prev.unit == rec.unit:
                change = _change(kind, prev.value, rec.value)
                if kind != "any" and abs(change) > tol + 1e-12:
                    steps.append(Step(rec.run, rec.sha, variant, metric, "value", prev.value, rec.value,
                                      _change("growth", prev.value, rec.value)))
                pl, nl = _limit(prev.limit), _limit(rec.limit)
                if pl != nl:
                    steps.append(Step(rec.run, rec.sha, variant, metric, "budget", pl, nl,
                                      _change("growth", pl, nl) if pl and nl else 0.0))
            prev = rec
    return steps


def _limit(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and x != x) else float(x)
