"""What and where a board is (labgrid's *resource*): a frozen description, no I/O.

``resolve(--device)`` turns the option into BoardSpecs; only ``harness.device.boards.session`` opens,
starts or flashes anything.

``--device`` values: ``emu`` (default: QEMU mps2-an386), ``native`` (host build), a serial path
like ``/dev/ttyACM0``, ``socket://host:port[?board=NAME]`` (a board behind a network serial server,
or one started by ``python -m harness device serve``; NAME is the board's HELLO name, else HELLO
tells it: ``boards.identify``), ``auto`` (every Arduino Nano 33 BLE found by USB vendor/product id),
``auto:SERIAL`` (one by serial number), or ``labgrid:PLACE`` (a place of a labgrid farm, see
boards/labgrid.py; its board kind is asked from the coordinator).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

ARDUINO_VID = 0x2341
NANO33BLE_PIDS = {0x805A: "application", 0x005A: "bootloader"}  # Nano 33 BLE and BLE Sense (mbed core)
KINDS = ("emu", "native", "serial", "socket", "labgrid")
ENV_OF_KIND = {"emu": "emu_m4", "native": "native"}  # every other kind runs the real board's firmware
ENV_OF_BOARD = {"emu_m4": "emu_m4", "native": "native", "nano33ble": "nano33ble"}  # HELLO `board` -> env


@dataclass(frozen=True)
class BoardSpec:
    """A board resource: nothing is opened by creating one.

    Args:
        kind: "emu" | "native" (the harness starts the board) | "serial" | "socket" (it exists already).
        url: serial path or pyserial URL (None for emu/native: known once started).
        serial_number: USB serial number, to find the port again after an upload resets the board.
        description: for tables and messages.
        board: the firmware's board name (HELLO ``board``: emu_m4, native, nano33ble) where the kind
            does not say it: a socket:// board, from the URL's ``?board=`` or learnt by ``identify``.
    """

    kind: str
    url: str | None = None
    serial_number: str | None = None
    description: str = ""
    board: str | None = None
    firmware_env: str | None = None  # set when the kind alone does not say it (labgrid: the place's board)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise HarnessError(f"board kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind in ("serial", "socket") and not self.url:
            raise HarnessError(f"board kind {self.kind} needs a port or URL")
        if self.board is not None and self.board not in ENV_OF_BOARD:
            raise HarnessError(f"device {self.url or self.kind}: board={self.board} is not one of "
                               f"{', '.join(ENV_OF_BOARD)}")

    @property
    def env(self) -> str:
        """The PlatformIO environment whose firmware runs on this board (a real Nano unless told otherwise)."""
        if self.firmware_env:
            return self.firmware_env
        if self.kind in ENV_OF_KIND:
            return ENV_OF_KIND[self.kind]
        return ENV_OF_BOARD[self.board] if self.board else "nano33ble"

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
        m = re.fullmatch(r"(socket://[^:/?]+:\d+)(?:\?board=([^&=]*))?", device)
        if not m:
            raise HarnessError(f"device {device}: expected socket://HOST:PORT or socket://HOST:PORT?board=NAME")
        return [BoardSpec("socket", m.group(1), description="network serial port", board=m.group(2))]
    if device.startswith("labgrid:"):
        from harness.device.boards import labgrid

        place = device.partition(":")[2]
        if labgrid.TAG_RE.fullmatch(place):  # a tag: every place carrying it, one board each (like auto)
            return [s for p in labgrid.places_matching(place) for s in resolve(f"labgrid:{p}")]
        if not labgrid.PLACE_RE.fullmatch(place):
            raise HarnessError(f"device {device}: expected labgrid:PLACE or labgrid:TAG=VALUE")
        board = labgrid.board_of_place(place)
        return [BoardSpec("labgrid", device, description=f"labgrid place {place} ({board}) on {labgrid.coordinator_address()}",
                          firmware_env=labgrid.BOARD_ENVS[board])]
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
