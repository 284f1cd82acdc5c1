"""The real board's flash-and-verify sequence, run offline (harness/device/boards/serial.py).

upload -> the application's port goes away -> it comes back (here under another name) and is found
by its USB serial number -> HELLO's build hash is checked -> measure. What is simulated, in every test:
- PlatformIO: a fake ``pio`` executable (written below) records its arguments and plays the board's
  USB side of an upload (application port gone, bootloader, application back after a delay);
- USB enumeration: ``serial.tools.list_ports.comports`` is replaced by a listing the fake ``pio``
  writes to a file;
- the board's firmware: a thread on the master side of a pty pair answers HELLO and BENCH frames
  (protocol.encode); the harness opens the pty's slave path like /dev/ttyACM0, with link.Board.
The harness side (boards.session, serial.flash, firmware.upload, link.Board, the claim) is real.
"""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from harness.device import boards, firmware
from harness.device import protocol as P
from harness.device.boards import serial as serial_link
from harness.errors import HarnessError

SN = "F00DCAFE0001"
APP_PID, BOOT_PID = 0x805A, 0x005A

FAKE_PIO = textwrap.dedent('''
    """Fake pio (simulated PlatformIO): records argv, plays the USB side of an upload."""
    import json, os, sys, time
    d = os.environ["FAKE_PIO_DIR"]
    calls_path = os.path.join(d, "calls.json")
    calls = json.load(open(calls_path)) if os.path.exists(calls_path) else []
    calls.append(sys.argv[1:])
    json.dump(calls, open(calls_path, "w"))
    scen = json.load(open(os.path.join(d, "scenario.json")))
    def ports(now, later=None):
        tmp = os.path.join(d, "ports.tmp")
        json.dump({"now": now, "later": later}, open(tmp, "w"))
        os.replace(tmp, os.path.join(d, "ports.json"))
    if len(calls) == 1 and scen.get("stuck_in_bootloader"):  # touch worked, bossac failed
        ports([{"device": scen["stuck_in_bootloader"], "pid": %(boot)d, "serial": "%(sn)s"}])
        print("Error: bossac: verify failed")
        sys.exit(1)
    if len(calls) <= scen.get("fail_first", 0):
        print("Error: bossac: No device found on " + sys.argv[-1])
        sys.exit(1)
    if scen["reset"]:
        ports([{"device": scen["bootloader"], "pid": %(boot)d, "serial": "%(sn)s"}])  # 1200-baud touch
        time.sleep(0.3)                                                               # bossac writes
        ports([], {"at": time.time() + scen["return_delay"], "ports": scen["returns"]})  # reset
    print("Uploading .pio/build/nano33ble/firmware.bin\\n[SUCCESS]")
''') % {"boot": BOOT_PID, "sn": SN}


class FakeFirmware(threading.Thread):
    """Simulated board firmware on the master side of a pty: answers HELLO and BENCH."""

    def __init__(self, build_hash: str):
        super().__init__(daemon=True)
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.build_hash = build_hash
        self.requests: list[int] = []
        self._halt = threading.Event()

    def hello_text(self) -> bytes:
        return ("protocol=1\nfirmware=0.2.0\nbuild_hash=%s\nmodel_id=m\nbackend=aot\nboard=nano33ble\n"
                "clock_hz=64000000\ntimer_unit=cycles\ntimer_source=dwt-cyccnt\ninput_size=1960\noutput_size=12\n"
                "arena_bytes=0\nram_bytes=0\nmax_payload=2056\naudio_samples=16000\ncompiler=gcc 7.2.1\n"
                "cflags=-O2 -ffunction-sections -fdata-sections\ntiming=irq-masked\n" % self.build_hash).encode()

    def run(self) -> None:
        decoder = P.Decoder()
        while not self._halt.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            for f in decoder.feed(data):
                self.requests.append(f.type)
                if f.type == P.HELLO:
                    answer = self.hello_text()
                elif f.type == P.BENCH:
                    n, w = struct.unpack("<II", f.payload)
                    answer = struct.pack("<IIQQQ", n, w, 1000 * n, 1000, 1000)  # protocol stand-in, not a timing
                else:
                    continue
                os.write(self.master, P.encode(f.type | P.RESPONSE, f.request_id, answer))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def rig(tmp_path, monkeypatch):
    """Fake pio + fake USB listing + two simulated boards: the old firmware on one pty (the port the
    user named), the new one on another (the name the board comes back under)."""
    from serial.tools import list_ports, list_ports_common

    monkeypatch.setenv("KWS_CACHE_DIR", str(tmp_path / "cache"))  # the port claims
    monkeypatch.setenv("FAKE_PIO_DIR", str(tmp_path))
    pio = tmp_path / "pio"
    pio.write_text(FAKE_PIO)
    monkeypatch.setattr(firmware, "pio_command", lambda: [sys.executable, str(pio)])
    monkeypatch.setattr(serial_link, "PORT_RETURN_TIMEOUT_S", 5.0)
    monkeypatch.setattr(serial_link, "RETRY_PAUSE_S", 0.1)

    elf = tmp_path / "build" / "pio" / "nano33ble" / "firmware.elf"
    elf.parent.mkdir(parents=True)
    elf.write_bytes(b"\x7fELF")
    build = firmware.Build(elf=elf, env="nano33ble", backend="aot", build_hash="new0build0hash01", model_id="m",
                           sizes=firmware.Sizes(0, 0, 0, 0))
    old, new = FakeFirmware("old0build0hash00"), FakeFirmware(build.build_hash)
    old.start()
    new.start()

    def comports():
        state = json.loads((tmp_path / "ports.json").read_text())
        listed = state["now"]
        if state["later"] and time.time() >= state["later"]["at"]:
            listed = state["later"]["ports"]
        out = []
        for p in listed:
            info = list_ports_common.ListPortInfo(p["device"], skip_link_detection=True)
            info.vid, info.pid, info.serial_number = 0x2341, p["pid"], p["serial"]
            out.append(info)
        return out

    monkeypatch.setattr(list_ports, "comports", comports)

    class Rig:
        def scenario(self, **kw):
            scen = {"reset": True, "bootloader": old.path, "return_delay": 0.3,
                    "returns": [{"device": new.path, "pid": APP_PID, "serial": SN}]}
            scen.update(kw)
            (tmp_path / "scenario.json").write_text(json.dumps(scen))
            (tmp_path / "ports.json").write_text(json.dumps(
                {"now": [{"device": old.path, "pid": APP_PID, "serial": SN}], "later": None}))

        def calls(self) -> list[list[str]]:
            path = tmp_path / "calls.json"
            return json.loads(path.read_text()) if path.exists() else []

    r = Rig()
    r.build, r.old, r.new = build, old, new
    r.spec = boards.BoardSpec("serial", old.path, SN, "Arduino Nano 33 BLE (application)")
    yield r
    old.stop()
    new.stop()


