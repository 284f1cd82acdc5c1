"""Command-line options (group "kws-harness") and their validation at configure time.

Options (none clash with pytest-embedded's --port/--count/dut or labgrid's --lg-*): --device,
--dataset, --budgets, --variants, --backend, --results-dir, --baseline, --device-samples, and for a
labgrid farm --lg-place / --lg-wait and labgrid's --lg-env / --lg-coordinator. Every bad
value is a ``pytest.UsageError`` with one line, before anything is collected or measured.

Several boards: with pytest-xdist ``-n N`` the controller hands worker ``gwK`` the K-th entry of the
comma-separated ``--device`` list (``emu`` alone gives every worker its own emulated board).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from harness.bench.pytestplugin.parametrize import selected_variant_ids
from harness.bench.pytestplugin.recording import check_baseline
from harness.bench.pytestplugin.state import LOCAL_KINDS, STASH_STATE, KwsState, _split, _writable_root
from harness.errors import HarnessError


def _labgrid_plugin_loads(pluginmanager: Any) -> bool:
    """True when labgrid's own pytest plugin is (or will be) loaded: then its --lg-env/--lg-coordinator serve."""
    import os
    from importlib import metadata

    if pluginmanager is None:
        return False
    if pluginmanager.has_plugin("labgrid"):
        return True
    if pluginmanager.is_blocked("labgrid") or os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    try:
        return any(ep.name == "labgrid" for ep in metadata.entry_points(group="pytest11"))
    except Exception:  # noqa: BLE001 - broken metadata: assume it does not load
        return False


def pytest_addoption(parser: pytest.Parser, pluginmanager: Any = None) -> None:
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
        ("--lg-place", dict(default=None, metavar="PLACES",
                            help="labgrid place(s) for --device=labgrid, comma-separated (default: LG_PLACE); "
                                 "same as --device=labgrid:P1,labgrid:P2")),
        ("--lg-wait", dict(default=None, type=float, metavar="S",
                           help="seconds to wait for a labgrid place held by someone else (default 60, or "
                                "KWS_LG_WAIT); "
                                "then it is reported, never taken")),
    ]
    for name, kwargs in opts:
        try:
            group.addoption(name, dest="kws_" + name.lstrip("-").replace("-", "_"), **kwargs)
        except ValueError:  # already added (plugin registered twice): keep the first
            pass
    # labgrid's own pytest plugin is off (pyproject: -p no:labgrid; its global step logger breaks
    # in-process pytest runs); its two options keep their names, meaning and dest here.
    for name, dest, meta, text in [("--lg-env", "lg_env", "FILE", "labgrid environment file for the places "
                                    "(default: LG_ENV, else lab/<board>.yaml)"),
                                   ("--lg-coordinator", "lg_coordinator", "HOST:PORT",
                                    "labgrid coordinator (default: LG_COORDINATOR, else 127.0.0.1:20408)")]:
        if _labgrid_plugin_loads(pluginmanager):
            break
        try:
            group.addoption(name, dest=dest, default=None, metavar=meta, help=text)
        except ValueError:  # labgrid's plugin is loaded (-p labgrid): its option serves
            pass
    parser.addini("kws_variant_ids", "the universe of variant ids (default: harness.model.variants.all_ids())",
                  type="linelist", default=[])


def _expand_devices(devices: list[str]) -> list[str]:
    """Check every --device entry now (harness.device.boards.resolve) and expand ``auto`` into the ports found."""
    from harness.device import boards

    out: list[str] = []
    for d in devices:
        try:
            specs = boards.resolve(d)
        except HarnessError as exc:
            raise HarnessError(f"--device {d!r} matches nothing: {exc}") from None
        if d in ("emu", "native") or d.startswith("socket://"):  # socket: keep ?board=
            out.append(d)
        else:
            out += [s.url or d for s in specs]
    return out


