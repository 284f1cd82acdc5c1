"""A real board on a local serial port: claim the port, flash the build, wait for the port to return.

The flash sequence (``flash``) for an Arduino Nano 33 BLE: ``pio run -t nobuild -t upload`` sends the
cached build (PlatformIO's 1200-baud touch puts the board in its bootloader, bossac writes and resets it)
-> the application's port goes away during the upload (checked: a board that never left its
application was not flashed) -> it comes back, possibly under another name, found again by its USB
serial number -> ``boards.session`` then checks HELLO's build hash before anything is measured.
An upload that fails, or that never reset the board, is tried once more; a board that does not come
back fails at once, in one line, after ``PORT_RETURN_TIMEOUT_S``. tests/test_board_flash.py runs the
whole sequence with a fake ``pio``, fake USB port listings and a pty pair.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from harness.device.boards.claim import claim
from harness.device.boards.spec import ARDUINO_VID, NANO33BLE_PIDS, BoardSpec
from harness.errors import HarnessError

PORT_RETURN_TIMEOUT_S = 20.0
UPLOAD_ATTEMPTS = 2
RETRY_PAUSE_S = 1.0  # before the second upload: let the USB side settle
_POLL_S = 0.1


def application_port(serial_number: str | None, path: str | None = None) -> str | None:
    """The port of the board's application (not its bootloader): by USB serial number when known,
    else ``path`` while it exists."""
    if not serial_number:
        return path if path and os.path.exists(path) else None
    from serial.tools import list_ports

    for p in list_ports.comports():
        if (p.vid == ARDUINO_VID and NANO33BLE_PIDS.get(p.pid) == "application"
                and p.serial_number == serial_number):
            return p.device
    return None


def any_port(serial_number: str | None) -> str | None:
    """The board's port in either mode (application or bootloader), by USB serial number."""
    if not serial_number:
        return None
    from serial.tools import list_ports

    for p in list_ports.comports():
        if p.vid == ARDUINO_VID and p.pid in NANO33BLE_PIDS and p.serial_number == serial_number:
            return p.device
    return None


def wait_for_port(serial_number: str | None, timeout: float | None = None, gone_first: str | None = None) -> str:
    """The application's port of the board with this USB serial number, once it is back."""
    timeout = PORT_RETURN_TIMEOUT_S if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        url = application_port(serial_number, gone_first)
        if url is not None and os.path.exists(url):
            return url
        if time.monotonic() >= deadline:
            raise HarnessError(f"device {gone_first or serial_number}: board {serial_number or ''} did not come "
                               f"back within {timeout:g} s after flashing (unplug and replug it, or press reset)")
        time.sleep(_POLL_S)


class _GoneWatcher:
    """Polls, while an upload runs, whether the board's application port went away (it must: the
    upload resets the board into its bootloader)."""

    def __init__(self, serial_number: str | None, path: str):
        self.serial_number, self.path = serial_number, path
        self.gone = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and not self.gone:
            if application_port(self.serial_number, self.path) is None:
                self.gone = True
            self._stop.wait(_POLL_S)

    def __enter__(self) -> "_GoneWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def flash(spec: BoardSpec, build: Any, timeout: float | None = None) -> str:
    """Upload ``build`` to the board and return the port its application comes back on."""
    from harness.device import firmware

    url = spec.url
    assert url is not None
    last: HarnessError | None = None
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        # where the board is now: renamed by an earlier reset, or still in its bootloader after a failed try
        port = application_port(spec.serial_number, url) or any_port(spec.serial_number) or url
        try:
            with _GoneWatcher(spec.serial_number, port) as watcher:
                firmware.upload(build, port)
            if not watcher.gone:
                raise HarnessError(f"device {port}: the upload did not reset the board (its port never went "
                                   "away); is it a Nano 33 BLE running a sketch with USB serial?")
        except HarnessError as exc:
            last = exc
            if attempt < UPLOAD_ATTEMPTS:
                time.sleep(RETRY_PAUSE_S)
            continue
        return wait_for_port(spec.serial_number, timeout, gone_first=port)  # no retry: nothing to upload to
    assert last is not None
    raise HarnessError(f"{last} (tried {UPLOAD_ATTEMPTS} times)")


class SerialLink:
    """An Arduino Nano 33 BLE (Sense) on USB serial: flashed with ``pio run -t upload`` per build."""

    kind = "serial"
    needs_build = False  # a board already flashed can be talked to without a build (device hello)

    def __init__(self, spec: BoardSpec, flash: bool = True):
        self.spec = spec
        self.flash = flash

    @contextlib.contextmanager
    def start(self, build: Any) -> Iterator[str]:
        """Claim the port, flash ``build`` (when given and flashing), yield the port it comes back on."""
        with claim(self.spec):
            url = self.spec.url
            assert url is not None
            if build is not None and self.flash:
                url = flash(self.spec, build)
            yield url
