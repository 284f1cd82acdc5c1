"""pytest plugin: benchmark options, per-variant parametrization, the results store, the session table.

Loaded by the root ``conftest.py`` for every pytest run (``tests/`` too), so importing it must stay
cheap: only the standard library, pytest and harness.errors/paths at import time; budgets, results,
report and everything heavy are imported when first needed. Nothing is written to ``results/``
unless a test uses the ``record`` fixture.

Options (group "kws-harness"; none clash with pytest-embedded's --port/--count/dut or labgrid's
--lg-*): --device, --dataset, --budgets, --variants, --backend, --results-dir, --baseline,
--device-samples. See ``docs/CONTRACTS.md`` ("Suites, budgets, results").

Several boards: with pytest-xdist ``-n N`` the controller hands worker ``gwK`` the K-th entry of the
comma-separated ``--device`` list (``emu`` alone gives every worker its own emulated board) and
switches the default distribution to ``loadgroup`` with one group per variant, so a variant's tests
share one board and two workers never share one.
"""

from __future__ import annotations

import fnmatch
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .errors import HarnessError

STASH_STATE = pytest.StashKey["KwsState"]()
LOCAL_KINDS = ("emu", "native")  # boards the harness starts itself, one per worker


@dataclass
class KwsState:
    """What the plugin resolved for this process."""

    devices: list[str]  # the full --device list
    device: str  # this process's board
    worker: str | None  # xdist worker id, None in the main process
    run_dir: Path
    budgets_path: Path
    backend: str = "aot"
    baseline: Path | None = None
    budgets: Any = None
    store: Any = None
    variant_ids: list[str] | None = None
    recorded: int = 0
    measured: dict = field(default_factory=dict)  # (variant, metric) -> last Row of this process
    notes: list[str] = field(default_factory=list)


# --- options ------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kws-harness", "kws-harness benchmark suites")
    opts = [
        ("--device", dict(default="emu", metavar="DEV",
                          help="board(s): a serial port (/dev/ttyACM0), a pyserial URL (socket://host:4000), "
                               "'auto' (find Nano 33 BLE boards) or 'emu' (QEMU; default). Comma-separated "
                               "list with -n N: worker K uses entry K.")),
        ("--dataset", dict(default=None, metavar="DIR",
                           help="Speech Commands directory (default: the synthetic set, generated once into the cache)")),
        ("--budgets", dict(default=None, metavar="FILE", help="budgets TOML file (default: budgets.toml at the repo root)")),
        ("--variants", dict(default=None, metavar="IDS",
                            help="variant ids or glob patterns, comma-separated (default: all), e.g. 'fp32,qat-*-8'")),
        ("--backend", dict(default="aot", choices=("aot", "ref", "tflm"),
                           help="on-device inference backend (default aot; ref: TFLM-reference-style kernels "
                                "from the same generator; tflm needs the real board)")),
        ("--results-dir", dict(default=None, metavar="DIR",
                               help="results folder; the run goes to DIR/runs/<UTC time>-<sha>/ (default results/)")),
        ("--baseline", dict(default=None, metavar="last|PATH",
                            help="compare with a baseline run: 'last' (newest earlier run) or a run/results folder")),
        ("--device-samples", dict(default=64, type=int, metavar="N",
                                  help="test inputs sent to the board for accuracy and bit-exactness (default 64)")),
    ]
    for name, kwargs in opts:
        try:
            group.addoption(name, dest="kws_" + name.lstrip("-").replace("-", "_"), **kwargs)
        except ValueError:  # already added (plugin registered twice): keep the first
            pass
    parser.addini("kws_variant_ids", "the universe of variant ids (default: harness.variants.all_ids())",
                  type="linelist", default=[])


# --- configuration ------------------------------------------------------------------------------


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _expand_devices(devices: list[str]) -> list[str]:
    """Check every --device entry now (harness.boards.resolve) and expand ``auto`` into the ports found."""
    from . import boards

    out: list[str] = []
    for d in devices:
        try:
            specs = boards.resolve(d)
        except HarnessError as exc:
            raise HarnessError(f"--device {d!r} matches nothing: {exc}") from None
        if d in ("emu", "native"):
            out.append(d)
        else:
            out += [s.url or d for s in specs]
    return out


