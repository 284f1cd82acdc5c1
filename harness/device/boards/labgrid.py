"""Boards in a labgrid farm (``--device=labgrid:PLACE``): acquire the place through the coordinator,
flash each build through the place's driver, talk to it over the place's serial port, release at the end.

Why labgrid: a coordinator knows every lab host's boards (exporters publish them), places give a board a
name and an owner, so several runners share a farm without stealing each other's boards. The harness
acquires a place once per process (one per pytest-xdist worker), keeps it for all variants, and releases
it when the process ends (pytest's cleanup, atexit; SIGTERM is turned into Ctrl-C so both run). A place
held by someone else is waited for (``wait_s``), then reported in one line; it is never kicked.

Coordinator: ``LG_COORDINATOR`` (labgrid's variable; ``--lg-coordinator`` in pytest), default
127.0.0.1:20408. The place's target comes from ``--lg-env``/``LG_ENV`` (a labgrid environment whose
``RemotePlace`` name is ``!template $LG_PLACE``) or else from ``lab/<board>.yaml``; ``<board>`` is the
``board`` of the place's ``KwsBoardInfo`` resource (or its ``board`` tag): ``emu`` or ``nano33ble``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.paths import REPO_ROOT

DEFAULT_COORDINATOR = "127.0.0.1:20408"
LAB_DIR = REPO_ROOT / "lab"
BOARD_ENVS = {"emu": "emu_m4", "nano33ble": "nano33ble"}  # KwsBoardInfo.board -> PlatformIO env
PLACE_RE = re.compile(r"[A-Za-z0-9_.+-]+")
TAG_RE = re.compile(r"[A-Za-z0-9_-]+=[A-Za-z0-9_.+-]+")  # labgrid:board=nano33ble: every place with that tag


@dataclass
class Settings:
    """Set by the pytest plugin from its options (labgrid's names); read when a place is first used."""

    coordinator: str | None = None  # None: LG_COORDINATOR, else DEFAULT_COORDINATOR
    env_file: str | None = None  # None: LG_ENV, else lab/<board>.yaml
    wait_s: float = field(default_factory=lambda: float(os.environ.get("KWS_LG_WAIT", "60")))  # a held place


SETTINGS = Settings()


def coordinator_address() -> str:
    return SETTINGS.coordinator or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR


@dataclass
class _Held:
    name: str
    board: str
    target: Any = None
    where: dict[str, str] = field(default_factory=dict)


class _Client:
    """This process's coordinator session (labgrid's ClientSession, driven synchronously)."""

    def __init__(self, address: str):
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # gRPC's fork/thread notes are not the harness's output
        try:
            from labgrid.remote.client import start_session
        except ImportError as exc:
            raise HarnessError(f"labgrid is not installed ({exc}); run make setup (requirements.txt pins it)") from None

        self.address = address
        quiet = logging.NullHandler()  # labgrid logs a refused connection on the root logger; we say it once
        logging.getLogger().addHandler(quiet)
        try:
            self.session = start_session(address)
        except Exception as exc:  # noqa: BLE001 - grpc/ConnectionRefused/ServerError: one line
            raise HarnessError(f"labgrid coordinator {address}: not reachable ({_first_line(exc)}); "
                               f"set LG_COORDINATOR=HOST:PORT") from None
        finally:
            logging.getLogger().removeHandler(quiet)
        self.held: dict[str, _Held] = {}
        self.identity = f"{self.session.gethostname()}/{self.session.getuser()}"

    def run(self, coro: Any) -> Any:
        return self.session.loop.run_until_complete(coro)

    def sync(self) -> None:
        if not self.run(self.session.sync_with_coordinator()):
            raise HarnessError(f"labgrid coordinator {self.address}: connection lost")

    def place(self, name: str) -> Any:
        self.sync()
        place = self.session.places.get(name)
        if place is None:
            known = ", ".join(sorted(self.session.places)) or "none"
            raise HarnessError(f"labgrid place {name}: not on coordinator {self.address} (places: {known})")
        return place

    def resources(self, place: Any) -> dict[tuple[str, str, str, str], Any]:
        """The exported resources the place matches: {(exporter, group, cls, name): ResourceEntry}."""
        found = {}
        for exporter, groups in self.session.resources.items():
            for group_name, group in groups.items():
                for res_name, res in group.items():
                    path = (exporter, group_name, res.cls, res_name)
                    if place.getmatch(path) is not None:
                        found[path] = res
        return found

    def board_of(self, name: str) -> str:
        place = self.place(name)
        found = self.resources(place)
        if not found and not place.tags.get("board"):
            raise HarnessError(f"labgrid place {name}: matches no exported resource (is its exporter running? "
                               f"labgrid-client -p {name} show)")
        info = [r for p, r in found.items() if p[2] == "KwsBoardInfo"]
        board = (info[0].args.get("board") if info else None) or place.tags.get("board")
        if not board:
            raise HarnessError(f"labgrid place {name}: no KwsBoardInfo resource and no 'board' tag; set one with "
                               f"labgrid-client -p {name} set-tags board=nano33ble")
        if board not in BOARD_ENVS:
            raise HarnessError(f"labgrid place {name}: board {board!r} is not one of {', '.join(BOARD_ENVS)}")
        return board

    def matching(self, key: str, value: str) -> list[str]:
        """Places whose tag ``key`` is ``value`` (for ``board``, also their KwsBoardInfo's board)."""
        self.sync()
        names = []
        for name, place in sorted(self.session.places.items()):
            boards = {r.args.get("board") for p, r in self.resources(place).items() if p[2] == "KwsBoardInfo"}
            if place.tags.get(key) == value or (key == "board" and value in boards):
                names.append(name)
        return names

    def acquire(self, name: str, wait_s: float) -> None:
        """Acquire ``name``, waiting up to ``wait_s`` while another user holds it; never kick."""
        import grpc
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        deadline = time.monotonic() + wait_s
        while True:
            place = self.place(name)
            holder = place.acquired
            if not holder:
                if not self.resources(place):
                    raise HarnessError(f"labgrid place {name}: matches no exported resource (is its exporter running?)")
                try:
                    self.run(self.session.stub.AcquirePlace(pb.AcquirePlaceRequest(placename=name)))
                    self.sync()
                    return
                except grpc.aio.AioRpcError as exc:
                    if "already acquired" not in (exc.details() or ""):
                        raise HarnessError(f"labgrid place {name}: cannot acquire ({exc.details()})") from None
                    holder = "another client"  # taken between our look and our request
            if time.monotonic() >= deadline:
                raise HarnessError(f"labgrid place {name}: held by {holder}; waited {wait_s:g} s, not taken "
                                   f"(the holder releases it with labgrid-client -p {name} release)")
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    def release(self, name: str) -> None:
        """Release ``name`` only if this identity still holds it (``fromuser``: never someone else's)."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        self.held.pop(name, None)
        self.run(self.session.stub.ReleasePlace(pb.ReleasePlaceRequest(placename=name, fromuser=self.identity)))
        self.sync()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self.session.stop())
            self.run(self.session.close())


_clients: dict[str, _Client] = {}
_lock = threading.Lock()


def client() -> _Client:
    address = coordinator_address()
    with _lock:
        if address not in _clients:
            _clients[address] = _Client(address)
        return _clients[address]


def board_of_place(name: str) -> str:
    """The board kind (``emu`` / ``nano33ble``) of a place, asked from the coordinator (resolve time)."""
    return client().board_of(name)


def places_matching(pattern: str) -> list[str]:
    """``TAG=VALUE`` -> the places carrying that tag (``board=nano33ble`` also matches by KwsBoardInfo)."""
    key, _, value = pattern.partition("=")
    names = client().matching(key, value)
    if not names:
        raise HarnessError(f"labgrid: no place on {coordinator_address()} has {key}={value}")
    return names


def release_all() -> list[str]:
    """Release every place this process acquired (idempotent); returns their names. Errors are swallowed:
    this runs while a run ends, and a place left behind is released by its holder's next release."""
    released = []
    with _lock:
        clients = list(_clients.values())
    for c in clients:
        for name in list(c.held):
            with contextlib.suppress(Exception):
                c.release(name)
                released.append(name)
            c.held.pop(name, None)
    return released


def close_all() -> None:
    release_all()
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
    for c in clients:
        c.close()


atexit.register(close_all)


def sigterm_as_interrupt() -> None:
    """SIGTERM (CI cancelling a job) unwinds like Ctrl-C, so every place is released by the normal cleanup."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        def _raise(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, _raise)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class LabgridLink:
    """A place of a labgrid farm: acquired once per process, flashed per build through its driver."""

    kind = "labgrid"
    needs_build = False  # like a real board: `device hello` talks to whatever runs on it

    def __init__(self, spec: Any, flash: bool = True):  # a spec.BoardSpec (spec.py imports this module)
        self.spec = spec
        self.flash = flash
        self.place = spec.url.partition(":")[2] if spec.url else ""
        self.where: dict[str, str] = {}

    def _hold(self) -> _Held:
        c = client()
        held = c.held.get(self.place)
        if held is None:
            board = c.board_of(self.place)
            sigterm_as_interrupt()
            try:
                c.acquire(self.place, SETTINGS.wait_s)
            except KeyboardInterrupt:  # Ctrl-C/SIGTERM while the request may be in flight: release at exit
                c.held[self.place] = _Held(self.place, board)
                raise
            held = c.held[self.place] = _Held(self.place, board)
            try:
                held.target = self._target(c, held)
            except BaseException:
                c.release(self.place)
                raise
        return held

    def _target(self, c: _Client, held: _Held) -> Any:
        """The place's labgrid Target: RemotePlace expanded through our session, drivers from the env file."""
        from labgrid import Environment
        from labgrid.resource.remote import RemotePlaceManager

        from harness.device.boards import lgdrivers  # noqa: F401 - registers our resources and drivers

        env_file = SETTINGS.env_file or os.environ.get("LG_ENV") or str(LAB_DIR / f"{held.board}.yaml")
        if not Path(env_file).is_file():
            raise HarnessError(f"labgrid place {held.name}: environment file {env_file} does not exist")
        manager = RemotePlaceManager.get()
        manager.session, manager.loop = c.session, c.session.loop
        os.environ["LG_PLACE"] = held.name  # labgrid's convention: RemotePlace name: !template $LG_PLACE
        try:
            env = Environment(config_file=env_file)
            targets = list(env.config.get_targets())
            if not targets:
                raise HarnessError(f"labgrid environment {env_file}: defines no target")
            target = env.get_target(targets[0])
        except HarnessError:
            raise
        except Exception as exc:  # noqa: BLE001 - labgrid's config/binding errors: one line
            raise HarnessError(f"labgrid place {held.name}: {env_file}: {_first_line(exc)}") from None
        return target

    def _check_alive(self, c: _Client) -> dict[tuple[str, str, str, str], Any]:
        """The place's resources right now; an exporter that went away fails here, in one line."""
        place = c.place(self.place)
        if place.acquired != c.identity:
            raise HarnessError(f"labgrid place {self.place}: no longer acquired by us (now: {place.acquired or 'nobody'})")
        found = {}
        for path in place.acquired_resources:
            exporter, group, cls, name = path
            res = c.session.resources.get(exporter, {}).get(group, {}).get(name)
            if res is None or not (getattr(res, "data", None) or {}).get("avail"):  # deleted entries are emptied
                raise HarnessError(f"labgrid place {self.place}: exporter {exporter} is gone "
                                   f"({group}/{cls}/{name} no longer published)")
            found[tuple(path)] = res
        if not found:
            raise HarnessError(f"labgrid place {self.place}: holds no resources (exporter gone?)")
        return found

    @contextlib.contextmanager
    def start(self, build: Any) -> Iterator[str]:
        """Flash ``build`` (when given and flashing) through the place's driver; yields the serial URL."""
        from labgrid.protocol import BootstrapProtocol

        c = client()
        held = self._hold()
        resources = self._check_alive(c)
        target = held.target
        try:
            board_id = ""
            if build is not None and self.flash:
                flasher = target.get_driver(BootstrapProtocol)
                if hasattr(flasher, "flash"):
                    flasher.flash(build)
                else:
                    board_id = flasher.load(str(build.elf)) or ""
            url = target.get_driver("KwsLinkDriver").url()
        except Exception as exc:  # noqa: BLE001 - labgrid binding/driver errors: one line
            self._check_alive(c)  # an exporter that went away mid-flash says so, instead of labgrid's KeyError
            if isinstance(exc, HarnessError):
                raise
            raise HarnessError(f"labgrid place {self.place}: {type(exc).__name__}: {_first_line(exc)}") from None
        self.where = _where(self.place, resources, board_id)
        held.where = self.where
        try:
            yield url
        except HarnessError as exc:
            if "labgrid place" in str(exc):
                raise
            try:
                self._check_alive(c)
            except HarnessError as gone:
                raise HarnessError(f"{gone} [{exc}]") from None
            raise HarnessError(f"labgrid place {self.place}: {exc}") from None


def _where(place: str, resources: dict[tuple[str, str, str, str], Any], board_id: str) -> dict[str, str]:
    """Place, exporter, its host and the board's id (USB serial or emulator id) for the rows."""
    exporter = sorted({p[0] for p in resources})
    host = next((r.args.get("host") for p, r in resources.items() if "host" in r.args), "")
    info = next((r.args for p, r in resources.items() if p[2] == "KwsBoardInfo"), {})
    return {"place": place, "exporter": ",".join(exporter), "exporter_host": str(host or ""),
            "board_serial": board_id or str(info.get("serial", ""))}
