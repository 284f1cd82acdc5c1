"""The emulated board: the firmware ELF running in QEMU (mps2-an386, Cortex-M4F), or the native
host build of the same core, reachable at a ``socket://127.0.0.1:PORT`` URL.

QEMU runs with ``-icount shift=0`` so its timers count executed instructions (deterministic,
reported as instructions, never as milliseconds). The link is what the ELF says (symbol
``kws_emu_link``): "semihost" (default) = the firmware reads/writes QEMU's stdin/stdout through
semihosting and a relay thread here bridges them to a TCP socket on 127.0.0.1 (bulk transfer,
~2 ms per feature frame), or "uart" = UART0 served by QEMU itself on 127.0.0.1 with ``wait=on``
(byte by byte, ~45 us a byte). Either way nothing listens on other interfaces. A QEMU whose parent dies
keeps spinning at 100 % CPU, so every child is tied to the harness three ways: context manager,
atexit, and PR_SET_PDEATHSIG (the kernel kills it if the harness dies without cleaning up).
"""

from __future__ import annotations

import atexit
import os
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

QEMU = "qemu-system-arm"
QEMU_MACHINE = "mps2-an386"
_live: "weakref.WeakSet[EmulatedBoard]" = weakref.WeakSet()
_lock = threading.Lock()


def die_with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` prefixed so the kernel SIGKILLs it when the harness dies (PR_SET_PDEATHSIG).

    util-linux's ``setpriv`` (Essential on Debian) sets the flag and execs ``cmd``: no Python runs
    in the child between fork and exec. A ``preexec_fn`` doing the same crashed (SIGSEGV) when the
    parent held gRPC threads (the labgrid client), so the child never became QEMU. The kernel sends
    the signal when the *thread* that started the child ends, so start emulators from a thread
    that lives as long as they should (the main thread in the CLI/tests)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *cmd] if setpriv else list(cmd)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _is_arm_elf(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(20)
    return head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 40  # EM_ARM


def emu_link(elf: Path) -> str:
    """The link the emulated firmware was built for: "semihost" or "uart" (symbol kws_emu_link)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        return _read_link_symbol(ELFFile, elf)
    except (ELFError, OSError, ValueError, KeyError) as exc:
        raise HarnessError(f"emulator: {elf} is not a readable ELF ({exc})") from None


def _read_link_symbol(ELFFile: Any, elf: Path) -> str:
    with open(elf, "rb") as f:
        e = ELFFile(f)
        symtab = e.get_section_by_name(".symtab")
        syms = symtab.get_symbol_by_name("kws_emu_link") if symtab else None
        if not syms:
            return "uart"
        sym = syms[0]
        sec = e.get_section(sym["st_shndx"])
        off = sym["st_value"] - sec["sh_addr"]
        return sec.data()[off : off + sym["st_size"]].split(b"\0")[0].decode() or "uart"


def qemu_command(elf: Path, port: int | None, extra: tuple[str, ...] = ()) -> list[str]:
    """The QEMU command line for one emulated board (docs/ARCHITECTURE.md section 7); port None = stdio link.

    ``extra`` goes before ``-kernel`` (harness/device/cycles.py adds its execution-log options)."""
    serial = ["-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"] if port else ["-serial", "none"]
    return [
        QEMU, "-M", QEMU_MACHINE, "-display", "none", "-monitor", "none",
        "-semihosting-config", "enable=on,target=native",
        *serial,
        "-icount", "shift=0",
        *extra,
        "-kernel", str(elf),
    ]


STALL_S = 0.2  # the firmware's KWS_BYTE_TIMEOUT_MS: a frame that stalls this long is dropped


class _FrameTracker:
    """Follows the firmware's frame parser (kws_read_frame) over the bytes relayed to it.

    A semihosting read cannot time out inside the guest, so the relay keeps the firmware's stall
    rule for it: when a frame stops mid-way (a lost byte, a client that left), ``pad()`` gives the
    bytes that complete it with a CRC that cannot match; the firmware answers BAD_CRC for it and
    its parser starts over, exactly as a board whose read times out drops the frame.
    """

    def __init__(self) -> None:
        self._prev = 0
        self._frame = bytearray()  # bytes of the current frame from the magic on (empty: hunting)
        self._need = 0  # bytes still to come for the current frame once its header is complete

    @property
    def mid_frame(self) -> bool:
        return bool(self._frame)

    def feed(self, data: bytes) -> None:
        from harness.device import protocol as P

        for b in data:
            if not self._frame:
                if self._prev == 0xA5 and b == 0x5A:
                    self._frame = bytearray(P.MAGIC)
                else:
                    self._prev = b
                continue
            self._frame.append(b)
            if len(self._frame) == P.HEADER_SIZE:
                length = int.from_bytes(self._frame[6:8], "little")
                if length > P.MAX_PAYLOAD:  # BAD_LENGTH at once; the parser hunts again
                    self._reset()
                else:
                    self._need = length + P.CRC_SIZE
            elif len(self._frame) > P.HEADER_SIZE:
                self._need -= 1
                if self._need == 0:
                    self._reset()

    def _reset(self) -> None:
        self._frame.clear()
        self._prev = 0
        self._need = 0

    def pad(self) -> bytes:
        """Bytes that end the current frame with a failing CRC (b"" when no frame is open)."""
        from harness.device import protocol as P

        if not self._frame:
            return b""
        frame = bytes(self._frame)
        out = bytearray()
        if len(frame) < P.HEADER_SIZE:  # rest of the header as zeros (length 0, or a low byte <= 255)
            out += bytes(P.HEADER_SIZE - len(frame))
            frame += bytes(out)
        length = int.from_bytes(frame[6:8], "little")
        end_payload = P.HEADER_SIZE + length
        if len(frame) < end_payload:
            zeros = bytes(end_payload - len(frame))
            out += zeros
            frame += zeros
        crc = P.crc16(frame[2:end_payload])
        good = crc.to_bytes(2, "little")
        got = frame[end_payload:]
        if not got:
            out += bytes([good[0] ^ 0xFF, good[1]])
        else:  # one CRC byte is in already
            out += bytes([good[1] ^ 0xFF]) if got[0] == good[0] else bytes([good[1]])
        self.feed(bytes(out))
        return bytes(out)


class _Relay(threading.Thread):
    """Bridges QEMU's stdin/stdout to one TCP client at a time on 127.0.0.1 (the semihost link).

    When QEMU ends, the client's socket is closed, so the host link sees the board go away at
    once instead of waiting for a timeout. A frame that stalls for STALL_S, or that a leaving client
    cut short, is ended by the relay with a failing CRC (_FrameTracker), so the next frame is served.
    """

    def __init__(self, proc: subprocess.Popen):
        super().__init__(daemon=True, name=f"qemu-relay-{proc.pid}")
        self.proc = proc
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self._stopping = False
        self._tracker = _FrameTracker()

    def stop(self) -> None:
        self._stopping = True
        try:
            self.listener.close()
        except OSError:
            pass

    def run(self) -> None:
        qout = self.proc.stdout.fileno()
        qin = self.proc.stdin.fileno()
        try:
            while not self._stopping:
                ready, _, _ = select.select([self.listener, qout], [], [], 0.5)
                if qout in ready and not os.read(qout, 65536):
                    return  # QEMU ended (output before a client connects is dropped, like a UART)
                if self.listener not in ready:
                    continue
                conn, _ = self.listener.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with conn:
                    if not self._pump(conn, qin, qout):
                        return
                pad = self._tracker.pad()  # the client left mid-frame: end that frame now
                if pad:
                    os.write(qin, pad)
                    self._drain(qout)
        except (OSError, ValueError):
            return
        finally:
            self.stop()

    def _drain(self, qout: int) -> None:
        """Drop the board's answer to a padded frame, so the next client does not get it."""
        from harness.device import protocol as P

        decoder = P.Decoder()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            ready, _, _ = select.select([qout], [], [], 0.1)
            if qout in ready:
                data = os.read(qout, 65536)
                if not data or decoder.feed(data):
                    return

    def _pump(self, conn: socket.socket, qin: int, qout: int) -> bool:
        """Copy both ways until the client leaves (True) or QEMU ends (False)."""
        last_in = time.monotonic()
        while not self._stopping:
            wait = 0.5
            if self._tracker.mid_frame:
                wait = max(0.0, last_in + STALL_S - time.monotonic())
                if wait == 0.0:
                    os.write(qin, self._tracker.pad())
                    wait = 0.5
            ready, _, _ = select.select([conn, qout], [], [], wait)
            if qout in ready:
                data = os.read(qout, 65536)
                if not data:
                    return False
                conn.sendall(data)
            if conn in ready:
                try:
                    data = conn.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    return True
                os.write(qin, data)
                self._tracker.feed(data)
                last_in = time.monotonic()
        return False


@dataclass(eq=False)
class EmulatedBoard:
    """A running emulated board; ``url`` is what link.Board connects to."""

    elf: Path
    kind: str  # "qemu" or "native"
    port: int
    proc: subprocess.Popen
    relay: "_Relay | None" = None
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
            # Semihost link: end of stdin makes the firmware exit through semihosting. A SIGTERM
            # would wait for the vCPU thread, which sits in a blocking read: kill after a moment.
            if self.proc.stdin:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
            try:
                self.proc.wait(timeout=0.5 if self.relay is not None else 0.05)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.relay is not None:
            self.relay.stop()
            self.relay.join(timeout=2)
        for stream in (self.proc.stdin, self.proc.stdout, getattr(self.proc, "stderr_log", None)):
            if stream:
                try:
                    stream.close()
                except OSError:
                    pass
        _live.discard(self)
        return self.proc.returncode

    def connect(self, **kwargs: Any):
        """A link.Board for this emulated board (not yet opened)."""
        from harness.device.link import Board

        return Board(self.url, **kwargs)

    def __enter__(self) -> "EmulatedBoard":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _spawn(cmd: list[str], stdin: Any = subprocess.DEVNULL) -> subprocess.Popen:
    # stderr goes to an unlinked temporary file: a pipe nobody drains could block QEMU one day.
    if shutil.which(cmd[0]) is None:
        raise HarnessError(f"emulator: {cmd[0]} not found (install Debian's qemu-system-arm)")
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(die_with_parent(cmd), stdin=stdin, stdout=subprocess.PIPE, stderr=log, close_fds=True)
    proc.stderr_log = log  # Popen.stderr stays None for a file; keep ours to read errors back
    return proc


def _stderr_text(proc: subprocess.Popen) -> str:
    try:
        proc.stderr_log.seek(0)
        return proc.stderr_log.read().decode(errors="replace").strip()
    except (OSError, ValueError, AttributeError):
        return ""


def _start_qemu_stdio(elf: Path, extra: tuple[str, ...] = ()) -> EmulatedBoard:
    proc = _spawn(qemu_command(elf, None, extra), stdin=subprocess.PIPE)
    relay = _Relay(proc)
    relay.start()
    time.sleep(0.02)
    if proc.poll() is not None:
        relay.stop()
        err = _stderr_text(proc)
        raise HarnessError(f"emulator: QEMU failed to start {elf}: {err.splitlines()[0] if err else proc.returncode}")
    return EmulatedBoard(elf, "qemu", relay.port, proc, relay)


def _start_qemu(elf: Path, extra: tuple[str, ...] = ()) -> EmulatedBoard:
    if emu_link(elf) == "semihost":
        return _start_qemu_stdio(elf, extra)
    for _ in range(3):  # another process may grab the free port before QEMU binds it
        port = _free_port()
        proc = _spawn(qemu_command(elf, port, extra))
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
        err = _stderr_text(proc) if proc.poll() is not None else ""
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


def start(elf: Any, qemu_args: tuple[str, ...] = ()) -> EmulatedBoard:
    """Start an emulated board for a firmware.Build or an ELF path (ARM -> QEMU, host -> native).

    Use as a context manager; several boards may run at once (each on its own port). ``qemu_args``:
    extra QEMU options (ignored for a native build)."""
    path = Path(getattr(elf, "elf", elf))
    if not path.is_file():
        raise HarnessError(f"emulator: firmware {path} does not exist (build it first: python -m harness build)")
    board = _start_qemu(path, tuple(qemu_args)) if _is_arm_elf(path) else _start_native(path)
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