def _worker_index(worker: str) -> int:
    m = re.fullmatch(r"gw(\d+)", worker)
    return int(m.group(1)) if m else 0


def _results_root(config: pytest.Config) -> Path:
    from .paths import results_dir

    opt = config.getoption("kws_results_dir")
    return Path(opt).expanduser().resolve() if opt else results_dir()


def _writable_root(path: Path) -> bool:
    """True when ``path`` exists writable, or could be created under a writable ancestor."""
    p = path
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


def _prefer_loadgroup(config: pytest.Config) -> None:
    """With -n N and no explicit --dist, keep each variant on one worker (one board per worker).

    xdist turns ``-n`` into ``--dist load`` before any configure hook and reads the mode again when
    it makes the scheduler (``pytest_xdist_make_scheduler`` below), so switching here takes effect."""
    n = getattr(config.option, "numprocesses", None)
    explicit = any(a in ("--dist", "--distload", "-d") or a.startswith("--dist=") for a in config.invocation_params.args)
    if not hasattr(config, "workerinput") and n and not explicit and getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadgroup"


def _sigterm_as_interrupt(config: pytest.Config) -> None:
    """CI runners and ``timeout`` stop a job with SIGTERM; turn it into Ctrl-C so the session ends
    normally: what was measured is on disk anyway, and the table still prints."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, interrupt)
    config.add_cleanup(lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kws_variant(id): test of one model variant (set by the kws-harness plugin)")
    _prefer_loadgroup(config)
    if not hasattr(config, "workerinput"):
        _sigterm_as_interrupt(config)
    try:
        state = _configure(config)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[STASH_STATE] = state
    if config.getoption("kws_variants") or state.baseline is not None:
        selected_variant_ids(config)  # a pattern matching nothing fails here, before collection
    if state.baseline is not None and state.worker is None:
        try:
            _check_baseline(state)
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from None


def _configure(config: pytest.Config) -> KwsState:
    from .budgets import default_path

    workerinput = getattr(config, "workerinput", None)
    worker = workerinput["workerid"] if workerinput else None
    devices = _split(config.getoption("kws_device")) or ["emu"]
    n = getattr(config.option, "numprocesses", None)
    distributed = bool(n) and getattr(config.option, "dist", "no") != "no"
    dataset = config.getoption("kws_dataset")
    if dataset and not Path(dataset).expanduser().is_dir():
        raise HarnessError(f"--dataset {dataset}: no such directory (give a Speech Commands folder, or leave "
                           f"--dataset out for the synthetic set)")
    if config.getoption("kws_device_samples") < 1:
        raise HarnessError(f"--device-samples must be at least 1, got {config.getoption('kws_device_samples')}")

    if config.getoption("kws_backend") == "tflm" and any(d in LOCAL_KINDS for d in devices):
        raise HarnessError("--backend tflm runs on a real board only (its sources come from the PlatformIO "
                           "registry); use --backend aot with --device=emu")
    if workerinput and "kws_devices" in workerinput:
        devices = list(workerinput["kws_devices"])  # the controller's expanded, checked list
    elif worker is None:
        devices = _expand_devices(devices)
        real = [d for d in devices if d not in LOCAL_KINDS]
        dup = sorted({d for d in real if real.count(d) > 1})
        if dup:
            raise HarnessError(f"--device lists {dup[0]} twice: two workers would share one board")
        if distributed:
            if len(devices) == 1 and devices[0] in LOCAL_KINDS:
                pass  # every worker starts its own emulated (or native) board
            elif len(devices) != n:
                raise HarnessError(
                    f"--device lists {len(devices)} board(s) ({','.join(devices)}) but -n {n} starts {n} "
                    f"workers: give exactly one device per worker, or --device=emu"
                )
        elif len(devices) > 1:
            raise HarnessError(
                f"--device lists {len(devices)} boards ({','.join(devices)}); run with -n {len(devices)} "
                f"(pytest-xdist) to use one board per worker, or name one"
            )

    if worker is not None and len(devices) > 1:
        device = devices[_worker_index(worker) % len(devices)]
    else:
        device = devices[0]

    budgets_opt = config.getoption("kws_budgets")
    budgets_path = Path(budgets_opt).expanduser() if budgets_opt else default_path()
    if workerinput and "kws_run_dir" in workerinput:
        run_dir = Path(workerinput["kws_run_dir"])
    else:
        root = _results_root(config)
        if (config.getoption("kws_results_dir") or distributed) and not _writable_root(root):
            raise HarnessError(f"results directory {root} is not writable")
        from .results import new_run_dir

        run_dir = new_run_dir(root, sha=_git_sha())
    state = KwsState(devices=devices, device=device, worker=worker, run_dir=run_dir, budgets_path=budgets_path,
                     backend=config.getoption("kws_backend"))

    baseline = config.getoption("kws_baseline")
    if baseline:
        if workerinput and workerinput.get("kws_baseline"):
            state.baseline = Path(workerinput["kws_baseline"])
        else:
            from .results import baseline_run

            state.baseline = baseline_run(baseline, run_dir)
    if budgets_opt or budgets_path.exists():
        from .budgets import load

        state.budgets = load(budgets_path)  # fail at start on a typo, not after an hour of measuring
    return state


def _git_sha() -> str:
    from .results import git_info

    return git_info()["sha"]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: give every worker the same run folder and baseline."""
    state = node.config.stash.get(STASH_STATE, None)
    if state is None:
        return
    node.workerinput["kws_run_dir"] = str(state.run_dir)
    node.workerinput["kws_devices"] = list(state.devices)
    if state.baseline is not None:
        node.workerinput["kws_baseline"] = str(state.baseline)


