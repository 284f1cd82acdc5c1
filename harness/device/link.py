"""The host end of the board link: a protocol client over any pyserial URL.

``Board(url)`` does no I/O until ``open()`` (labgrid's rule: nothing opens a port in a
constructor). Each request waits for the answer carrying its own request id, with a per-request
deadline; garbage and stale frames are skipped (the decoder resynchronises on the next magic).
All our requests are idempotent (HELLO, INFER, BENCH, RESET, audio chunks at an explicit offset),
so a corrupted, cut-short or unanswered one is sent again, within a budget of attempts and seconds
per request, and a dropped connection is reopened and HELLO re-verified before going on. A board
that stops answering, a missing or busy port, and a board built for a different model all end in
a one-line HarnessError naming the request, never a hang; ``Board.stats`` counts the retries. Timings are returned in the
board's own unit (HELLO.timer_unit: instructions in QEMU, cycles on the Nano, ns natively).
"""

from __future__ import annotations

import collections
import errno
import socket
import time
from typing import Any, NoReturn

import numpy as np
import serial

from harness.device import protocol as P
from harness.errors import HarnessError

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RETRIES = 100  # further attempts per request: at a byte fault rate of 1e-3 a 2 kB frame gets through 1 in 7
DEFAULT_RETRY_BUDGET_S = 60.0  # wall time per request, all attempts together (at least 3 timeouts)
STALL_S = 0.3  # a reply that stops mid-way (or arrives as garbage) this long is taken as lost
_SILENT_LIMIT = 3  # attempts in a row without a byte of answer: the board is gone
_REPEAT_LIMIT = 3  # BAD_LENGTH/BAD_VERSION for our own id in a row: taken as real, not as a flipped byte
_POLL_S = 0.05


