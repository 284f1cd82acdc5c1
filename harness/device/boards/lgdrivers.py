"""Our labgrid resources and drivers, registered the labgrid way (``target_factory``).

Importing this module registers them, so a labgrid environment YAML can name them after
``imports: [harness.device.boards.lgdrivers]`` (or ``python -c`` style plugin loading) and a
``RemotePlace`` whose exporter publishes them expands into them. Imported only by the labgrid
board kind (labgrid, grpc and attrs are heavy).

Resources (published by an exporter as plain entries; the exporter needs no code of ours):
    KwsBoardInfo      what the board in a group is: ``board`` (nano33ble | emu), ``serial`` (USB
                      serial number, or emulator id); the source of the "where measured" columns.
    KwsEmulatedBoard  the flash port of ``python -m harness.device.emuboard`` on the lab host.

Drivers (all ``BootstrapProtocol``: ``load(image)`` puts a program on the board):
    KwsLinkDriver       the pyserial URL of the place's serial port (raw TCP or RFC 2217) for link.Board.
    KwsEmuFlashDriver   flashes an ELF into the emulated board (QEMU restarted on it).
    KwsNanoFlashDriver  flashes a Nano 33 BLE: the PlatformIO upload when the port is on this host,
                        else bossac on the exporter host over labgrid's SSH (ManagedFile + command_prefix).
"""

from __future__ import annotations

import hashlib
import shlex
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.protocol import BootstrapProtocol
from labgrid.resource.common import NetworkResource, Resource

from harness.errors import HarnessError

FLASH_TIMEOUT_S = 60.0


@target_factory.reg_resource
@attr.s(eq=False)
class KwsBoardInfo(Resource):
    """Static facts about the board of an exporter group (published as given in the exporter YAML)."""

    board = attr.ib(default="nano33ble", validator=attr.validators.instance_of(str))
    serial = attr.ib(default="", validator=attr.validators.instance_of(str))


@target_factory.reg_resource
@attr.s(eq=False)
class KwsEmulatedBoard(NetworkResource):
    """The flash port of an emulated lab board (harness.device.emuboard) on ``host``."""

    port = attr.ib(default=0, validator=attr.validators.instance_of(int))
    board_id = attr.ib(default="", validator=attr.validators.instance_of(str))


@target_factory.reg_driver
@attr.s(eq=False)
class KwsLinkDriver(Driver):
    """The URL link.Board opens for the place's serial port; the port itself is opened by the harness."""

    bindings = {"port": {"NetworkSerialPort", "SerialPort"}}

    def url(self) -> str:
        port = self.port
        if not hasattr(port, "host"):  # a local serial port of the client host
            return str(port.port)
        from labgrid.util.proxy import proxymanager

        host, tcp = proxymanager.get_host_and_port(port)
        if port.protocol == "raw":
            return f"socket://{host}:{tcp}"
        if port.protocol == "rfc2217":
            return f"rfc2217://{host}:{tcp}?ign_set_control"
        raise HarnessError(f"labgrid place {self.target.name}: serial protocol {port.protocol!r} is not raw or rfc2217")


@target_factory.reg_driver
@attr.s(eq=False)
class KwsEmuFlashDriver(Driver, BootstrapProtocol):
    """Flashes an ELF into an emulated lab board; ``emulator_id`` names the QEMU now running it."""

    bindings = {"board": "KwsEmulatedBoard"}
    emulator_id = attr.ib(default="", init=False)

    @Driver.check_active
    def load(self, filename: str) -> str:
        data = Path(filename).read_bytes()
        where = f"labgrid place {self.target.name}: emulated board {self.board.board_id or '?'} at {self.board.host}:{self.board.port}"
        try:
            with socket.create_connection((self.board.host, self.board.port), timeout=FLASH_TIMEOUT_S) as s:
                s.sendall(f"FLASH {len(data)} {hashlib.sha256(data).hexdigest()}\n".encode() + data)
                answer = s.makefile("rb").readline(512).decode(errors="replace").strip()
        except OSError as exc:
            raise HarnessError(f"{where}: cannot flash ({exc.strerror or exc})") from None
        if not answer.startswith("OK "):
            raise HarnessError(f"{where}: flash failed: {answer[4:] if answer else 'no answer'}")
        self.emulator_id = answer[3:]
        return self.emulator_id


@target_factory.reg_driver
@attr.s(eq=False)
class KwsNanoFlashDriver(Driver, BootstrapProtocol):
    """Flashes a Nano 33 BLE (Sense) through the place's serial port.

    On the host that runs the harness (a ``USBSerialPort``/``RawSerialPort``, or an exported port whose
    exporter runs here) it is the PlatformIO upload the harness uses for ``--device=/dev/ttyACM0``.
    Elsewhere the image goes to the exporter host with labgrid's ManagedFile and ``bossac`` runs there
    (``command``; PlatformIO's tool-bossac or Arduino's bossac on PATH), after the 1200 bit/s touch
    that starts the bootloader.
    """

    bindings = {"port": {"NetworkSerialPort", "SerialPort"}}
    command = attr.ib(default="stty -F {path} 1200; sleep 2; bossac --port={name} -U -i -e -w {image} -R",
                      validator=attr.validators.instance_of(str))

    def _local_path(self) -> str | None:
        port = self.port
        if not hasattr(port, "host"):
            return str(port.port)
        if port.host in ("localhost", "127.0.0.1", socket.gethostname(), socket.getfqdn()):
            return (getattr(port, "extra", None) or {}).get("path")
        return None

    @Driver.check_active
    def flash(self, build: Any) -> None:
        """Put a firmware.Build (env nano33ble) on the board."""
        local = self._local_path()
        if local is not None:
            from harness.device import firmware

            firmware.upload(build, local)
            return
        image = Path(build.elf).with_suffix(".bin")
        self.load(str(image))

    @Driver.check_active
    def load(self, filename: str) -> None:
        from labgrid.util.managedfile import ManagedFile

        path = (getattr(self.port, "extra", None) or {}).get("path")
        if not path:
            raise HarnessError(f"labgrid place {self.target.name}: the exporter did not publish the port's device path")
        mf = ManagedFile(filename, self.port)
        mf.sync_to_resource()
        cmd = self.command.format(path=shlex.quote(path), name=shlex.quote(Path(path).name),
                                  image=shlex.quote(mf.get_remote_path()))
        try:
            subprocess.run(self.port.command_prefix + ["sh", "-c", cmd], check=True, capture_output=True,
                           timeout=120)
        except subprocess.CalledProcessError as exc:
            last = (exc.stderr or exc.stdout or b"").decode(errors="replace").strip().splitlines()
            raise HarnessError(f"labgrid place {self.target.name}: upload on {self.port.host} failed: "
                               f"{last[-1] if last else exc.returncode}") from None
        except subprocess.TimeoutExpired:
            raise HarnessError(f"labgrid place {self.target.name}: upload on {self.port.host} took over 120 s") from None
        time.sleep(1.0)  # the board re-enumerates; the exporter restarts ser2net when the port returns
