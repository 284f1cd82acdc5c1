"""The emulated board end to end: the firmware built for the Cortex-M4F running in QEMU."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

from harness.device import emulator, firmware
from harness.errors import HarnessError
from harness.device.link import Board

pytestmark = pytest.mark.device

STANDIN = Path(__file__).resolve().parent / "fixtures" / "firmware_standin"
_spec = importlib.util.spec_from_file_location("standin", STANDIN / "standin.py")
standin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(standin)


@pytest.fixture(scope="module")
def emu_build():
    return firmware.build(None, env="emu_m4", extra_src_dirs=(STANDIN,))


@pytest.fixture
def board(emu_build):
    with emulator.start(emu_build) as emu, Board(emu.url, expect_build_hash=emu_build.build_hash) as b:
        yield b


def test_hello_reports_the_build(board, emu_build):
    info = board.verify()
    assert (info.board, info.build_hash, info.model_id, info.backend) == ("emu_m4", emu_build.build_hash, "standin", "aot")
    assert (info.timer_unit, info.clock_hz, info.input_size, info.output_size) == ("instructions", 25_000_000, 1960, 4)
    static = emu_build.sizes.ram + emu_build.sizes.stack
    assert static <= info.ram_bytes <= static + 8  # up to the 8-byte stack alignment


def test_inference_equals_the_host_twin_and_is_fast(board):
    x = standin.features(40, seed=7)
    board.verify()
    t0 = time.perf_counter()
    results = [board.infer_features(xi) for xi in x]
    rate = len(x) / (time.perf_counter() - t0)
    assert (np.array([r.scores for r in results], np.int8) == standin.predict(x)).all()
    assert [r.label for r in results] == list(standin.predict(x).argmax(axis=1))
    assert rate >= 20, f"{rate:.1f} feature inferences/s over the protocol"
    assert all(r.network == results[0].network for r in results)  # data-independent loop, icount


def test_bench_counts_are_identical_across_runs_and_boards(emu_build):
    runs = []
    for _ in range(2):
        with emulator.start(emu_build) as emu, Board(emu.url) as b:
            b.infer_features(standin.features(1, seed=1)[0])
            runs.append((b.bench(4, 1), b.bench(4, 1)))
    (a1, a2), (b1, _) = runs
    assert (a1.total, a1.min, a1.max) == (a2.total, a2.min, a2.max) == (b1.total, b1.min, b1.max)
    assert a1.min == a1.max and a1.total == 4 * a1.min and a1.min % 40 == 0  # 40 instructions a tick


def test_audio_runs_the_front_end_on_the_device(board):
    from harness.device import frontend_native

    rng = np.random.default_rng(5)
    pcm = (rng.normal(0, 800, 16000) + 4000 * np.sin(np.arange(16000) * 0.07)).astype(np.int16)
    r = board.infer_audio(pcm)
    assert list(r.scores) == list(standin.predict(frontend_native.features_c(pcm).reshape(1, -1))[0])
    assert r.preprocessing > 100_000 and r.network > 0


def test_several_boards_at_once(emu_build):
    with emulator.start(emu_build) as a, emulator.start(emu_build) as b:
        assert a.port != b.port
        with Board(a.url) as ba, Board(b.url) as bb:
            x = standin.features(1, seed=2)[0]
            assert ba.infer_features(x).scores == bb.infer_features(x).scores


def test_killed_board_is_a_one_line_error_not_a_hang(emu_build):
    with emulator.start(emu_build) as emu, Board(emu.url, timeout=3.0) as b:
        b.hello()
        emu.kill()
        t0 = time.monotonic()
        with pytest.raises(HarnessError, match="stopped answering") as err:
            b.infer_features(standin.features(1)[0])
        assert time.monotonic() - t0 < 8 and "\n" not in str(err.value)
    assert not emu.alive()


def test_uart_link_variant(emu_build):
    uart = firmware.build(None, env="emu_m4", extra_src_dirs=(STANDIN,), defines=("KWS_EMU_LINK_UART",))
    x = standin.features(2, seed=9)
    with emulator.start(uart) as emu, Board(emu.url, expect_build_hash=uart.build_hash) as b:
        assert b.verify().board == "emu_m4"
        assert (np.array([b.infer_features(xi).scores for xi in x], np.int8) == standin.predict(x)).all()


def test_qemu_dies_with_the_harness(emu_build):
    import subprocess
    import sys

    code = ("import sys, time; from harness.device import emulator\n"
            f"e = emulator.start({str(emu_build.elf)!r}); print(e.proc.pid, flush=True); time.sleep(60)\n")
    from harness.paths import REPO_ROOT

    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    qemu_pid = int(parent.stdout.readline())
    parent.kill()  # SIGKILL: no atexit, no context manager; only PR_SET_PDEATHSIG is left
    parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{qemu_pid}").exists():
        status = Path(f"/proc/{qemu_pid}/status").read_text() if Path(f"/proc/{qemu_pid}").exists() else ""
        if "zombie" in status:
            break
        time.sleep(0.05)
    status = Path(f"/proc/{qemu_pid}/status").read_text() if Path(f"/proc/{qemu_pid}").exists() else "gone"
    assert status == "gone" or "zombie" in status


def test_missing_or_corrupt_elf_is_named(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        emulator.start(tmp_path / "firmware.elf")
    bad = tmp_path / "bad.elf"
    bad.write_bytes(b"\x7fELF" + bytes(14) + (40).to_bytes(2, "little") + bytes(100))  # ARM, truncated
    with pytest.raises(HarnessError, match="bad.elf is not a readable ELF"):
        emulator.start(bad)


def test_bad_frames_on_the_emulated_link(board):
    from harness.device import protocol as P

    board.send_raw(P.HEADER.pack(P.MAGIC, P.VERSION, P.INFER_FEATURES, 31, 40000) + bytes(2500))
    answer = board.read_frame(3.0)
    assert answer is not None and (answer.type, answer.request_id) == (P.ERROR, 31)
    assert P.decode_error(answer.payload)[0] == P.E_BAD_LENGTH
    corrupted = bytearray(P.encode(P.HELLO, 32, b""))
    corrupted[5] ^= 1  # request id byte: CRC fails
    board.send_raw(bytes(corrupted))
    answer = board.read_frame(3.0)
    assert answer is not None and answer.type == P.ERROR and P.decode_error(answer.payload)[0] == P.E_BAD_CRC
    assert board.hello().board == "emu_m4"
