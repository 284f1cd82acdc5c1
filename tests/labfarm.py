"""A real labgrid farm on 127.0.0.1 for tests: one labgrid-coordinator, one exporter per emulated
board (each board a ``python -m harness.device.emuboard`` process), places created with labgrid-client.

Everything runs in its own process group on free ports and is torn down by ``LabFarm.close``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from harness.device.emulator import die_with_parent  # noqa: E402 - PR_SET_PDEATHSIG in the child
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabFarm:
    root: Path
    coordinator: str = ""
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    boards: dict[str, tuple[int, int]] = field(default_factory=dict)  # place -> (serial port, flash port)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LG_")}
        env.update(LG_COORDINATOR=self.coordinator, PYTHONUNBUFFERED="1")
        env.update(extra)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
        return env

    def _spawn(self, name: str, cmd: list[str], **env: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "wb")
        proc = subprocess.Popen(die_with_parent(cmd), cwd=self.root, env=self.env(**env), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,  # a test process killed hard leaves no farm behind
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def _wait_for(self, name: str, pattern: str) -> re.Match:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log(name))
            if m:
                return m
            if self.procs[name].poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not start:\n{self.log(name)[-2000:]}")

    def start_coordinator(self) -> None:
        port = free_port()
        self.coordinator = f"127.0.0.1:{port}"
        self._spawn("coordinator", [sys.executable, "-m", "labgrid.remote.coordinator", "--listen", self.coordinator])
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if self.procs["coordinator"].poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"coordinator did not start:\n{self.log('coordinator')}")

    def add_emulated_board(self, place: str) -> None:
        """An emulated board, its exporter (named exp-<place>) and a place matching its group."""
        board = self._spawn(f"board-{place}", [sys.executable, "-m", "harness.device.emuboard", "--id", place])
        m = self._wait_for(f"board-{place}", r"KWS_EMUBOARD serial=(\d+) flash=(\d+)")
        self.boards[place] = (int(m.group(1)), int(m.group(2)))
        del board
        cfg = self.root / f"exporter-{place}.yaml"
        cfg.write_text((REPO / "lab" / "exporter-emu.yaml").read_text())
        self._spawn(f"exporter-{place}", [sys.executable, "-m", "labgrid.remote.exporter", "--name", f"exp-{place}",
                                          "--hostname", "127.0.0.1", str(cfg)],
                    KWS_EMU_ID=place, KWS_EMU_SERIAL=str(self.boards[place][0]), KWS_EMU_FLASH=str(self.boards[place][1]))
        self._wait_for(f"exporter-{place}", r"Exporter ready")
        self.client("-p", place, "create")
        self.client("-p", place, "add-match", f"exp-{place}/{place}/*")

    def client(self, *args: str, user: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        extra = {"LG_USERNAME": user} if user else {}
        r = subprocess.run([sys.executable, "-m", "labgrid.remote.client", "-x", self.coordinator, *args], cwd=self.root,
                           env=self.env(**extra), capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"labgrid-client {' '.join(args)}: {r.stdout}{r.stderr}")
        return r

    def acquired_by(self, place: str) -> str | None:
        """Who holds ``place`` (None: nobody), from labgrid-client show."""
        out = self.client("-p", place, "show").stdout
        m = re.search(r"acquired:\s*(\S+)", out)
        return None if not m or m.group(1) == "None" else m.group(1)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def close(self) -> None:
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait(timeout=10)
