"""A board behind a network serial server (``socket://HOST:PORT``) or another pyserial URL: claim, no flash."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from harness.device.boards.claim import claim
from harness.device.boards.spec import BoardSpec


class SocketLink:
    """Somebody else flashed and serves this board; the harness only claims it and talks to it."""

    kind = "socket"
    needs_build = False

    def __init__(self, spec: BoardSpec, flash: bool = True):
        self.spec = spec

    @contextlib.contextmanager
    def start(self, build: Any) -> Iterator[str]:
        with claim(self.spec):
            assert self.spec.url is not None
            yield self.spec.url
