"""The host link (harness/device/link.py) against the native build of the firmware core and loop://.

The native build runs the same C core (frame parser, dispatcher) on the host over TCP, so the
firmware's answers to garbage, bad CRCs, oversized lengths and unknown commands are tested in
milliseconds; the emulated board is tested end to end in test_emulator.py.
"""

from __future__ import annotations

import importlib.util
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from harness.device import boards, emulator, firmware
from harness.device import protocol as P
from harness.errors import HarnessError
from harness.device.link import Board, BoardError

STANDIN = Path(__file__).resolve().parent / "fixtures" / "firmware_standin"
_spec = importlib.util.spec_from_file_location("standin", STANDIN / "standin.py")
standin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(standin)


@pytest.fixture(scope="module")
def native_build():
    return firmware.build(None, env="native", extra_src_dirs=(STANDIN,))


@pytest.fixture
def board(native_build):
    with emulator.start(native_build) as emu, Board(emu.url, timeout=2.0,
                                                   expect_build_hash=native_build.build_hash) as b:
        yield b


def test_hello_and_inference_on_the_native_core(board, native_build):
    info = board.verify()
    assert (info.board, info.timer_unit, info.model_id, info.build_hash) == (
        "native", "ns", "standin", native_build.build_hash)
    x = standin.features(4, seed=3)
    got = np.array([board.infer_features(xi).scores for xi in x], dtype=np.int8)
    assert (got == standin.predict(x)).all()


def test_garbage_on_the_line_is_skipped(board):
    board.send_raw(os.urandom(500).replace(b"\xa5", b"\x00") + b"\xa5\xa5\x5a")
    assert board.hello().model_id == "standin"


def test_bad_crc_gets_an_error_frame_naming_the_request(board):
    frame = bytearray(P.encode(P.HELLO, 4242, b""))
    frame[-1] ^= 0x55
    board.send_raw(bytes(frame))
    answer = board.read_frame(2.0)
    assert answer is not None and answer.type == P.ERROR and answer.request_id == 4242
    assert P.decode_error(answer.payload)[:2] == (P.E_BAD_CRC, P.HELLO)
    assert board.hello().model_id == "standin"  # and the board still answers


def test_oversized_length_is_rejected_before_any_copy(board):
    header = P.HEADER.pack(P.MAGIC, P.VERSION, P.INFER_FEATURES, 77, 60000)
    board.send_raw(header + bytes(3000))  # 3 kB after a header claiming 60 kB: more than the buffer
    answer = board.read_frame(2.0)
    assert answer is not None and answer.type == P.ERROR and answer.request_id == 77
    assert P.decode_error(answer.payload)[0] == P.E_BAD_LENGTH
    assert board.hello().model_id == "standin"


def test_wrong_payload_sizes_and_unknown_commands_are_errors(board):
    board.verify()
    with pytest.raises(BoardError, match="UNKNOWN_COMMAND") as err:
        board._transact(0x33, b"", 2.0, False)
    assert err.value.code == P.E_UNKNOWN_COMMAND
    with pytest.raises(BoardError, match="BAD_LENGTH"):
        board._transact(P.INFER_FEATURES, bytes(100), 2.0, False)
    with pytest.raises(BoardError, match="BAD_ARGUMENT"):
        board._transact(P.BENCH, struct.pack("<II", 0, 0), 2.0, False)
    with pytest.raises(HarnessError, match="features given"):
        board.infer_features(np.zeros(10, np.int8))  # checked on the host before sending


def test_bench_needs_features_and_reset_clears_them(board):
    board.verify()
    with pytest.raises(BoardError, match="NO_INPUT"):
        board.bench(3)
    board.infer_features(standin.features(1)[0])
    r = board.bench(3, 1)
    assert (r.n, r.warmup) == (3, 1) and r.min <= r.mean <= r.max
    board.reset()
    with pytest.raises(BoardError, match="NO_INPUT"):
        board.bench(3)


def test_stale_answers_are_skipped(board):
    board.send_raw(P.encode(P.HELLO, 999, b""))  # an answer nobody waits for
    time.sleep(0.05)
    assert board.hello().model_id == "standin"