def variant_scope(nodeid: str, variant_ids: list[str]) -> str:
    """The variant a test node belongs to (from its ``[...]`` id), else the nodeid itself."""
    if "[" not in nodeid or not nodeid.endswith("]"):
        return nodeid
    param = nodeid[nodeid.index("[") + 1 : -1]
    for v in sorted(variant_ids, key=len, reverse=True):
        if f"-{v}-" in f"-{param}-":
            return f"variant:{v}"
    return nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """One scope per variant, so a variant's tests share one worker and its board.

    xdist's own ``loadgroup`` tags nodeids through ``item._nodeid``, which pytest 9 no longer reads
    (nodeids come from ``Node._id``), so the grouping is done here from the variant in the nodeid."""
    if config.getoption("dist", "no") != "loadgroup" or config.stash.get(STASH_STATE, None) is None:
        return None
    from xdist.scheduler import LoadScopeScheduling

    ids = selected_variant_ids(config)

    class VariantScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return variant_scope(nodeid, ids)

    return VariantScheduling(config, log)


def kws_state(config: pytest.Config) -> KwsState:
    return config.stash[STASH_STATE]


# --- variants -----------------------------------------------------------------------------------


def all_variant_ids(config: pytest.Config) -> list[str]:
    ids = config.getini("kws_variant_ids")
    if ids:
        return list(ids)
    from . import variants  # the compression area's registry (imports torch)

    return list(variants.all_ids())


def selected_variant_ids(config: pytest.Config) -> list[str]:
    """Variant ids chosen by --variants (ids or glob patterns), in registry order."""
    state = kws_state(config)
    if state.variant_ids is not None:
        return state.variant_ids
    universe = all_variant_ids(config)
    patterns = _split(config.getoption("kws_variants"))
    if not patterns:
        chosen = universe
    else:
        for p in patterns:
            if not any(fnmatch.fnmatchcase(v, p) for v in universe):
                raise pytest.UsageError(
                    f"--variants {p!r} matches no variant id; valid ids: {', '.join(universe)}"
                )
        chosen = [v for v in universe if any(fnmatch.fnmatchcase(v, p) for p in patterns)]
    state.variant_ids = chosen
    return chosen


