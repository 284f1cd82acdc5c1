"""The harness <-> firmware serial protocol, host side: frames, CRC, payload layouts.

Pure functions with no I/O, so the framing is testable on its own and the link (link.py) only
moves bytes. The wire format is documented in docs/PROTOCOL.md and mirrored in C by
firmware/lib/kws_protocol/. Decoders check every length and count the board sends against the
frame they came in: a board (or a cable) is never trusted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from harness.errors import HarnessError

MAGIC = b"\xa5\x5a"
VERSION = 1
HEADER = struct.Struct("<2sBBHH")  # magic, version, type, request id, payload length
HEADER_SIZE = HEADER.size  # 8
CRC_SIZE = 2
MAX_PAYLOAD = 2056  # firmware's KWS_MAX_PAYLOAD: a longer frame is answered with BAD_LENGTH
MAX_CLASSES = 64
AUDIO_CHUNK_SAMPLES = 1024  # 2 + 2048 bytes per AUDIO_CHUNK payload

# Request types; a response carries type | RESPONSE, an error frame type ERROR.
HELLO = 0x01
INFER_FEATURES = 0x02
AUDIO_CHUNK = 0x03
INFER_AUDIO = 0x04
BENCH = 0x05
RESET = 0x06
RESPONSE = 0x80
ERROR = 0x7F

COMMAND_NAMES = {
    HELLO: "HELLO",
    INFER_FEATURES: "INFER_FEATURES",
    AUDIO_CHUNK: "AUDIO_CHUNK",
    INFER_AUDIO: "INFER_AUDIO",
    BENCH: "BENCH",
    RESET: "RESET",
}

ERROR_NAMES = {
    1: "BAD_CRC",
    2: "BAD_LENGTH",
    3: "UNKNOWN_COMMAND",
    4: "BUSY",
    5: "BAD_VERSION",
    6: "BAD_ARGUMENT",
    7: "NO_INPUT",
    8: "MODEL",
    9: "TIMEOUT",
}
E_BAD_CRC, E_BAD_LENGTH, E_UNKNOWN_COMMAND, E_BUSY, E_BAD_VERSION, E_BAD_ARGUMENT, E_NO_INPUT, E_MODEL, E_TIMEOUT = (
    range(1, 10))


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): check value 0x29B1 for b"123456789"."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


# Table-driven variant for the hot path (1960-byte feature frames at >= 20 per second).
_CRC_TABLE = [crc16(bytes([i]), 0) for i in range(256)]


def _crc16_fast(data: bytes, crc: int = 0xFFFF) -> int:
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


@dataclass(frozen=True)
class Frame:
    type: int
    request_id: int
    payload: bytes = b""
    version: int = VERSION


def encode(frame_type: int, request_id: int, payload: bytes = b"", version: int = VERSION) -> bytes:
    """One frame on the wire. Raises HarnessError for a payload the firmware could not hold."""
    if len(payload) > 0xFFFF:
        raise HarnessError(f"protocol: payload of {len(payload)} bytes does not fit a frame")
    body = HEADER.pack(MAGIC, version, frame_type, request_id & 0xFFFF, len(payload))[2:] + payload
    return MAGIC + body + struct.pack("<H", _crc16_fast(body))


class Decoder:
    """Incremental frame decoder: feed bytes, get whole frames; skips garbage and bad frames.

    A frame whose CRC fails, whose version is not ours or whose length exceeds ``max_payload`` is
    dropped and the search for the next magic restarts one byte later, so garbage that happens to
    contain the magic never makes the decoder wait for a frame that is not coming.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD, version: int = VERSION):
        self.version = version
        self.max_payload = max_payload
        self._buf = bytearray()
        self.dropped_bytes = 0
        self.bad_frames = 0

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete (a reply cut short leaves some here)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        buf = self._buf
        while True:
            start = buf.find(MAGIC)
            if start < 0:
                keep = 1 if buf.endswith(MAGIC[:1]) else 0
                self.dropped_bytes += len(buf) - keep
                del buf[: len(buf) - keep]
                break
            if start:
                self.dropped_bytes += start
                del buf[:start]
            if len(buf) < HEADER_SIZE:
                break
            _, version, ftype, rid, length = HEADER.unpack_from(buf)
            if length > self.max_payload or version != self.version:
                self.bad_frames += 1
                del buf[:1]
                continue
            total = HEADER_SIZE + length + CRC_SIZE
            if len(buf) < total:
                break
            body = bytes(buf[2 : HEADER_SIZE + length])
            (crc,) = struct.unpack_from("<H", buf, HEADER_SIZE + length)
            if _crc16_fast(body) != crc:
                self.bad_frames += 1
                del buf[:1]
                continue
            frames.append(Frame(ftype, rid, bytes(buf[HEADER_SIZE : HEADER_SIZE + length]), version))
            del buf[:total]
        return frames


