"""The link recovers: a fault-injecting proxy (tests/faultproxy.py) between the harness and real
boards on 127.0.0.1 (QEMU running the emu_m4 firmware, the native build).

At a byte fault rate of 1e-3 (bit flips, dropped bytes, inserted garbage, both directions) every
answer equals the clean run's bit for bit; at 1e-2 a request gives up in one line naming it; a board
that goes silent, a dropped connection and a client that leaves mid-frame are handled. The only time
bounds are generous ones that prove "no hang".
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from harness.device import boards, emulator, firmware
from harness.device import protocol as P
from harness.device.link import Board
from harness.errors import HarnessError

from faultproxy import FaultProxy

pytestmark = pytest.mark.device

STANDIN = Path(__file__).resolve().parent / "fixtures" / "firmware_standin"
_spec = importlib.util.spec_from_file_location("standin", STANDIN / "standin.py")
standin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(standin)

N_INPUTS = 8


@pytest.fixture(scope="module", params=["emu_m4", "native"])
def build(request):
    return firmware.build(None, env=request.param, extra_src_dirs=(STANDIN,))


@contextlib.contextmanager
def _served(build):
    """A running board and a URL that takes one connection after another (the native build serves a
    single one: it is put behind a transparent proxy, like a board behind a serial server)."""
    with emulator.start(build) as emu:
        if build.env == "native":
            with FaultProxy(emu.url, rate=0.0) as proxy:
                yield proxy.url
        else:
            yield emu.url


def _pcm() -> np.ndarray:
    t = np.arange(16000) / 16000
    return (3000 * np.sin(2 * np.pi * 440 * t) * (t > 0.3)).astype(np.int16)


def _run(board: Board, x: np.ndarray) -> tuple[list, list]:
    """(answers, timings): what must be identical on any board, and timer counts (deterministic in QEMU)."""
    results = [board.infer_features(xi) for xi in x]
    audio = board.infer_audio(_pcm())
    bench = board.bench(3, 1)
    answers = [(r.label, r.scores) for r in results] + [(audio.label, audio.scores), bench.n]
    timings = [r.network for r in results] + [audio.preprocessing, audio.network, bench.min, bench.max]
    return answers, timings


def test_proxy_is_transparent_at_rate_zero_and_seeded():
    from faultproxy import _Faults
    import random

    data = bytes(range(256)) * 40
    a = _Faults(1e-2, random.Random(5), ("flip", "drop", "garbage")).apply(data)
    b = _Faults(1e-2, random.Random(5), ("flip", "drop", "garbage")).apply(data)
    assert a == b and a != data  # seeded: the same faults each time
    assert _Faults(0.0, random.Random(5), ("flip",)).apply(data) == data
    with pytest.raises(ValueError, match="loopback only"):
        FaultProxy("socket://10.0.0.1:4000")


@pytest.mark.parametrize("cut", [1, 2, 5, 7, 8, 9, 500, 1968, 1969])
def test_relay_ends_a_cut_frame_with_a_failing_crc(cut):
    """The QEMU relay's stand-in for a read timeout: the padded frame is whole and its CRC fails."""
    frame = P.encode(P.INFER_FEATURES, 9, bytes(range(256)) * 7 + bytes(168))  # 1960-byte payload
    tracker = emulator._FrameTracker()
    tracker.feed(b"\x00\xa5junk" + frame[:cut])
    assert tracker.mid_frame == (cut >= 2)
    pad = tracker.pad()
    assert not tracker.mid_frame
    dec = P.Decoder()
    assert dec.feed(frame[:cut] + pad) == [] and (cut < 2 or dec.bad_frames == 1)
    assert dec.feed(frame) and tracker.pad() == b""


def test_at_1e_3_every_answer_equals_the_clean_run(build):
    """Features, audio (chunks whose replies get lost) and BENCH through a faulty link: identical."""
    x = standin.features(N_INPUTS, seed=21)
    with _served(build) as url:
        with Board(url, expect_build_hash=build.build_hash) as clean:
            expected = _run(clean, x)
            assert clean.stats["retries"] == 0
        with FaultProxy(url, rate=1e-3, seed=7) as proxy, \
                Board(proxy.url, expect_build_hash=build.build_hash) as b:
            got = _run(b, x)
            faults = sum(proxy.faults.values())
    assert got[0] == expected[0]  # class and scores of every input and of the audio clip
    if build.env == "emu_m4":  # instruction counts are deterministic; ns are not
        assert got[1] == expected[1]
    assert faults > 0 and b.stats["retries"] > 0, (proxy.faults, b.stats)
    print(f"{build.env}: {faults} faults injected, {b.stats}")


def test_at_1e_2_a_request_gives_up_in_one_line(build):
    x = standin.features(1, seed=3)[0]
    with _served(build) as url, FaultProxy(url, rate=1e-2, seed=3) as proxy, \
            Board(proxy.url, timeout=1.0, retries=100, retry_budget_s=4.0) as b:
        t0 = time.monotonic()
        with pytest.raises(HarnessError) as err:
            b.verify()
            for _ in range(20):
                b.infer_features(x)
        assert time.monotonic() - t0 < 120  # bounded: no hang
        message = str(err.value)
        assert "\n" not in message and ("INFER_FEATURES" in message or "HELLO" in message), message
        # the link gave up: the next request fails at once, naming itself and the first failure
        with pytest.raises(HarnessError, match="not sent: link gave up on"):
            b.bench(1)