def variant_keywords(variant_id: str) -> list[str]:
    """Readable aliases added to -k matching: ``qat-sym-4`` also matches ``4bit``, ``quant``, ``sym``."""
    parts = variant_id.split("-")
    words = set(parts)
    if parts[0] in ("ptq", "qat") and len(parts) == 3:
        words |= {f"{parts[2]}bit", "quant"}
    if parts[0] in ("struct", "unstruct"):
        words |= {"pruned", f"{parts[2]}pct"} if len(parts) > 2 else {"pruned"}
    if variant_id == "fp32":
        words |= {"float", "float32"}
    return sorted(w for w in words if w)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that takes ``variant_id`` by the selected variants (session scope:
    pytest then runs a variant's tests together, so its board is started once)."""
    if "variant_id" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        if "variant_id" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return  # the test chose its own variants
    ids = selected_variant_ids(metafunc.config)
    metafunc.parametrize("variant_id", ids, ids=ids, scope="session")


@pytest.hookimpl(tryfirst=True)  # before xdist's worker hook reads the xdist_group marks
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash.get(STASH_STATE, None)
    if state is None:
        return
    bench = False
    for item in items:
        callspec = getattr(item, "callspec", None)
        vid = callspec.params.get("variant_id") if callspec else None
        if vid is not None:
            item.extra_keyword_matches.update(variant_keywords(vid))
            item.add_marker(pytest.mark.xdist_group(vid))
            item.add_marker(pytest.mark.kws_variant(vid))
        if "record" in getattr(item, "fixturenames", ()):
            bench = True
    if bench and items and not _writable_root(state.run_dir):
        # checked now, created at the first measurement (so --collect-only leaves nothing behind)
        raise pytest.UsageError(f"results directory {state.run_dir.parent.parent} is not writable")


def _check_baseline(state: KwsState) -> None:
    from .results import load_run

    base = load_run(state.baseline)
    have = set(base.variants)
    common = [v for v in state.variant_ids or [] if v in have]
    if not common:
        raise HarnessError(
            f"baseline {state.baseline} has none of the selected variants "
            f"({', '.join(state.variant_ids[:5])}{' ...' if len(state.variant_ids) > 5 else ''}); "
            f"it has: {', '.join(sorted(have)[:8]) or 'nothing'}"
        )


def _open_store(state: KwsState) -> Any:
    if state.store is None:
        from .results import RunStore

        state.store = RunStore(state.run_dir, writer=state.worker)
        meta = state.run_dir / "metadata.json"
        if not meta.exists():
            from .results import run_metadata

            extra: dict[str, Any] = {"devices_requested": state.devices}
            if state.baseline is not None:
                extra["baseline"] = str(state.baseline)
            state.store.write_metadata(**run_metadata(state.budgets, **extra))
    return state.store


# --- fixtures -----------------------------------------------------------------------------------


class Recorder:
    """``record(variant, metric, value, unit, limit=None, passed=None)``: append a row now.

    Without an explicit limit/passed, the budgets file decides. Call ``assert_budgets()`` at the end
    of a test so every value is on disk before the test fails on the first one over budget.
    """

    def __init__(self, state: KwsState, test_id: str, properties: list | None = None):
        self.state = state
        self.test_id = test_id
        self.properties = properties if properties is not None else []  # JUnit XML <property> rows
        self.failures: list[str] = []
        self.rows: list[Any] = []

    def __call__(self, variant: str, metric: str, value: float, unit: str = "",
                 limit: float | None = None, passed: bool | None = None) -> Any:
        store = _open_store(self.state)
        message = None
        if limit is None and passed is None and self.state.budgets is not None:
            check = self.state.budgets.check(variant, metric, float(value))
            if check.key is not None:
                limit = float(check.limit) if not isinstance(check.limit, bool) else float(check.limit)
                passed = check.passed
                message = check.message(unit)
        elif passed is False:
            message = f"{variant}: {metric} = {float(value):.6g} {unit} fails (limit {limit})"
        row = store.record(variant, metric, value, unit, limit, passed, self.test_id)
        self.state.recorded += 1
        self.state.measured[(variant, metric)] = row
        self.properties.append((metric, f"{row.value:.6g}{(' ' + unit) if unit else ''}"))
        self.rows.append(row)
        if passed is False and message:
            self.failures.append(message)
        return row

    def assert_budgets(self) -> None:
        if self.failures:
            pytest.fail("over budget: " + "; ".join(self.failures), pytrace=False)


@pytest.fixture(scope="session")
def kws(request: pytest.FixtureRequest) -> KwsState:
    """The plugin's resolved state: this worker's device, run folder, budgets, baseline."""
    return kws_state(request.config)


@pytest.fixture(scope="session")
def budgets(kws: KwsState) -> Any:
    """The loaded budgets (harness.budgets.Budgets); an empty set when no file exists."""
    if kws.budgets is None:
        from .budgets import Budgets

        kws.budgets = Budgets(path=None)
    return kws.budgets


@pytest.fixture(scope="session")
def results_store(kws: KwsState) -> Any:
    """This process's harness.results.RunStore (created on first use)."""
    return _open_store(kws)


@pytest.fixture
def record(request: pytest.FixtureRequest, kws: KwsState) -> Recorder:
    """Append a measurement to the run store at once and check it against the budgets."""
    return Recorder(kws, request.node.nodeid, request.node.user_properties)


@pytest.fixture(scope="session")
def device_spec(kws: KwsState) -> str:
    """This worker's board: 'emu', 'auto', a serial port or a pyserial URL."""
    return kws.device


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """In benchmark tests (those using ``record``), a HarnessError (board stopped answering, bad frame)
    fails the test with its one line instead of a library traceback."""
    try:
        return (yield)
    except HarnessError as exc:
        if "record" not in getattr(item, "fixturenames", ()):
            raise
        message = str(exc)
    pytest.fail(message, pytrace=False)


# --- end of session -----------------------------------------------------------------------------


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print the run's table (one row per variant) from what is on disk, all workers included."""
    state = config.stash.get(STASH_STATE, None)
    if state is None or getattr(config, "workerinput", None) is not None:
        return
    if not (state.run_dir.is_dir() and any(state.run_dir.glob("measurements*.csv"))):
        return
    from .report import failures_text, rich_table
    from .results import RunStore, load_run, utc_now

    try:
        store = state.store or RunStore(state.run_dir)
        store.write_metadata(finished=utc_now(), exitstatus=int(exitstatus))
        run = load_run(state.run_dir)
    except HarnessError as exc:
        terminalreporter.write_line(f"kws-harness: {exc}", red=True)
        return
    from rich.console import Console

    buf = io.StringIO()
    tty = terminalreporter.hasmarkup
    width = getattr(terminalreporter._tw, "fullwidth", 120) if tty else 200  # logs: never squeeze the table
    console = Console(file=buf, width=width, force_terminal=tty,
                      color_system="standard" if terminalreporter.hasmarkup else None)
    console.print(rich_table(run))
    for line in failures_text(run):
        console.print(f"failed: {line}")
    if state.baseline is not None:
        _baseline_summary(state, run, console)
    for note in state.notes:
        console.print(f"note: {note}")
    console.print(f"results: {state.run_dir}", soft_wrap=True)
    console.print(f"report:  python -m harness report {state.run_dir}", soft_wrap=True)
    terminalreporter.section("kws-harness results", sep="=")
    terminalreporter.write(buf.getvalue())


def _baseline_summary(state: KwsState, run: Any, console: Any) -> None:
    """The regressions of this run against the baseline (all variants), and the variants it lacks."""
    from .compare import compare_runs
    from .results import load_run

    try:
        base = load_run(state.baseline)
        tolerances = state.budgets.regression if state.budgets is not None else None
        cmp = compare_runs(base, run, tolerances, variants=run.variants)
    except HarnessError as exc:
        state.notes.append(f"baseline: {exc}")
        return
    if cmp.regressions:
        console.print(_regression_table(cmp))
    console.print(f"baseline {state.baseline.name}: {len(cmp.regressions)} regression(s) in "
                  f"{len(cmp.diffs)} compared values", soft_wrap=True)
    if cmp.only_in_new:
        state.notes.append(f"not in baseline {state.baseline.name} (not compared): {', '.join(cmp.only_in_new)}")


def _regression_table(cmp: Any) -> Any:
    from rich.table import Table

    table = Table(title="Regressions against the baseline", title_justify="left")
    for col in ("variant", "metric", "baseline", "now", "change", "allowed"):
        table.add_column(col, no_wrap=True)
    for d in cmp.regressions:
        change = f"{d.change:+.4f}" if d.kind == "drop" else f"{d.change:+.1%}"
        allowed = f"-{d.tolerance:.4f}" if d.kind == "drop" else f"+{d.tolerance:.1%}"
        table.add_row(d.variant, d.metric, f"{d.base:.6g}", f"{d.new:.6g} {d.unit}".strip(), change, allowed)
    return table
