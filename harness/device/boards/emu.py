"""Emulated and host boards: the harness starts one per build and yields its socket:// URL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from harness.device.boards.spec import BoardSpec
from harness.errors import HarnessError


class EmuLink:
    """QEMU mps2-an386 running the emu_m4 build (harness.device.emulator), one instance per variant."""

    kind = "emu"
    needs_build = True

    def __init__(self, spec: BoardSpec):
        self.spec = spec

    @contextlib.contextmanager
    def start(self, build: Any) -> Iterator[str]:
        """Start the board for ``build``; yields the URL link.Board connects to; stops it on exit."""
        from harness.device import emulator

        if build is None:
            raise HarnessError(f"device {self.spec.kind}: needs a firmware build (give --variant or --tflite)")
        with emulator.start(build) as emu:
            yield emu.url


class NativeLink(EmuLink):
    """The firmware core built for the host (env native): same protocol, no emulator."""

    kind = "native"
