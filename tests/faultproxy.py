"""A fault-injecting TCP proxy for the board link: loopback only, bounded, seeded.

It sits between the harness and a board's ``socket://127.0.0.1:PORT`` (QEMU's relay, the native
build, a network serial server) and, at a given byte rate and in both directions, flips a bit of a
byte, drops a byte, or inserts a few garbage bytes. It keeps one connection to the board for its
whole life and serves one client at a time, like a serial server in front of a real board, so a
client may drop its connection and come back. ``mute()`` makes the board look silent,
``disconnect()`` drops the client's connection.

Used three ways:

- in tests: ``with FaultProxy(board_url, rate=1e-3, seed=1) as proxy: Board(proxy.url)``;
- by hand: ``python tests/faultproxy.py socket://127.0.0.1:4000 --rate 1e-3`` prints its URL;
- as a pytest plugin around the suites: ``pytest suites/ -p tests.faultproxy --fault-rate 1e-3``
  puts a proxy in front of every emulated board the suites start (``--fault-seed`` picks the faults).
"""

from __future__ import annotations

import argparse
import math
import random
import re
import select
import socket
import threading
import time
from typing import Any

KINDS = ("flip", "drop", "garbage")
MAX_GARBAGE = 8  # bytes inserted at most per garbage fault
_CHUNK = 4096


def _loopback_address(url: str) -> tuple[str, int]:
    m = re.fullmatch(r"socket://(127\.0\.0\.1|localhost):(\d+)(\?.*)?", url)
    if not m:
        raise ValueError(f"fault proxy: upstream must be socket://127.0.0.1:PORT (loopback only), not {url}")
    return "127.0.0.1", int(m.group(2))


class _Faults:
    """Faults of one direction: the gap to the next fault is drawn geometrically (one draw per fault)."""

    def __init__(self, rate: float, rng: random.Random, kinds: tuple[str, ...]):
        self.rate, self.rng, self.kinds = rate, rng, kinds
        self.counts = {k: 0 for k in kinds}
        self.bytes = 0
        self._gap = self._draw()

    def _draw(self) -> int:
        if self.rate <= 0:
            return 1 << 62
        return int(math.log(1.0 - self.rng.random()) / math.log1p(-self.rate))

    def apply(self, data: bytes) -> bytes:
        self.bytes += len(data)
        out = bytearray()
        i = 0
        while i < len(data):
            take = min(self._gap, len(data) - i)
            out += data[i : i + take]
            i += take
            self._gap -= take
            if i == len(data):
                break
            kind = self.rng.choice(self.kinds)  # the fault hits data[i]
            self.counts[kind] += 1
            if kind == "flip":
                out.append(data[i] ^ (1 << self.rng.randrange(8)))
            elif kind == "garbage":
                out += bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, MAX_GARBAGE)))
                out.append(data[i])
            i += 1  # "drop": data[i] is left out
            self._gap = self._draw()
        return bytes(out)


