"""``python -m harness report [RUN_DIR]`` and ``python -m harness compare BASE NEW``."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="tabulate a run and write report.md / report.html / plots into it",
        description="Print a run's table (one row per variant) and write Markdown, HTML, JSON and the "
        "compression plots into the run folder. RUN_DIR is a run folder or a results folder "
        "(its latest run is used); default: results/.",
    )
    p.add_argument("run_dir", nargs="?", default=None, metavar="RUN_DIR")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    p.add_argument("--no-write", action="store_true", help="only print; write no files")
    p.add_argument("--no-plots", action="store_true", help="write the reports but draw no figures")
    p.add_argument("--baseline", metavar="RUN", help="also compare with this run (path, or 'last' = the run before)")
    p.add_argument("--budgets", metavar="FILE", help="budgets file with [regression] tolerances (default budgets.toml)")
    p.set_defaults(func=run_report)

    c = sub.add_parser(
        "compare",
        help="compare a run with a baseline run; exit 1 on a regression",
        description="Accuracy drop, on-device/host latency growth and size growth beyond the "
        "[regression] tolerances of the budgets file fail (exit code 1) with a diff table, and so do a "
        "metric the baseline has and NEW lacks, a changed unit, and a paper finding that no longer "
        "reproduces. BASE and NEW are run folders or results folders (meaning their latest run).",
    )
    c.add_argument("base", metavar="BASE")
    c.add_argument("new", metavar="NEW")
    c.add_argument("--budgets", metavar="FILE", help="budgets file with [regression] tolerances (default budgets.toml)")
    c.add_argument("--json", action="store_true", help="print the comparison as JSON")
    c.set_defaults(func=run_compare)


def _console():
    """A terminal console, or a wide one when piped (logs should not squeeze the table)."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)


def _tolerances(path: str | None) -> dict[str, float]:
    from harness.bench import budgets

    p = path or budgets.default_path()
    if path is None and not budgets.default_path().exists():
        return {}
    return budgets.load(p).regression


def _context(run, cmp, tol: dict[str, float], notes: list[str]):
    """What the report compares with: --baseline, else the run before this one (shown, not counted in
    the exit code), and the drift check over the runs beside it (harness.bench.history)."""
    from harness.bench import compare, history, results
    from harness.errors import HarnessError

    if cmp is None:
        try:
            base = history.previous_complete(run.path)
            if base is not None:
                cmp = compare.compare_runs(results.load_run(base), run, tol, variants=run.variants)
        except HarnessError as exc:
            notes.append(f"no comparison with the previous run: {exc}")
    drift = None
    try:
        newest = None if history.partial_reason(run) else run.path.name  # an older run: its own drift then
        drift = history.drift_check(history.load_history(run.path.parent), tolerances=tol, newest=newest)
    except HarnessError as exc:
        notes.append(f"drift check skipped: {exc}")
    return cmp, drift


def run_report(args: argparse.Namespace) -> int:
    from harness.bench import html_report, report, results
    from harness.figures import run as figure_run

    run_path = results.resolve_run(args.run_dir)
    run = results.load_run(run_path)
    notes: list[str] = []
    cmp = None
    if args.baseline:
        from harness.bench import compare

        base = results.baseline_run(args.baseline, run_path, notes=notes)
        cmp = compare.compare_runs(results.load_run(base), run, _tolerances(args.budgets))
    shown, drift = _context(run, cmp, _tolerances(args.budgets), notes)
    written = [] if args.no_write else html_report.write_reports(
        run, figures=None if args.no_plots else figure_run.draw, notes=notes, comparison=shown, drift=drift)
    ans = html_report.answer(run, shown, drift)
    if args.json:
        out = report.to_json(run)
        out["answer"] = ans.__dict__
        out["written"] = [str(p) for p in written]
        out["notes"] = notes
        if cmp is not None:
            out["comparison"] = cmp.to_json()
        print(json.dumps(out, indent=2, default=str))
    else:
        console = _console()
        report.print_table(run, console)
        if cmp is not None:
            from harness.bench import compare

            console.print(compare.render(cmp))
            console.print(cmp.summary())
        for line in ans.lines():
            console.print(line, soft_wrap=True, highlight=False, markup=False)
        for p in written:
            console.print(f"wrote {p}")
        for n in notes:
            console.print(n)
    verdict = report.run_verdict(run)["verdict"]  # FAIL, or PARTIAL: a run that did not finish passes nothing
    return 1 if verdict in ("FAIL", "PARTIAL") or (cmp is not None and not cmp.ok) else 0


def run_compare(args: argparse.Namespace) -> int:
    from harness.bench import compare

    cmp = compare.compare_paths(args.base, args.new, _tolerances(args.budgets))
    if args.json:
        print(json.dumps(cmp.to_json(), indent=2, default=str))
    else:
        console = _console()
        console.print(compare.render(cmp))
        console.print(cmp.summary(), style="red" if not cmp.ok else None)
    if not cmp.ok:
        missing = len(cmp.missing)
        units = sum(1 for d in cmp.regressions if d.note.startswith("units differ"))
        beyond = len(cmp.regressions) - missing - units
        print(f"regression: {beyond} value(s) beyond tolerance, {missing} not measured in the new run, "
              f"{units} with another unit", file=sys.stderr)
    return 0 if cmp.ok else 1