def _labgrid_devices(config: pytest.Config, devices: list[str]) -> list[str]:
    """``--device=labgrid`` + --lg-place/LG_PLACE -> labgrid:PLACE entries; set up the labgrid board kind
    (coordinator, env file, wait) and release its places when this process ends."""
    import os

    if devices == ["labgrid"]:
        places = _split(config.getoption("kws_lg_place") or os.environ.get("LG_PLACE"))
        if not places:
            raise HarnessError("--device=labgrid needs --lg-place NAME[,NAME...] (or LG_PLACE), or use --device=labgrid:NAME")
        devices = [f"labgrid:{p}" for p in places]
    if any(d.startswith("labgrid:") for d in devices):
        from harness.device.boards import labgrid

        labgrid.SETTINGS.coordinator = config.getoption("lg_coordinator", None) or None
        labgrid.SETTINGS.env_file = config.getoption("lg_env", None) or None
        if config.getoption("kws_lg_wait") is not None:
            labgrid.SETTINGS.wait_s = float(config.getoption("kws_lg_wait"))
        config.add_cleanup(labgrid.close_all)  # release this process's places, also after failures and Ctrl-C
    return devices


def _worker_index(worker: str) -> int:
    m = re.fullmatch(r"gw(\d+)", worker)
    return int(m.group(1)) if m else 0


def _results_root(config: pytest.Config) -> Path:
    from harness.paths import results_dir

    opt = config.getoption("kws_results_dir")
    return Path(opt).expanduser().resolve() if opt else results_dir()


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
    config.addinivalue_line("markers", "kws_metrics(*names): budgeted metrics the test measures for its variant "
                                       "(a selected test's metric that never arrives fails the variant)")
    _prefer_loadgroup(config)
    if not hasattr(config, "workerinput"):
        _sigterm_as_interrupt(config)
    try:
        state = _configure(config)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[STASH_STATE] = state
    if state.worker is None and not config.pluginmanager.has_plugin("kws-harness-outcomes"):
        from harness.bench.pytestplugin.recording import OutcomeLog

        config.pluginmanager.register(OutcomeLog(state), "kws-harness-outcomes")
    if config.getoption("kws_variants") or state.baseline is not None:
        selected_variant_ids(config)  # a pattern matching nothing fails here, before collection
    if state.baseline is not None and state.worker is None:
        try:
            check_baseline(state)
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from None


def _configure(config: pytest.Config) -> KwsState:
    from harness.bench.budgets import default_path

    workerinput = getattr(config, "workerinput", None)
    worker = workerinput["workerid"] if workerinput else None
    devices = _labgrid_devices(config, _split(config.getoption("kws_device")) or ["emu"])
    n = getattr(config.option, "numprocesses", None)
    distributed = bool(n) and getattr(config.option, "dist", "no") != "no"
    dataset = config.getoption("kws_dataset")
    if dataset and not Path(dataset).expanduser().is_dir():
        raise HarnessError(f"--dataset {dataset}: no such directory (give a Speech Commands folder, or leave "
                           f"--dataset out for the synthetic set)")
    if dataset:
        from harness.data.clips import check_layout

        try:
            check_layout(Path(dataset).expanduser().resolve())  # a folder that is no data set: say so now, once
        except HarnessError as exc:
            raise HarnessError(f"--dataset {dataset}: {exc}") from None
    if config.getoption("kws_device_samples") < 1:
        raise HarnessError(f"--device-samples must be at least 1, got {config.getoption('kws_device_samples')}")

    if config.getoption("kws_backend") == "tflm" and any(d in LOCAL_KINDS for d in devices):
        raise HarnessError("--backend tflm runs on a real board only (TFLM for Arduino, fetched from GitHub "
                           "by env nano33ble_tflm); use --backend aot with --device=emu")
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
        from harness.bench.results import new_run_dir

        run_dir = new_run_dir(root, sha=_git_sha())
    state = KwsState(devices=devices, device=device, worker=worker, run_dir=run_dir, budgets_path=budgets_path,
                     backend=config.getoption("kws_backend"))

    baseline = config.getoption("kws_baseline")
    if baseline:
        if workerinput and workerinput.get("kws_baseline"):
            state.baseline = Path(workerinput["kws_baseline"])
        else:
            from harness.bench.results import baseline_run

            state.baseline = baseline_run(baseline, run_dir, notes=state.notes)
    if budgets_opt or budgets_path.exists():
        from harness.bench.budgets import load

        state.budgets = load(budgets_path)  # fail at start on a typo, not after an hour of measuring
    return state


def _git_sha() -> str:
    from harness.bench.results import git_info

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