def test_audio_upload_in_chunks_runs_the_front_end(board):
    from harness.device import frontend_native

    t = np.arange(16000) / 16000
    pcm = (3000 * np.sin(2 * np.pi * 440 * t) * (t > 0.3)).astype(np.int16)
    r = board.infer_audio(pcm)
    expected = standin.predict(frontend_native.features_c(pcm).reshape(1, -1))[0]
    assert list(r.scores) == list(expected)
    assert r.preprocessing > 0 and r.network > 0 and r.postprocessing is not None


def test_refuses_a_board_running_another_build(native_build):
    with emulator.start(native_build) as emu, Board(emu.url, timeout=2.0, expect_build_hash="0" * 16) as b:
        with pytest.raises(HarnessError, match="expected 0000000000000000"):
            b.infer_features(standin.features(1)[0])


def test_silent_board_times_out_in_one_line_without_hanging():
    t0 = time.monotonic()
    with Board("loop://", timeout=0.3) as b:  # our own request echoes back; no answer ever comes
        with pytest.raises(HarnessError, match="stopped answering HELLO") as err:
            b.hello()
    assert time.monotonic() - t0 < 2.0 and "\n" not in str(err.value)


def test_missing_port():
    with pytest.raises(HarnessError, match="/dev/ttyNOPE9: serial port does not exist"):
        Board("/dev/ttyNOPE9").open()
    with pytest.raises(HarnessError, match="does not exist"):
        boards.resolve("/dev/ttyNOPE9")


def test_busy_port_is_refused():
    master, slave = os.openpty()
    try:
        path = os.ttyname(slave)
        with Board(path):
            with pytest.raises(HarnessError, match="busy"):
                Board(path).open()
    finally:
        os.close(master)
        os.close(slave)


def test_refused_socket_is_one_line():
    with pytest.raises(HarnessError, match="cannot open"):
        Board("socket://127.0.0.1:1", connect_timeout=0.2).open()


def test_nothing_opens_in_constructors():
    b = Board("/dev/ttyNOPE9")  # would raise if it opened
    assert not b.is_open
    spec = boards.resolve("socket://127.0.0.1:4000")[0]
    assert (spec.kind, spec.env, spec.url) == ("socket", "nano33ble", "socket://127.0.0.1:4000")
    assert boards.resolve(None)[0].env == "emu_m4"


def test_auto_finds_nano_boards_by_usb_id(monkeypatch):
    from serial.tools import list_ports, list_ports_common

    def fake(device, vid, pid, serial):
        p = list_ports_common.ListPortInfo(device, skip_link_detection=True)
        p.vid, p.pid, p.serial_number = vid, pid, serial
        return p

    ports = [fake("/dev/ttyACM1", 0x2341, 0x805A, "B2"), fake("/dev/ttyUSB0", 0x0403, 0x6001, "FTDI"),
             fake("/dev/ttyACM0", 0x2341, 0x805A, "A1")]
    monkeypatch.setattr(list_ports, "comports", lambda: ports)
    found = boards.resolve("auto")
    assert [(b.url, b.serial_number) for b in found] == [("/dev/ttyACM0", "A1"), ("/dev/ttyACM1", "B2")]
    assert [b.url for b in boards.resolve("auto:B2")] == ["/dev/ttyACM1"]
    with pytest.raises(HarnessError, match="no Arduino Nano 33 BLE found with serial number Z"):
        boards.resolve("auto:Z")


def test_port_registry_keeps_two_workers_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_CACHE_DIR", str(tmp_path))
    spec = boards.BoardSpec("serial", "/dev/ttyACM7", "SN7")
    with boards.claim(spec):
        pid = os.fork()
        if pid == 0:  # another worker process tries the same board
            try:
                with boards.claim(spec):
                    os._exit(0)
            except HarnessError:
                os._exit(3)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 3
    with boards.claim(spec):  # released
        pass


def test_random_frames_never_break_the_firmware(board):
    """Fuzz the C frame parser and dispatcher with well-framed random requests: every one gets a
    response or an error frame with its id, and the board keeps serving."""
    rng = np.random.default_rng(11)
    for rid in range(1, 41):
        ftype = int(rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 0x7F, 0x85, 0xFF]))
        payload = rng.integers(0, 256, int(rng.choice([0, 1, 4, 8, 100, 1960, 2056])), dtype=np.uint8).tobytes()
        board.send_raw(P.encode(ftype, rid, payload))
        answer = board.read_frame(2.0)
        assert answer is not None and answer.request_id == rid, (ftype, len(payload))
        assert answer.type in (ftype | P.RESPONSE, P.ERROR)
    assert board.hello().model_id == "standin"
