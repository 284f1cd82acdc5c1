"""``python -m harness history [RESULTS_DIR]`` and ``python -m harness export-metrics RUN --format F``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _list(values: list[str] | None) -> list[str] | None:
    """``--variants a,b c`` -> [a, b, c]."""
    if not values:
        return None
    return [v for item in values for v in item.split(",") if v]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "history",
        help="trends across runs: history.html + PNG/SVG per metric, and a drift check",
        description="Read every run under RESULTS_DIR/runs (default results/), write history.html and one "
        "trend figure per metric (PNG and SVG) into --out, and compare the newest complete run with the "
        "median of the last --window complete runs using the [regression] tolerances of the budgets file. "
        "Partial runs are drawn but never compared. Exit code 1 when a value drifted beyond tolerance.",
    )
    p.add_argument("results_dir", nargs="?", default=None, metavar="RESULTS_DIR")
    p.add_argument("--since", metavar="DATE", help="only runs started on or after DATE (YYYY-MM-DD or ISO time)")
    p.add_argument("--variants", nargs="+", metavar="ID", help="variant ids or globs (space or comma separated)")
    p.add_argument("--metrics", nargs="+", metavar="NAME", help="metric names or globs (space or comma separated)")
    p.add_argument("--window", type=int, default=7, metavar="N",
                   help="drift reference: median of the last N complete runs before the newest (default 7)")
    p.add_argument("--budgets", metavar="FILE", help="budgets file with [regression] tolerances (default budgets.toml)")
    p.add_argument("--out", metavar="DIR", help="where history.html and the figures go (default RESULTS_DIR/history)")
    p.add_argument("--no-plots", action="store_true", help="write history.html without trend figures")
    p.add_argument("--json", action="store_true", help="print the table summary, steps and drift as JSON")
    p.set_defaults(func=run_history)

    e = sub.add_parser(
        "export-metrics",
        help="a run's metrics as Bencher JSON, github-action-benchmark JSON or JUnit <property> elements",
        description="bencher: Bencher Metric Format JSON. github-action-benchmark: the customSmallerIsBetter "
        "list (--direction smaller, default) or customBiggerIsBetter list (--direction bigger). "
        "junit-properties: add kws.<variant>.<metric> <property> elements to the JUnit XML given by --junit "
        "(in place unless --out). RUN is a run folder or a results folder (its latest run).",
    )
    e.add_argument("run_dir", nargs="?", default=None, metavar="RUN")
    e.add_argument("--format", required=True, choices=("bencher", "github-action-benchmark", "junit-properties"))
    e.add_argument("--direction", default="smaller", choices=("smaller", "bigger"),
                   help="github-action-benchmark: which list (default smaller = time and size)")
    e.add_argument("--junit", metavar="FILE", help="junit-properties: the XML written by pytest --junitxml")
    e.add_argument("--out", metavar="FILE", help="write here instead of stdout (junit-properties: instead of in place)")
    e.set_defaults(func=run_export)


def _tolerances(path: str | None) -> dict[str, float]:
    from harness.bench import budgets

    if path is None and not budgets.default_path().exists():
        return {}
    return budgets.load(path or budgets.default_path()).regression


def run_history(args: argparse.Namespace) -> int:
    from harness.bench import history, html_report
    from harness.cache import atomic_write_text
    from harness.errors import HarnessError
    from harness.paths import results_dir

    root = Path(args.results_dir).expanduser() if args.results_dir else results_dir()
    df = history.load_history(root, since=args.since, variants=_list(args.variants), metrics=_list(args.metrics))
    tol = _tolerances(args.budgets)
    runs = history.runs_table(df)
    drift = history.drift_check(df, window=args.window, tolerances=tol)
    steps = history.step_changes(df, tol)
    out = Path(args.out).expanduser() if args.out else root / "history"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"--out {out}: cannot create it ({exc.strerror or exc})") from None
    figures = {}
    if not args.no_plots:
        from harness.figures import history as fig

        figures = fig.draw(df, runs, out, drift, steps, tol)
    page = atomic_write_text(out / "history.html", html_report.history_page(df, runs, drift, steps, figures, args.window))
    page.chmod(0o644)
    csv_path = out / "history.csv"
    df.to_csv(csv_path, index=False)
    if args.json:
        print(json.dumps({"runs": json.loads(runs.to_json(orient="records", date_format="iso")),
                          "skipped": df.attrs.get("skipped", []),
                          "drift": drift.to_json(), "steps": [s.__dict__ for s in steps],
                          "written": [str(page), str(csv_path)] + [str(p) for pair in figures.values() for p in pair]},
                         indent=2, default=str))
    else:
        print(f"{len(runs)} run(s), {int(runs['partial'].sum())} partial, {len(df)} values")
        for line in df.attrs.get("skipped", []):
            print(f"skipped {line}")
        for line in drift.lines():
            print(line)
        for s in steps:
            print(f"step {s.describe()}")
        print(f"wrote {page}")
        print(f"wrote {len(figures)} trend figure(s) (PNG + SVG) into {out}")
    return 1 if drift.regressions else 0


def run_export(args: argparse.Namespace) -> int:
    from harness.bench import exports, results
    from harness.errors import HarnessError

    run = results.load_run(results.resolve_run(args.run_dir))
    if args.format == "junit-properties":
        if not args.junit:
            raise HarnessError("--format junit-properties needs --junit FILE (the XML written by pytest --junitxml)")
        target = exports.add_junit_properties(run, Path(args.junit), Path(args.out) if args.out else None)
        print(f"wrote {target}", file=sys.stderr)
        return 0
    data = exports.to_bencher(run) if args.format == "bencher" else exports.to_github_action_benchmark(run, args.direction)
    text = json.dumps(data, indent=2) + "\n"
    if args.out:
        from harness.cache import atomic_write_text

        try:
            atomic_write_text(Path(args.out), text).chmod(0o644)
        except OSError as exc:
            raise HarnessError(f"--out {args.out}: cannot write it ({exc.strerror or exc})") from None
    else:
        sys.stdout.write(text)
    return 0