class _LinkLost(HarnessError):
    """The connection itself went away (socket closed, USB unplugged): reconnect, do not just resend."""


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
                 connect_timeout: float = 5.0, retries: int = DEFAULT_RETRIES,
                 retry_budget_s: float = DEFAULT_RETRY_BUDGET_S, reconnect_timeout: float = 3.0):
        self.url = url
        self.timeout = timeout
        self.baudrate = baudrate
        self.expect_build_hash = expect_build_hash
        self.expect_model_id = expect_model_id
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.retry_budget_s = retry_budget_s
        self.reconnect_timeout = reconnect_timeout
        self.stats = {"requests": 0, "retries": 0, "reconnects": 0, "silent": 0, "mangled": 0, "errors": 0}  # results metadata: how hard the link worked
        self._reconnecting = False
        self._failed: str | None = None  # set when a request exhausted its budget: later ones fail at once
        self._recent: collections.deque[int] = collections.deque(maxlen=4096)  # ids sent lately
        self._recent_ids: set[int] = set()
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
            raise _LinkLost(f"device {self.url}: link lost while writing ({exc})") from None

    def _read_some(self) -> bytes:
        assert self._port is not None
        try:
            waiting = self._port.in_waiting
            return self._port.read(max(1, min(waiting, 65536)))
        except (serial.SerialException, OSError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise _LinkLost(f"device {self.url}: board stopped answering (link closed: {msg})") from None

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
        """Send one request and return its answer, retrying within the budget (docs/PROTOCOL.md).

        Every attempt sends the same (idempotent) request under a fresh id; an answer to any attempt of
        this request is accepted, answers to earlier requests are skipped. A new attempt starts after a
        transport error frame (BAD_CRC, TIMEOUT: at once; BAD_LENGTH/BAD_VERSION: at most
        ``_REPEAT_LIMIT`` in a row, they may be real), a reply that arrived mangled (a bad frame, or bytes
        that stop mid-way for STALL_S), no answer within ``timeout`` (at most ``_SILENT_LIMIT`` in a
        row: then the board is taken as gone), or a dropped connection (reconnect + HELLO re-verified).
        """
        if self._port is None:
            raise HarnessError(f"device {self.url}: link is not open (call open() first)")
        name = P.COMMAND_NAMES.get(ftype, hex(ftype))
        if self._failed:
            raise HarnessError(f"device {self.url}: {name} not sent: {self._failed}")
        timeout = self.timeout if timeout is None else timeout
        max_attempts = 1 + (self.retries if retry else 0)
        budget_s = max(self.retry_budget_s, 3 * timeout)
        budget_end = time.monotonic() + budget_s
        mine: set[int] = set()
        attempts = silent = repeats = 0
        last = "no answer"
        self.stats["requests"] += 1
        while True:
            if attempts >= max_attempts and attempts == 1:
                return self._give_up(f"board stopped answering {name} ({last})", retry)
            if attempts >= max_attempts or (attempts and time.monotonic() >= budget_end):
                spent = time.monotonic() - budget_end + budget_s
                return self._give_up(f"link gave up on {name} after {attempts} attempts in {spent:.0f} s "
                                     f"(last: {last})", retry)
            if attempts:
                self.stats["retries"] += 1
            attempts += 1
            rid = self._new_id()
            mine.add(rid)
            try:
                self._write(P.encode(ftype, rid, payload))
                outcome, frame, detail = self._await(ftype, mine, timeout, foreign_errors=max_attempts > 1)
            except _LinkLost as exc:
                last = "link lost: " + str(exc).removeprefix(f"device {self.url}: ")
                if not retry or self._reconnecting:
                    return self._give_up(f"board stopped answering {name} ({last})", retry)
                self._reconnect(name, last)
                silent = repeats = 0
                continue
            if outcome == "ok":
                return frame
            if outcome == "error":
                self.stats["errors"] += 1
                code, _, msg = P.decode_error(frame.payload)
                label = P.ERROR_NAMES.get(code, f"code {code}")
                ours = frame.request_id in mine
                last = f"board reported {label} ({msg})" if ours else f"board reported {label} for a mangled request"
                if not ours or code in (P.E_BAD_CRC, P.E_TIMEOUT):
                    retryable, repeats = True, 0  # corrupted or cut short on the way: send it again
                elif code in (P.E_BAD_LENGTH, P.E_BAD_VERSION):
                    repeats += 1  # a flipped length or version byte, unless it happens every time
                    retryable = repeats <= _REPEAT_LIMIT
                else:
                    retryable = False
                if not retryable or not retry:
                    if ours:
                        raise BoardError(code, f"device {self.url}: {name} failed: {label} ({msg})")
                    return self._give_up(f"board stopped answering {name} ({last})", retry)
                silent = 0
                continue
            last = detail
            self.stats[outcome] += 1
            if outcome == "silent":
                silent += 1
                if silent >= _SILENT_LIMIT:
                    return self._give_up(f"board stopped answering {name} ({detail}, {silent} times)", retry)
            else:
                silent = 0

    def _new_id(self) -> int:
        rid = self._next_id
        self._next_id = (self._next_id % 0xFFFF) + 1
        if len(self._recent) == self._recent.maxlen:
            self._recent_ids.discard(self._recent[0])
        self._recent.append(rid)
        self._recent_ids.add(rid)
        return rid

    def _await(self, ftype: int, mine: set[int], timeout: float,
               foreign_errors: bool = True) -> tuple[str, P.Frame | None, str]:
        """Wait for the answer to one attempt: ("ok"|"error", frame, "") or ("silent"|"mangled", None, why).

        An error frame for an id never sent is taken as ours, mangled on the way (``foreign_errors``),
        or skipped like a stale answer (no retries: it may be a former client's, e.g. a stalled frame's)."""
        assert self._port is not None
        dec = self._decoder
        noise0 = (dec.dropped_bytes, dec.bad_frames, dec.buffered)
        deadline = time.monotonic() + timeout
        last_rx = None
        while True:
            while self._pending:
                frame = self._pending.pop(0)
                if frame.request_id in mine:
                    if frame.type == ftype | P.RESPONSE:
                        return "ok", frame, ""
                    if frame.type == P.ERROR:
                        return "error", frame, ""
                    continue  # our own request echoed (loop://) or nonsense with our id
                if foreign_errors and frame.type == P.ERROR and frame.request_id not in self._recent_ids:
                    return "error", frame, ""  # an error for an id never sent: our request, mangled
                # else: a stale answer to an earlier request
            now = time.monotonic()
            noisy = (dec.dropped_bytes, dec.bad_frames, dec.buffered) != noise0
            if dec.bad_frames != noise0[1] and not dec.buffered:  # a whole reply failed its CRC: lost
                return "mangled", None, "reply failed its CRC"
            if noisy and last_rx is not None and now - last_rx >= STALL_S:
                return "mangled", None, (f"reply mangled on the way: {dec.bad_frames - noise0[1]} bad frames, "
                                         f"{dec.dropped_bytes - noise0[0]} stray bytes, {dec.buffered} bytes "
                                         "of a frame cut short")
            if now >= deadline:
                if noisy:
                    return "mangled", None, "reply mangled on the way"
                return "silent", None, f"no answer within {timeout:g} s"
            data = self._read_some()
            if data:
                last_rx = time.monotonic()
                self._pending.extend(dec.feed(data))

    def _give_up(self, why: str, remember: bool) -> NoReturn:
        message = f"device {self.url}: {why}"
        if remember:  # a link that exhausted its budget is not retried request after request
            self._failed = why
        raise HarnessError(message)

    def _reconnect(self, name: str, why: str) -> None:
        """Reopen a dropped link and check with HELLO that the same board and build answer."""
        before = self.info
        self.close()
        self._decoder = P.Decoder(max_payload=P.MAX_PAYLOAD)
        self._pending.clear()
        self.stats["reconnects"] += 1
        self._reconnecting = True
        try:
            self._port = _open_port(self.url, self.baudrate, self.reconnect_timeout)
            info = P.decode_hello(self._transact(P.HELLO, b"", min(self.timeout, 3.0), True).payload)
        except HarnessError as exc:
            detail = str(exc).removeprefix(f"device {self.url}: ")
            self._failed = f"board stopped answering {name} ({why}; reconnecting failed: {detail})"
            raise HarnessError(f"device {self.url}: {self._failed}") from None
        finally:
            self._reconnecting = False
        expected = before.build_hash if before is not None else self.expect_build_hash
        if expected and info.build_hash != expected:
            self._failed = (f"after the link dropped during {name}, the board runs build {info.build_hash}, "
                            f"expected {expected}")
            raise HarnessError(f"device {self.url}: {self._failed}")
        self.info = info

    # -- commands --------------------------------------------------------------------------
    def hello(self, timeout: float | None = None) -> P.Hello:
        frame = self._transact(P.HELLO, b"", timeout if timeout is not None else min(self.timeout, 3.0), True)
        self.info = self._decode("HELLO", P.decode_hello, frame.payload)
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
            raise HarnessError(f"device {self.url}: INFER_FEATURES: {data.size} features given, model takes "
                               f"{info.input_size}")
        frame = self._transact(P.INFER_FEATURES, data.tobytes(), timeout, True)
        return self._decode("INFER_FEATURES", P.decode_inference, frame.payload, 1, info.output_size)

    def infer_audio(self, pcm: Any, timeout: float | None = None) -> P.Inference:
        """Upload int16 PCM in chunks, then run front end + network + post-processing on the board."""
        info = self._ready()
        audio = np.ascontiguousarray(np.asarray(pcm, dtype="<i2")).reshape(-1)
        if not 0 < audio.size <= info.audio_samples:
            raise HarnessError(f"device {self.url}: AUDIO_CHUNK: {audio.size} audio samples, board holds "
                               f"1..{info.audio_samples}")
        for offset in range(0, audio.size, P.AUDIO_CHUNK_SAMPLES):
            chunk = audio[offset : offset + P.AUDIO_CHUNK_SAMPLES]
            frame = self._transact(P.AUDIO_CHUNK, offset.to_bytes(2, "little") + chunk.tobytes(), timeout, True)
            if len(frame.payload) != 4 or int.from_bytes(frame.payload, "little") != offset + chunk.size:
                raise HarnessError(f"device {self.url}: AUDIO_CHUNK at sample {offset}: board holds "
                                   f"{int.from_bytes(frame.payload, 'little')} samples, expected {offset + chunk.size}")
        frame = self._transact(P.INFER_AUDIO, int(audio.size).to_bytes(4, "little"), timeout, True)
        return self._decode("INFER_AUDIO", P.decode_inference, frame.payload, 3, info.output_size)

    def bench(self, n: int, warmup: int = 0, timeout: float | None = None) -> P.BenchResult:
        """N timed inferences after W warm-ups on the last features, timed on the device."""
        self._ready()
        if not 1 <= n <= 100_000 or not 0 <= warmup <= 100_000:
            raise HarnessError(f"device {self.url}: BENCH needs 1 <= n <= 100000 and 0 <= warmup <= 100000")
        if timeout is None:
            timeout = self.timeout + 0.5 * (n + warmup)
        frame = self._transact(P.BENCH, n.to_bytes(4, "little") + warmup.to_bytes(4, "little"), timeout, True)
        return self._decode("BENCH", P.decode_bench, frame.payload, n, warmup)

    def reset(self) -> None:
        """Clear the board's state (features, audio, front-end noise estimates)."""
        frame = self._transact(P.RESET, b"", None, True)
        if frame.payload:
            raise HarnessError(f"device {self.url}: RESET answered with {len(frame.payload)} unexpected bytes")

    def _decode(self, name: str, fn: Any, *args: Any) -> Any:
        """A payload decoder whose one-line error names the device and the request."""
        try:
            return fn(*args)
        except HarnessError as exc:
            raise HarnessError(f"device {self.url}: {name}: {str(exc).removeprefix('protocol: ')}") from None


class BoardError(HarnessError):
    """The board answered with an ERROR frame (``code`` is the protocol's error code)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
