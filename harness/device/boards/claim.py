"""The port registry: lock files so two harness processes (or xdist workers) never share a board."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

from harness.device.boards.spec import BoardSpec
from harness.errors import HarnessError
from harness.paths import cache_dir


def _lock_path(name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    path = cache_dir() / "ports" / f"{safe}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _holder(path: Path) -> int | None:
    """The pid the holding process wrote into the lock file, if any."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


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
            holder = _holder(_lock_path(key))
            raise HarnessError(f"device {spec.name}: already in use by another harness process"
                               f"{f' (pid {holder})' if holder else ''}; it is not shared") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock
