"""An emulated board that lives on a lab host, for the labgrid farm: the QEMU board of ``emulator``
behind two TCP ports, so a labgrid exporter can export it like a real board.

Why: a real Nano on a lab host is a serial port (exported by labgrid as a ``NetworkSerialPort``)
plus a way to flash it. This process gives the emulated board the same two handles, so the farm
path (coordinator, exporter, place, driver) is exercised on machines without a Nano:

- serial port (``--serial-port``): raw TCP; each client is bridged to the UART/semihost link of
  the QEMU that runs the firmware flashed last (closed at once while nothing is flashed).
- flash port (``--flash-port``): one request line per connection,
  ``FLASH <size> <sha256>\\n`` + the ELF bytes -> ``OK <emulator id>\\n`` (QEMU restarted on that
  ELF) or ``ERR <one line>\\n``; ``STOP\\n`` stops QEMU; ``STATUS\\n`` -> ``OK <emulator id>|idle``.

The exporter publishes both ports (``lab/exporter-emu.yaml``); the harness flashes through the
``KwsEmuFlashDriver`` of ``harness.device.boards.lgdrivers``. Started with ports 0, it prints
``KWS_EMUBOARD serial=<port> flash=<port>`` once listening. Run: ``python -m harness.device.emuboard``.

It listens on 127.0.0.1 unless ``--host`` says otherwise. Whoever reaches the flash port runs code in
QEMU with Arm semihosting on, which can open files on the lab host: serve it only on a trusted lab network.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import queue
import shutil
import signal
import socket
import socketserver
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

MAX_ELF_BYTES = 64 * 1024 * 1024


class EmuBoardServer:
    """One emulated lab board: a flash port that (re)starts QEMU and a serial port bridged to it."""

    def __init__(self, board_id: str, host: str = "127.0.0.1", serial_port: int = 0, flash_port: int = 0):
        self.board_id = board_id
        self.host = host
        self._lock = threading.Lock()
        self._emu: Any = None  # emulator.EmulatedBoard of the firmware flashed last
        self._generation = 0
        self._workdir = Path(tempfile.mkdtemp(prefix=f"kws-emuboard-{_safe(board_id)}-"))
        self._jobs: queue.Queue = queue.Queue()
        threading.Thread(target=self._board_thread, daemon=True, name="qemu-owner").start()
        server = self

        class Serial(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._bridge(self.request)

        class Flash(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write((server._flash_request(self.rfile) + "\n").encode())

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.serial = socketserver.ThreadingTCPServer((host, serial_port), Serial)
        self.flash = socketserver.ThreadingTCPServer((host, flash_port), Flash)
        for s in (self.serial, self.flash):
            s.daemon_threads = True

    @property
    def emulator_id(self) -> str:
        """Which QEMU answers now: board id, flash generation and QEMU's process id."""
        emu = self._emu
        if emu is None or not emu.alive():
            return "idle"
        return f"{self.board_id}/qemu-{emu.proc.pid}/g{self._generation}"

    def serve_forever(self) -> None:
        threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self.serial, self.flash)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def shutdown(self) -> None:
        for s in (self.serial, self.flash):
            s.shutdown()
            s.server_close()
        self._stop()
        self._jobs.put(None)
        shutil.rmtree(self._workdir, ignore_errors=True)

    def _stop(self) -> None:
        with self._lock:
            if self._emu is not None:
                self._emu.close()
                self._emu = None

    def _flash_request(self, rfile: Any) -> str:
        line = rfile.readline(256).decode(errors="replace").strip()
        parts = line.split()
        try:
            if parts[:1] == ["STATUS"]:
                return f"OK {self.emulator_id}"
            if parts[:1] == ["STOP"]:
                self._stop()
                return "OK idle"
            if len(parts) != 3 or parts[0] != "FLASH" or not parts[1].isdigit():
                return f"ERR bad request {line[:60]!r} (expected FLASH <size> <sha256>, STOP or STATUS)"
            size, digest = int(parts[1]), parts[2]
            if size > MAX_ELF_BYTES:
                return f"ERR image of {size} bytes is larger than {MAX_ELF_BYTES}"
            data = rfile.read(size)
            if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
                return "ERR image arrived incomplete or corrupted (size/sha256 mismatch)"
            return "OK " + self._load(data, digest)
        except HarnessError as exc:
            return f"ERR {str(exc).splitlines()[0]}"

    def _load(self, elf: bytes, digest: str) -> str:
        """Restart QEMU on ``elf`` (what an upload does to a real board: the old program is gone)."""
        from harness.device import emulator

        path = self._workdir / f"{digest[:16]}.elf"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(elf)
            os.replace(tmp, path)
        return self._in_board_thread(lambda: self._restart(emulator.start, path))

    def _restart(self, start: Any, path: Path) -> str:
        with self._lock:
            if self._emu is not None:
                self._emu.close()
                self._emu = None
            self._emu = start(path)
            self._generation += 1
        return self.emulator_id

    def _in_board_thread(self, fn: Any) -> Any:
        """Run ``fn`` in the one long-lived thread that owns QEMU: the kernel's PR_SET_PDEATHSIG
        (emulator.py) fires when the *thread* that started the child ends, so a request handler
        thread must not start it."""
        done = threading.Event()
        box: dict[str, Any] = {}
        self._jobs.put((fn, box, done))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _board_thread(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, box, done = job
            try:
                box["value"] = fn()
            except HarnessError as exc:
                box["error"] = exc
            except Exception as exc:  # noqa: BLE001 - reported to the flashing client in one line
                box["error"] = HarnessError(f"emulated board: {type(exc).__name__}: {exc}")
            finally:
                done.set()

    def _bridge(self, client: socket.socket) -> None:
        """Copy bytes between a serial client and the running QEMU until either side closes."""
        with self._lock:
            emu = self._emu
        if emu is None or not emu.alive():
            return  # nothing flashed: the port opens and closes, like a board that is not running
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            board = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
        except OSError:
            return
        board.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        board.settimeout(None)

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        back = threading.Thread(target=pump, args=(board, client), daemon=True)
        back.start()
        pump(client, board)
        back.join(timeout=5)
        board.close()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.device.emuboard", description=__doc__.split("\n")[0])
    parser.add_argument("--id", default="emu", help="board id reported in every row measured on it")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--serial-port", type=int, default=0, help="TCP port of the serial line (0: any free)")
    parser.add_argument("--flash-port", type=int, default=0, help="TCP port of the flash service (0: any free)")
    args = parser.parse_args(argv)
    try:
        server = EmuBoardServer(args.id, args.host, args.serial_port, args.flash_port)
    except OSError as exc:
        print(f"error: emulated board {args.id}: cannot listen on {args.host}: {exc.strerror or exc}", file=sys.stderr)
        return 2

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"KWS_EMUBOARD serial={server.serial.server_address[1]} flash={server.flash.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