# ----------------------------------------------------------------------------- payloads


@dataclass
class Hello:
    """What the board says about itself (HELLO response: ``key=value`` lines)."""

    protocol: int
    firmware: str
    build_hash: str
    model_id: str
    backend: str
    board: str
    clock_hz: int
    timer_unit: str
    timer_source: str
    input_size: int
    output_size: int
    arena_bytes: int
    ram_bytes: int
    max_payload: int
    audio_samples: int
    extra: dict = field(default_factory=dict)
    # Since firmware 0.2 (older firmware leaves them empty): what compiled our sources and how
    # interrupts are kept out of timed regions, so a results row says what ran.
    compiler: str = ""
    cflags: str = ""
    timing: str = ""
    # Since the packed/sparse runtime: how each layer's weights are stored ("conv=int8,fc=sparse"...).
    weights: str = ""


_HELLO_INTS = ("protocol", "clock_hz", "input_size", "output_size", "arena_bytes", "ram_bytes",
               "max_payload", "audio_samples")
_HELLO_STRS = ("firmware", "build_hash", "model_id", "backend", "board", "timer_unit", "timer_source")
_HELLO_OPTIONAL = ("compiler", "cflags", "timing", "weights")


def decode_hello(payload: bytes) -> Hello:
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError as exc:
        raise HarnessError("protocol: HELLO response is not ASCII text") from exc
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    missing = [k for k in _HELLO_INTS + _HELLO_STRS if k not in fields]
    if missing:
        raise HarnessError(f"protocol: HELLO response lacks {', '.join(missing)}")
    try:
        ints = {k: int(fields.pop(k)) for k in _HELLO_INTS}
    except ValueError as exc:
        raise HarnessError(f"protocol: HELLO response has a non-numeric field ({exc})") from exc
    strs = {k: fields.pop(k) for k in _HELLO_STRS}
    strs.update({k: fields.pop(k, "") for k in _HELLO_OPTIONAL})
    if not 0 < ints["output_size"] <= MAX_CLASSES or not 0 < ints["input_size"] <= MAX_PAYLOAD:
        raise HarnessError(
            f"protocol: HELLO reports implausible sizes (input {ints['input_size']}, output {ints['output_size']})")
    return Hello(**ints, **strs, extra=fields)


@dataclass
class Inference:
    """INFER_FEATURES / INFER_AUDIO response. Times are in the board's timer unit."""

    label: int
    scores: list[int]
    network: int
    preprocessing: int | None = None
    postprocessing: int | None = None


def decode_inference(payload: bytes, n_times: int, expected_classes: int | None = None) -> Inference:
    """class u8, n u8, reserved u16, n_times x u32, n x int8 scores (checked against the frame)."""
    if len(payload) < 4:
        raise HarnessError(f"protocol: inference response of {len(payload)} bytes is too short")
    label, n = payload[0], payload[1]
    if expected_classes is not None and n != expected_classes:
        raise HarnessError(f"protocol: board sent {n} scores, expected {expected_classes}")
    if n == 0 or n > MAX_CLASSES or len(payload) != 4 + 4 * n_times + n or label >= n:
        raise HarnessError(
            f"protocol: inconsistent inference response (class {label}, {n} scores, {len(payload)} bytes)")
    times = struct.unpack_from(f"<{n_times}I", payload, 4)
    scores = list(struct.unpack_from(f"<{n}b", payload, 4 + 4 * n_times))
    if n_times == 1:
        return Inference(label, scores, network=times[0])
    pre, net, post = times
    return Inference(label, scores, network=net, preprocessing=pre, postprocessing=post)


@dataclass
class BenchResult:
    """BENCH response: N timed inferences after W warm-ups, timed on the device."""

    n: int
    warmup: int
    total: int
    min: int
    max: int

    @property
    def mean(self) -> float:
        return self.total / self.n


def decode_bench(payload: bytes, n: int, warmup: int) -> BenchResult:
    if len(payload) != 32:
        raise HarnessError(f"protocol: BENCH response of {len(payload)} bytes, expected 32")
    rn, rw, total, lo, hi = struct.unpack("<IIQQQ", payload)
    if (rn, rw) != (n, warmup):
        raise HarnessError(f"protocol: BENCH ran n={rn} w={rw}, asked n={n} w={warmup}")
    if not lo <= hi or not lo * n <= total <= hi * n:
        raise HarnessError(f"protocol: BENCH figures are inconsistent (total {total}, min {lo}, max {hi})")
    return BenchResult(rn, rw, total, lo, hi)


def decode_error(payload: bytes) -> tuple[int, int, str]:
    """(code, request type, message) of an ERROR frame."""
    if len(payload) < 2:
        return 0, 0, "malformed error frame"
    return payload[0], payload[1], payload[2:].decode("ascii", "replace")
