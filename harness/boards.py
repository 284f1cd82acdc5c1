"""Which board a run uses, labgrid style: a *resource* (BoardSpec: what and where the board is)
apart from the *driver* (link.Board: how to talk to it). Resolving ``--device`` opens nothing;
``session()`` is the one place that starts an emulator, flashes a real board, claims a port and
connects. A port registry (lock files) makes sure two workers never share a board.

``--device`` values: ``emu`` (default: QEMU mps2-an386), ``native`` (host build), a serial path
like ``/dev/ttyACM0``, ``socket://host:port`` (a board behind a network serial server), ``auto``
(every Arduino Nano 33 BLE found by USB vendor/product id), or ``auto:SERIAL`` (one by serial number).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import HarnessError
from .paths import cache_dir

ARDUINO_VID = 0x2341
NANO33BLE_PIDS = {0x805A: "application", 0x005A: "bootloader"}  # Nano 33 BLE and BLE Sense (mbed core)
PORT_RETURN_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class BoardSpec:
    """A board resource: nothing is opened by creating one."""

    kind: str  # "emu" | "native" | "serial" | "socket"
    url: str | None = None  # serial path or socket:// URL (None for emu/native: given at start)
    serial_number: str | None = None
    description: str = ""

    @property
    def env(self) -> str:
        """The PlatformIO environment whose firmware runs on this board."""
        return {"emu": "emu_m4", "native": "native"}.get(self.kind, "nano33ble")

    @property
    def name(self) -> str:
        return self.url or self.kind


def find_nano_boards() -> list[BoardSpec]:
    """Nano 33 BLE boards on USB (serial.tools.list_ports, by VID/PID), in serial-number order."""
    from serial.tools import list_ports

    found = []
    for p in list_ports.comports():
        if p.vid == ARDUINO_VID and p.pid in NANO33BLE_PIDS:
            found.append(BoardSpec("serial", p.device, p.serial_number,
                                   f"Arduino Nano 33 BLE ({NANO33BLE_PIDS[p.pid]}) {p.serial_number or ''}".strip()))
    return sorted(found, key=lambda s: (s.serial_number or "", s.url or ""))


def resolve(device: str | None) -> list[BoardSpec]:
    """The boards a ``--device`` value names (several only for ``auto``)."""
    device = (device or "emu").strip()
    if device == "emu":
        return [BoardSpec("emu", description="QEMU mps2-an386 (Cortex-M4F, -icount shift=0)")]
    if device == "native":
        return [BoardSpec("native", description="host build of the firmware core")]
    if device.startswith("socket://"):
        if not re.fullmatch(r"socket://[^:/]+:\d+", device):
            raise HarnessError(f"device {device}: expected socket://HOST:PORT")
        return [BoardSpec("socket", device, description="network serial port")]
    if device == "auto" or device.startswith("auto:"):
        boards = find_nano_boards()
        wanted = device.partition(":")[2]
        if wanted:
            boards = [b for b in boards if b.serial_number == wanted]
        if not boards:
            what = f"with serial number {wanted}" if wanted else "(USB 2341:805a)"
            raise HarnessError(f"device auto: no Arduino Nano 33 BLE found {what}")
        return boards
    if "://" in device:  # other pyserial URLs (loop://, rfc2217://, spy://)
        return [BoardSpec("socket", device, description="pyserial URL")]
    if not Path(device).exists():
        raise HarnessError(f"device {device}: serial port does not exist")
    serial_number = next((b.serial_number for b in find_nano_boards() if b.url == device), None)
    return [BoardSpec("serial", device, serial_number, "serial port")]


# ----------------------------------------------------------------------------- port registry


def _lock_path(name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    path = cache_dir() / "ports" / f"{safe}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def claim(spec: BoardSpec) -> Iterator[None]:
    """Hold a board for this process (across pytest-xdist workers too); busy -> HarnessError."""
    if spec.kind in ("emu", "native"):  # each run starts its own instance on its own port
        yield
        return
    key = spec.serial_number or spec.url or spec.kind
    fd = os.open(_lock_path(key), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HarnessError(f"device {spec.name}: already in use by another harness worker") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def wait_for_port(serial_number: str, timeout: float = PORT_RETURN_TIMEOUT_S, gone_first: str | None = None) -> str:
    """The serial port of the board with this USB serial number, once it is back (after a reset)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for b in find_nano_boards():  # the application again, not the bootloader of the upload
            if (b.serial_number == serial_number and "(application)" in b.description and b.url
                    and os.path.exists(b.url)):
                return b.url
        time.sleep(0.2)
    raise HarnessError(f"device {gone_first or serial_number}: board {serial_number} did not come back "
                       f"within {timeout:g} s after flashing")


# ----------------------------------------------------------------------------- sessions


@contextlib.contextmanager
def session(spec: BoardSpec, build=None, *, flash: bool = True, timeout: float | None = None,
            check_build: bool = True) -> Iterator["object"]:
    """An open link.Board for ``spec`` running ``build`` (started/flashed as needed), verified by
    HELLO against the build's hash; everything is stopped and released on exit."""
    from . import emulator
    from .link import DEFAULT_TIMEOUT_S, Board

    expect = build.build_hash if (build is not None and check_build) else None
    kwargs = {"timeout": timeout or DEFAULT_TIMEOUT_S, "expect_build_hash": expect}
    if spec.kind in ("emu", "native"):
        if build is None:
            raise HarnessError(f"device {spec.kind}: needs a firmware build (give --variant or --tflite)")
        with emulator.start(build) as emu, Board(emu.url, **kwargs) as board:
            board.verify()
            yield board
        return
    with claim(spec):
        url = spec.url
        assert url is not None
        if build is not None and flash and spec.kind == "serial":
            from . import firmware

            firmware.upload(build, url)
            if spec.serial_number:
                url = wait_for_port(spec.serial_number, gone_first=url)
        with _handshake(url, kwargs, bool(expect)) as board:
            yield board


@contextlib.contextmanager
def _handshake(url: str, kwargs: dict, verify: bool, attempts: int = 3) -> Iterator["object"]:
    """Open and greet a real board; a board just reset by an upload may need a moment."""
    from .link import Board

    for attempt in range(attempts):
        board = Board(url, **kwargs)
        try:
            board.open()
            board.verify() if verify else board.hello()
            break
        except HarnessError as exc:
            board.close()
            transient = "stopped answering" in str(exc) or "cannot open" in str(exc) or "does not exist" in str(exc)
            if attempt == attempts - 1 or not transient:
                raise
            time.sleep(1.0)
    try:
        yield board
    finally:
        board.close()
