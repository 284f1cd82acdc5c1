"""Board kinds, labgrid style: a BoardSpec says what and where a board is (spec.py); a link kind
says how to bring it up (emu.py, serial.py, socket.py); ``link.Board`` talks to it, whatever its kind.

Life cycle of ``session``: resolve (spec.resolve, no I/O) -> claim (port lock, real boards) ->
start/flash (LINKS[kind].start yields a URL) -> HELLO (build hash verified) -> use -> release.
A new kind of board is one module with a class like SocketLink, added to LINKS.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

from harness.device.boards.claim import claim
from harness.device.boards.emu import EmuLink, NativeLink
from harness.device.boards.labgrid import LabgridLink
from harness.device.boards.serial import PORT_RETURN_TIMEOUT_S, SerialLink, wait_for_port
from harness.device.boards.socket import SocketLink
from harness.device.boards.spec import ARDUINO_VID, NANO33BLE_PIDS, BoardSpec, find_nano_boards, resolve
from harness.errors import HarnessError

LINKS: dict[str, type] = {"emu": EmuLink, "native": NativeLink, "serial": SerialLink, "socket": SocketLink,
                         "labgrid": LabgridLink}

__all__ = ["ARDUINO_VID", "LINKS", "NANO33BLE_PIDS", "PORT_RETURN_TIMEOUT_S", "BoardSpec", "EmuLink", "LabgridLink", "NativeLink",
           "SerialLink", "SocketLink", "claim", "find_nano_boards", "identify", "resolve", "session",
           "wait_for_port"]


def identify(spec: BoardSpec, timeout: float | None = None) -> BoardSpec:
    """``spec`` with its board name filled in from HELLO, for a socket:// board that did not say it
    (``?board=``): an emulated board served by ``harness device serve`` runs the emu_m4 firmware, a
    Nano behind a serial server the nano33ble one. Other specs are returned as they are.

    Note: the native build serves a single connection; give its URL with ``?board=native``."""
    if spec.kind != "socket" or spec.board is not None:
        return spec
    from harness.device.link import DEFAULT_TIMEOUT_S, Board
    from harness.device.boards.spec import ENV_OF_BOARD

    with claim(spec), Board(spec.url, timeout=timeout or DEFAULT_TIMEOUT_S) as board:
        name = board.hello().board
    if name not in ENV_OF_BOARD:
        raise HarnessError(f"device {spec.url}: HELLO names board {name!r}, which is not one of "
                           f"{', '.join(ENV_OF_BOARD)} (give ?board=NAME)")
    return dataclasses.replace(spec, board=name, description=f"{spec.description} ({name}, from HELLO)")


@contextlib.contextmanager
def session(spec: BoardSpec, build: Any = None, *, flash: bool = True, timeout: float | None = None,
            check_build: bool = True) -> Iterator[Any]:
    """An open link.Board for ``spec`` running ``build`` (started/flashed as needed), verified by
    HELLO against the build's hash; everything is stopped and released on exit."""
    from harness.device.link import DEFAULT_TIMEOUT_S

    expect = build.build_hash if (build is not None and check_build) else None
    kwargs = {"timeout": timeout or DEFAULT_TIMEOUT_S, "expect_build_hash": expect}
    link_kind = LINKS[spec.kind]
    link = link_kind(spec) if link_kind.needs_build else link_kind(spec, flash=flash)
    with link.start(build) as url:
        # a board the harness started answers at once; a real one just reset by an upload may need a moment
        attempts = 1 if link_kind.needs_build else 3
        with _handshake(url, kwargs, verify=bool(expect) or link_kind.needs_build, attempts=attempts) as board:
            board.where = dict(getattr(link, "where", None) or {})  # place/exporter/board id (labgrid)
            yield board


@contextlib.contextmanager
def _handshake(url: str, kwargs: dict, verify: bool, attempts: int = 3) -> Iterator[Any]:
    """Open and greet a board (HELLO, build hash when expected), retrying transient failures."""
    from harness.device.link import Board

    for attempt in range(attempts):
        board = Board(url, **kwargs)
        try:
            board.open()
            board.verify() if verify else board.hello()
            break
        except HarnessError as exc:
            board.close()
            transient = "stopped answering" in str(exc) or "gave up" in str(exc) or "cannot open" in str(exc) or "does not exist" in str(exc)
            if attempt == attempts - 1 or not transient:
                raise
            time.sleep(1.0)
    try:
        yield board
    finally:
        board.close()
