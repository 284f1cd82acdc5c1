"""The emulated board: the firmware ELF running in QEMU (mps2-an386, Cortex-M4F), or the native
host build of the same core, reachable at a ``socket://127.0.0.1:PORT`` URL.

QEMU runs with ``-icount shift=0`` so its timers count executed instructions (deterministic,
reported as instructions, never as milliseconds), serves its UART on 127.0.0.1 only, and waits for
the harness to connect (``wait=on``, else the first bytes are lost). A QEMU whose parent dies
keeps spinning at 100 % CPU, so every child is tied to the harness three ways: context manager,
atexit, and PR_SET_PDEATHSIG (the kernel kills it if the harness dies without cleaning up).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import select
import signal
import socket
import subprocess
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import HarnessError

QEMU = "qemu-system-arm"
QEMU_MACHINE = "mps2-an386"
_PR_SET_PDEATHSIG = 1
_live: "weakref.WeakSet[EmulatedBoard]" = weakref.WeakSet()
_lock = threading.Lock()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _is_arm_elf(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(20)
    return head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 40  # EM_ARM


def qemu_command(elf: Path, port: int) -> list[str]:
    """The QEMU command line for one emulated board (DESIGN.md section 5)."""
    return [
        QEMU, "-M", QEMU_MACHINE, "-nographic", "-monitor", "none",
        "-semihosting-config", "enable=on,target=native",
        "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on",
        "-icount", "shift=0",
        "-kernel", str(elf),
    ]


@dataclass(eq=False)
class EmulatedBoard:
    """A running emulated board; ``url`` is what link.Board connects to."""

    elf: Path
    kind: str  # "qemu" or "native"
    port: int
    proc: subprocess.Popen
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    @property
    def timer_unit(self) -> str:
        return "instructions" if self.kind == "qemu" else "ns"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """End it now (tests: a board that dies mid-run)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def close(self) -> int | None:
        """Stop the board (idempotent) and return its exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
        _live.discard(self)
        return self.proc.returncode

    def connect(self, **kwargs: Any):
        """A link.Board for this emulated board (not yet opened)."""
        from .link import Board

        return Board(self.url, **kwargs)

    def __enter__(self) -> "EmulatedBoard":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _spawn(cmd: list[str]) -> subprocess.Popen:
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=_die_with_parent, close_fds=True)
    except FileNotFoundError:
        raise HarnessError(f"emulator: {cmd[0]} not found (install Debian's qemu-system-arm)") from None


def _start_qemu(elf: Path) -> EmulatedBoard:
    for _ in range(3):  # another process may grab the free port before QEMU binds it
        port = _free_port()
        proc = _spawn(qemu_command(elf, port))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:  # QEMU listens before it runs the guest; probe without connecting
                with open("/proc/net/tcp") as f:
                    if any(f":{port:04X} " in line and " 0A " in line for line in f):
                        return EmulatedBoard(elf, "qemu", port, proc)
            except OSError:
                return EmulatedBoard(elf, "qemu", port, proc)
            time.sleep(0.01)
        err = proc.stderr.read().decode(errors="replace").strip() if proc.poll() is not None else ""
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            raise HarnessError(f"emulator: QEMU for {elf} did not open 127.0.0.1:{port} within 10 s")
        if "Address already in use" not in err:
            first = err.splitlines()[0] if err else f"exit code {proc.returncode}"
            raise HarnessError(f"emulator: QEMU failed to start {elf}: {first}")
    raise HarnessError("emulator: no free TCP port on 127.0.0.1 for QEMU's serial line")


def _start_native(exe: Path) -> EmulatedBoard:
    proc = _spawn([str(exe), "--port", "0"])
    deadline = time.monotonic() + 10
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 64)
            if not chunk:
                break
            line += chunk
    text = line.decode(errors="replace").strip()
    if not text.startswith("KWS_NATIVE_PORT="):
        proc.kill()
        proc.wait()
        raise HarnessError(f"emulator: native firmware {exe} did not report its port ({text or 'no output'})")
    return EmulatedBoard(exe, "native", int(text.split("=", 1)[1]), proc)


def start(elf: Any) -> EmulatedBoard:
    """Start an emulated board for a firmware.Build or an ELF path (ARM -> QEMU, host -> native).

    Use as a context manager; several boards may run at once (each on its own port)."""
    path = Path(getattr(elf, "elf", elf))
    if not path.is_file():
        raise HarnessError(f"emulator: firmware {path} does not exist (build it first: python -m harness build)")
    board = _start_qemu(path) if _is_arm_elf(path) else _start_native(path)
    with _lock:
        _live.add(board)
    return board


@atexit.register
def _stop_all() -> None:
    for board in list(_live):
        try:
            board.close()
        except Exception:
            pass
