"""The host end of the board link: a protocol client over any pyserial URL.

``Board(url)`` does no I/O until ``open()`` (labgrid's rule: nothing opens a port in a
constructor). Each request waits for the answer carrying its own request id, with a per-request
deadline; garbage and stale frames are skipped; idempotent requests (all of ours: HELLO, INFER,
BENCH, RESET, audio chunks at an explicit offset) are retried once after a timeout or a
corrupted frame. A board that stops answering, a missing or busy port, and a board built for a
different model all end in a one-line HarnessError, never a hang. Timings are returned in the
board's own unit (HELLO.timer_unit: instructions in QEMU, cycles on the Nano, ns natively).
"""

from __future__ import annotations

import errno
import socket
import time
from typing import Any

import numpy as np
import serial

from harness.device import protocol as P
from harness.errors import HarnessError

DEFAULT_TIMEOUT_S = 5.0
_POLL_S = 0.05


def _open_port(url: str, baudrate: int, connect_timeout: float) -> serial.SerialBase:
    """Open a pyserial URL; socket:// URLs are retried until connect_timeout (a board starting)."""
    deadline = time.monotonic() + connect_timeout
    while True:
        try:
            kwargs: dict[str, Any] = {"baudrate": baudrate, "timeout": _POLL_S, "write_timeout": 10}
            if "://" not in url:
                kwargs["exclusive"] = True  # a second worker must not share a real board
            port = serial.serial_for_url(url, **kwargs)
            break
        except (serial.SerialException, OSError, ValueError) as exc:
            err = getattr(exc, "errno", None)
            text = str(exc)
            if "://" not in url and (err == errno.ENOENT or "No such file" in text):
                raise HarnessError(f"device {url}: serial port does not exist") from None
            if "://" not in url and (err in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK)
                                     or "exclusively lock" in text or "busy" in text.lower()):
                raise HarnessError(f"device {url}: serial port is busy (opened by another process)") from None
            if "://" not in url and (err == errno.EACCES or "Permission denied" in text):
                raise HarnessError(f"device {url}: permission denied (add yourself to the dialout group)") from None
            if url.startswith("socket://") and time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            raise HarnessError(f"device {url}: cannot open ({text.splitlines()[0] if text else type(exc).__name__})") from None
    sock = getattr(port, "_socket", None)
    if sock is not None:  # without it every round trip waits ~44 ms for Nagle + delayed ACK
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return port


def _close_port(port: serial.SerialBase) -> None:
    sock = getattr(port, "_socket", None)
    if sock is not None:  # pyserial's socket close() sleeps 0.3 s; closing the socket is enough
        try:
            sock.close()
        finally:
            port._socket = None
            port.is_open = False
        return
    port.close()