def test_a_board_that_stops_answering_is_one_line(build):
    with _served(build) as url, FaultProxy(url, rate=0.0) as proxy, Board(proxy.url, timeout=0.5) as b:
        b.verify()
        proxy.mute()
        t0 = time.monotonic()
        with pytest.raises(HarnessError, match=r"stopped answering INFER_FEATURES \(no answer within 0.5 s, 3 times\)"):
            b.infer_features(standin.features(1)[0])
        assert time.monotonic() - t0 < 30


def test_a_dropped_connection_is_reopened_and_hello_checked_again(build):
    x = standin.features(6, seed=4)
    with _served(build) as url, FaultProxy(url, rate=0.0) as proxy, \
            Board(proxy.url, expect_build_hash=build.build_hash) as b:
        first = [b.infer_features(xi).scores for xi in x[:3]]
        proxy.disconnect()
        time.sleep(0.1)
        rest = [b.infer_features(xi).scores for xi in x[3:]]
        assert b.stats["reconnects"] == 1 and proxy.clients == 2
    assert (np.array(first + rest, np.int8) == standin.predict(x)).all()


def test_a_client_leaving_mid_frame_does_not_block_the_next_hello(build):
    """The frame it cut short is dropped by the firmware's stall timeout (QEMU: by its relay)."""
    with _served(build) as url:
        host, port = url.removeprefix("socket://").split(":")
        with socket.create_connection((host, int(port))) as s:
            s.sendall(P.encode(P.INFER_FEATURES, 5, bytes(1960))[:700])
        if build.env == "native":  # bytes sent within the firmware's 200 ms would continue that frame
            time.sleep(0.3)
        with Board(url, retries=0, timeout=3.0) as b:  # no retry: the first HELLO must be served
            assert b.hello().model_id == "standin"
        with socket.create_connection((host, int(port))) as s:
            s.sendall(P.encode(P.INFER_FEATURES, 6, bytes(1960))[:900])
        with Board(url, timeout=3.0) as b:  # at once: the stalled frame's error makes the host send again
            assert b.hello().model_id == "standin"


def test_a_stalled_frame_is_answered_with_timeout_and_the_parser_starts_over(build):
    with emulator.start(build) as emu, Board(emu.url, retries=0, timeout=3.0) as b:
        b.send_raw(P.encode(P.INFER_FEATURES, 77, bytes(1960))[:500])
        answer = b.read_frame(3.0)
        assert answer is not None and answer.type == P.ERROR and answer.request_id == 77
        assert P.decode_error(answer.payload)[0] in (P.E_TIMEOUT, P.E_BAD_CRC)  # QEMU's relay: BAD_CRC
        assert b.hello().model_id == "standin"


def test_a_repeated_audio_chunk_is_acknowledged_again(build):
    pcm = _pcm()
    with emulator.start(build) as emu, Board(emu.url) as b:
        expected = b.infer_audio(pcm).scores
        for offset in range(0, 16000, P.AUDIO_CHUNK_SAMPLES):
            chunk = offset.to_bytes(2, "little") + pcm[offset : offset + P.AUDIO_CHUNK_SAMPLES].tobytes()
            first = b._transact(P.AUDIO_CHUNK, chunk, None, False).payload
            again = b._transact(P.AUDIO_CHUNK, chunk, None, False).payload  # its answer was "lost"
            assert first == again == (offset + len(chunk) // 2 - 1).to_bytes(4, "little")
        r = P.decode_inference(b._transact(P.INFER_AUDIO, (16000).to_bytes(4, "little"), None, False).payload, 3)
        assert r.scores == expected
        with pytest.raises(HarnessError, match="AUDIO_CHUNK failed: BAD_ARGUMENT"):  # a gap is still refused
            b._transact(P.AUDIO_CHUNK, (5000).to_bytes(2, "little") + bytes(8), None, False)


def test_socket_url_takes_or_learns_the_board_kind(build):
    spec = boards.resolve("socket://127.0.0.1:4000?board=emu_m4")[0]
    assert (spec.kind, spec.board, spec.env, spec.url) == ("socket", "emu_m4", "emu_m4", "socket://127.0.0.1:4000")
    with pytest.raises(HarnessError, match="board=pico"):
        boards.resolve("socket://127.0.0.1:4000?board=pico")
    with _served(build) as url:
        spec = boards.identify(boards.resolve(url)[0])
        assert (spec.board, spec.env) == (build.env, build.env)
        with boards.session(spec, build) as b:  # the build's hash is checked, nothing is flashed
            assert b.info.build_hash == build.build_hash
            x = standin.features(2, seed=1)
            assert (np.array([b.infer_features(xi).scores for xi in x], np.int8) == standin.predict(x)).all()