class FaultProxy:
    """Loopback proxy in front of ``upstream`` (a socket:// URL on 127.0.0.1) that corrupts bytes."""

    def __init__(self, upstream: str, rate: float = 1e-3, seed: int = 0, kinds: tuple[str, ...] = KINDS,
                 mute_after: int | None = None):
        if not 0.0 <= rate < 0.5:
            raise ValueError(f"fault proxy: rate {rate} outside [0, 0.5)")
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"fault proxy: unknown fault kinds {sorted(unknown)}")
        self.upstream = _loopback_address(upstream)
        self.to_board = _Faults(rate, random.Random(f"{seed}-to-board"), tuple(kinds))
        self.to_host = _Faults(rate, random.Random(f"{seed}-to-host"), tuple(kinds))
        self.clients = 0
        self.muted = False
        self.mute_after = mute_after  # bytes from the board after which it goes silent (None: never)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self.port = self._listener.getsockname()[1]
        self._board: socket.socket | None = None
        self._client: socket.socket | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"faultproxy-{self.port}")

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    @property
    def faults(self) -> dict[str, int]:
        """Faults injected so far, by kind, both directions together."""
        return {k: self.to_board.counts[k] + self.to_host.counts[k] for k in self.to_board.counts}

    def start(self) -> "FaultProxy":
        self._thread.start()
        return self

    def mute(self) -> None:
        """From now on nothing the board sends reaches the client (a board that stops answering)."""
        self.muted = True

    def disconnect(self) -> None:
        """Drop the client's connection (the board side stays connected)."""
        client = self._client
        if client is not None:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        for s in (self._listener, self._client, self._board):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self._listener], [], [], 0.2)
                if not ready:
                    continue
                client, _ = self._listener.accept()
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.clients += 1
                if self._board is None:
                    self._board = socket.create_connection(self.upstream, timeout=10)
                    self._board.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._client = client
                try:
                    board_alive = self._pump(client, self._board)
                finally:
                    self._client = None
                    client.close()
                if not board_alive:
                    return
        except (OSError, ValueError):
            return

    def _pump(self, client: socket.socket, board: socket.socket) -> bool:
        """Copy both ways with faults until the client leaves (True) or the board does (False)."""
        while not self._stop.is_set():
            ready, _, _ = select.select([client, board], [], [], 0.2)
            if board in ready:
                data = board.recv(_CHUNK)
                if not data:
                    return False
                if self.mute_after is not None and self.to_host.bytes + len(data) > self.mute_after:
                    self.muted = True
                if not self.muted:
                    try:
                        client.sendall(self.to_host.apply(data))
                    except OSError:
                        return True
            if client in ready:
                try:
                    data = client.recv(_CHUNK)
                except OSError:
                    data = b""
                if not data:
                    return True
                board.sendall(self.to_board.apply(data))
        return True


# --------------------------------------------------------------------------- pytest plugin


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("fault proxy")
    group.addoption("--fault-rate", type=float, default=1e-3, help="byte fault rate of the proxy (default 1e-3)")
    group.addoption("--fault-seed", type=int, default=1, help="seed of the proxy's faults (default 1)")
    group.addoption("--fault-mute-first", type=int, default=None, metavar="BYTES",
                    help="the first board started goes silent after sending BYTES (a board that stops answering)")


class _ProxiedBoard:
    """An emulator.EmulatedBoard seen through a FaultProxy: same board, the proxy's URL."""

    def __init__(self, board: Any, proxy: FaultProxy):
        self._board, self._proxy = board, proxy

    def __getattr__(self, name: str) -> Any:
        return getattr(self._board, name)

    @property
    def url(self) -> str:
        return self._proxy.url

    def close(self) -> Any:
        self._proxy.close()
        return self._board.close()

    def __enter__(self) -> "_ProxiedBoard":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pytest_configure(config: Any) -> None:
    """Every emulated board started in this process is reached through a proxy."""
    from harness.device import emulator

    rate, seed, mute = config.getoption("fault_rate"), config.getoption("fault_seed"), config.getoption("fault_mute_first")
    real_start = emulator.start
    count = iter(range(1 << 30))

    def start(elf: Any) -> _ProxiedBoard:
        board = real_start(elf)
        n = next(count)
        proxy = FaultProxy(board.url, rate=rate, seed=seed * 1000 + n, mute_after=mute if n == 0 else None)
        return _ProxiedBoard(board, proxy.start())

    emulator.start = start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("upstream", help="socket://127.0.0.1:PORT of the board")
    ap.add_argument("--rate", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    with FaultProxy(args.upstream, args.rate, args.seed) as proxy:
        print(f"{proxy.url}  (faults at {args.rate:g} per byte in front of {args.upstream}); Ctrl-C to stop",
              flush=True)
        try:
            while proxy._thread.is_alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        print(f"faults injected: {proxy.faults}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