class Board:
    """Protocol client for one board (real, emulated or native) reachable at a pyserial URL."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT_S, baudrate: int = 115200,
                 expect_build_hash: str | None = None, expect_model_id: str | None = None,
                 connect_timeout: float = 5.0, retries: int = 1):
        self.url = url
        self.timeout = timeout
        self.baudrate = baudrate
        self.expect_build_hash = expect_build_hash
        self.expect_model_id = expect_model_id
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.info: P.Hello | None = None
        self._port: serial.SerialBase | None = None
        self._decoder = P.Decoder(max_payload=P.MAX_PAYLOAD)
        self._next_id = 1
        self._verified = False
        self._pending: list[P.Frame] = []

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> "Board":
        if self._port is None:
            self._port = _open_port(self.url, self.baudrate, self.connect_timeout)
        return self

    def close(self) -> None:
        if self._port is not None:
            port, self._port = self._port, None
            try:
                _close_port(port)
            except Exception:  # closing a dead link must not mask the real error
                pass

    def __enter__(self) -> "Board":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._port is not None

    # -- transport -------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        assert self._port is not None
        try:
            self._port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise HarnessError(f"device {self.url}: link lost while writing ({exc})") from None

    def _read_some(self) -> bytes:
        assert self._port is not None
        try:
            waiting = self._port.in_waiting
            return self._port.read(max(1, min(waiting, 65536)))
        except (serial.SerialException, OSError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise HarnessError(f"device {self.url}: board stopped answering (link closed: {msg})") from None

    def send_raw(self, data: bytes) -> None:
        """Put bytes on the line as they are (tests: garbage, corrupted or oversized frames)."""
        if self._port is None:
            raise HarnessError(f"device {self.url}: link is not open")
        self._write(data)

    def read_frame(self, timeout: float) -> P.Frame | None:
        """Next whole frame from the board, or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            if time.monotonic() >= deadline:
                return None
            self._pending.extend(self._decoder.feed(self._read_some()))
        return self._pending.pop(0)

    def _transact(self, ftype: int, payload: bytes, timeout: float | None, retry: bool) -> P.Frame:
        if self._port is None:
            raise HarnessError(f"device {self.url}: link is not open (call open() first)")
        name = P.COMMAND_NAMES.get(ftype, hex(ftype))
        timeout = self.timeout if timeout is None else timeout
        attempts = 1 + (self.retries if retry else 0)
        last = "no answer"
        for _ in range(attempts):
            rid = self._next_id
            self._next_id = (self._next_id % 0xFFFF) + 1
            self._write(P.encode(ftype, rid, payload))
            deadline = time.monotonic() + timeout
            while True:
                frame = self.read_frame(max(0.0, deadline - time.monotonic()))
                if frame is None:
                    last = f"no answer within {timeout:g} s"
                    break
                if frame.request_id != rid:
                    continue  # a stale answer to an earlier, timed-out request
                if frame.type == ftype | P.RESPONSE:
                    return frame
                if frame.type == P.ERROR:
                    code, _, msg = P.decode_error(frame.payload)
                    label = P.ERROR_NAMES.get(code, f"code {code}")
                    if code in (P.E_BAD_CRC, P.E_BAD_VERSION):
                        last = f"board reported {label} ({msg})"
                        break  # corrupted on the way: worth one more try
                    raise BoardError(code, f"device {self.url}: {name} failed: {label} ({msg})")
                last = f"unexpected frame type 0x{frame.type:02x}"
                break
        raise HarnessError(f"device {self.url}: board stopped answering {name} ({last})")

    # -- commands --------------------------------------------------------------------------
    def hello(self, timeout: float | None = None) -> P.Hello:
        frame = self._transact(P.HELLO, b"", timeout if timeout is not None else min(self.timeout, 3.0), True)
        self.info = P.decode_hello(frame.payload)
        return self.info

    def verify(self) -> P.Hello:
        """HELLO, then refuse to go on if the board runs another build or model than expected."""
        info = self.hello()
        if self.expect_build_hash and info.build_hash != self.expect_build_hash:
            raise HarnessError(
                f"device {self.url}: board runs build {info.build_hash}, expected {self.expect_build_hash} "
                "(flash the right firmware)")
        if self.expect_model_id and info.model_id != self.expect_model_id:
            raise HarnessError(
                f"device {self.url}: board runs model {info.model_id!r}, expected {self.expect_model_id!r}")
        if info.protocol != P.VERSION:
            raise HarnessError(f"device {self.url}: protocol {info.protocol}, harness speaks {P.VERSION}")
        self._verified = True
        return info

    def _ready(self) -> P.Hello:
        if not self._verified or self.info is None:
            return self.verify()
        return self.info

    def infer_features(self, x: Any, timeout: float | None = None) -> P.Inference:
        """One inference on int8 features (49x40 for TinyConv); network time in timer units."""
        info = self._ready()
        data = np.ascontiguousarray(np.asarray(x, dtype=np.int8)).reshape(-1)
        if data.size != info.input_size:
            raise HarnessError(f"device {self.url}: {data.size} features given, model takes {info.input_size}")
        frame = self._transact(P.INFER_FEATURES, data.tobytes(), timeout, True)
        return P.decode_inference(frame.payload, 1, info.output_size)

    def infer_audio(self, pcm: Any, timeout: float | None = None) -> P.Inference:
        """Upload int16 PCM in chunks, then run front end + network + post-processing on the board."""
        info = self._ready()
        audio = np.ascontiguousarray(np.asarray(pcm, dtype="<i2")).reshape(-1)
        if not 0 < audio.size <= info.audio_samples:
            raise HarnessError(f"device {self.url}: {audio.size} audio samples, board holds 1..{info.audio_samples}")
        for offset in range(0, audio.size, P.AUDIO_CHUNK_SAMPLES):
            chunk = audio[offset : offset + P.AUDIO_CHUNK_SAMPLES]
            frame = self._transact(P.AUDIO_CHUNK, offset.to_bytes(2, "little") + chunk.tobytes(), timeout, True)
            if len(frame.payload) != 4 or int.from_bytes(frame.payload, "little") != offset + chunk.size:
                raise HarnessError(f"device {self.url}: audio upload out of step at sample {offset}")
        frame = self._transact(P.INFER_AUDIO, int(audio.size).to_bytes(4, "little"), timeout, True)
        return P.decode_inference(frame.payload, 3, info.output_size)

    def bench(self, n: int, warmup: int = 0, timeout: float | None = None) -> P.BenchResult:
        """N timed inferences after W warm-ups on the last features, timed on the device."""
        self._ready()
        if not 1 <= n <= 100_000 or not 0 <= warmup <= 100_000:
            raise HarnessError(f"device {self.url}: bench needs 1 <= n <= 100000 and 0 <= warmup <= 100000")
        if timeout is None:
            timeout = self.timeout + 0.5 * (n + warmup)
        frame = self._transact(P.BENCH, n.to_bytes(4, "little") + warmup.to_bytes(4, "little"), timeout, True)
        return P.decode_bench(frame.payload, n, warmup)

    def reset(self) -> None:
        """Clear the board's state (features, audio, front-end noise estimates)."""
        frame = self._transact(P.RESET, b"", None, True)
        if frame.payload:
            raise HarnessError(f"device {self.url}: RESET answered with {len(frame.payload)} unexpected bytes")


class BoardError(HarnessError):
    """The board answered with an ERROR frame (``code`` is the protocol's error code)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
