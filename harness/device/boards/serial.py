"""A real board on a local serial port: claim the port, flash the build, wait for the port to return."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from harness.device.boards.claim import claim
from harness.device.boards.spec import BoardSpec, find_nano_boards
from harness.errors import HarnessError

PORT_RETURN_TIMEOUT_S = 20.0


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


class SerialLink:
    """An Arduino Nano 33 BLE (Sense) on USB serial: flashed with ``pio run -t upload`` per build."""

    kind = "serial"
    needs_build = False  # a board already flashed can be talked to without a build (device hello)

    def __init__(self, spec: BoardSpec, flash: bool = True):
        self.spec = spec
        self.flash = flash

    @contextlib.contextmanager
    def start(self, build: Any) -> Iterator[str]:
        """Claim the port, upload ``build`` (when given and flashing), yield the port it comes back on."""
        with claim(self.spec):
            url = self.spec.url
            assert url is not None
            if build is not None and self.flash:
                from harness.device import firmware

                firmware.upload(build, url)
                if self.spec.serial_number:
                    url = wait_for_port(self.spec.serial_number, gone_first=url)
            yield url