def test_flash_port_returns_renamed_hello_checks_the_hash_then_measures(rig):
    rig.scenario()
    with boards.session(rig.spec, rig.build, timeout=2.0) as board:
        assert board.url == rig.new.path != rig.old.path  # found again by USB serial number
        assert board.info.build_hash == rig.build.build_hash
        assert (board.info.timing, board.info.cflags) == ("irq-masked", "-O2 -ffunction-sections -fdata-sections")
        result = board.bench(5, 1)
        assert (result.n, result.warmup) == (5, 1)
    calls = rig.calls()
    assert len(calls) == 1
    args = calls[0]
    assert args[:3] == ["run", "-e", "nano33ble"]
    assert "nobuild" in args and "upload" in args  # the cached image, never a rebuild
    assert args[args.index("--upload-port") + 1] == rig.old.path
    assert rig.old.requests == []  # nothing was asked of the old firmware
    assert rig.new.requests[0] == P.HELLO and P.BENCH in rig.new.requests


def test_failed_upload_is_retried_once(rig):
    rig.scenario(fail_first=1)
    with boards.session(rig.spec, rig.build, timeout=2.0) as board:
        assert board.info.build_hash == rig.build.build_hash
    assert len(rig.calls()) == 2


def test_retry_goes_to_the_bootloader_port_a_failed_upload_left_behind(rig, tmp_path):
    boot = str(tmp_path / "ttyACM9")  # the bootloader's port (only its name is used: simulated)
    rig.scenario(stuck_in_bootloader=boot)
    with boards.session(rig.spec, rig.build, timeout=2.0) as board:
        assert board.url == rig.new.path
    calls = rig.calls()
    assert [c[c.index("--upload-port") + 1] for c in calls] == [rig.old.path, boot]


def test_upload_failing_twice_is_one_line(rig):
    rig.scenario(fail_first=2)
    with pytest.raises(HarnessError) as err:
        with boards.session(rig.spec, rig.build, timeout=2.0):
            pass
    msg = str(err.value)
    assert "\n" not in msg and "No device found" in msg and "tried 2 times" in msg
    assert len(rig.calls()) == 2


def test_upload_that_never_resets_the_board_is_retried_then_refused(rig):
    rig.scenario(reset=False)  # pio says SUCCESS but the application's port never went away
    with pytest.raises(HarnessError, match="did not reset the board") as err:
        with boards.session(rig.spec, rig.build, timeout=2.0):
            pass
    assert "\n" not in str(err.value)
    assert len(rig.calls()) == 2
    assert rig.old.requests == [] and rig.new.requests == []


def test_board_that_never_comes_back_fails_in_one_line_within_its_timeout(rig, monkeypatch):
    monkeypatch.setattr(serial_link, "PORT_RETURN_TIMEOUT_S", 1.0)
    rig.scenario(returns=[])
    with pytest.raises(HarnessError) as err:
        with boards.session(rig.spec, rig.build, timeout=2.0):
            pass
    msg = str(err.value)
    assert "\n" not in msg and f"board {SN} did not come back within 1 s after flashing" in msg
    assert len(rig.calls()) == 1  # nothing to upload to: no second attempt


def test_board_running_another_build_after_flashing_is_refused(rig):
    rig.scenario(returns=[{"device": rig.old.path, "pid": APP_PID, "serial": SN}])  # still the old firmware
    with pytest.raises(HarnessError, match=r"runs build old0build0hash00, expected new0build0hash01") as err:
        with boards.session(rig.spec, rig.build, timeout=2.0):
            pass
    assert "\n" not in str(err.value)
    assert rig.old.requests == [P.HELLO]  # greeted, never measured


def test_port_held_by_another_harness_process_is_reported_not_shared(rig, tmp_path):
    rig.scenario()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from harness.device import boards
            with boards.claim(boards.BoardSpec("serial", {rig.old.path!r}, {SN!r})):
                print("held", flush=True)
                sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ),
        cwd=Path(__file__).resolve().parents[1])
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(HarnessError) as err:
            with boards.session(rig.spec, rig.build, timeout=2.0):
                pass
        msg = str(err.value)
        assert f"already in use by another harness process (pid {holder.pid})" in msg and "\n" not in msg
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    assert rig.calls() == []  # never flashed a board another process holds
