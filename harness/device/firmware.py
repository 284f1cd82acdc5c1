"""Firmware builds: one PlatformIO build per (model, environment, backend), cached by content hash.

Why a cache key of everything: the ELF depends on the .tflite bytes, the model id, every file of
the firmware project (core, board layers, runtime, front end, dev-platform), the code generator
and the environment/backend; a rerun that changed none of them returns the cached Build at once.
The generated model sources go to the build's own cache folder (KWS_MODEL_DIR), never into
firmware/src/, and each build has its own PLATFORMIO_BUILD_DIR, so two variants build in parallel.
Sizes come from the ELF (MLonMCU style: text / rodata / data / bss, flash = text+rodata+data,
RAM = data+bss), the model's own bytes from the linker map, and PlatformIO's RAM/Flash lines.
"""

from __future__ import annotations

import configparser
import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.cache import artifact_dir, atomic_write_json, content_hash, file_hash
from harness.errors import HarnessError
from harness.paths import FIRMWARE_DIR, REPO_ROOT, cache_dir

ENVS = ("emu_m4", "native", "nano33ble")
BACKENDS = ("aot", "ref", "tflm")  # ref: TFLM-reference-style kernels from the same codegen
OFFLINE_ENVS = ("emu_m4", "native")
BOARD_BUDGETS = {  # bytes: the Nano 33 BLE's nRF52840; the emulated board is held to the same
    "emu_m4": {"flash": 1024 * 1024, "ram": 256 * 1024},
    "nano33ble": {"flash": 1024 * 1024 - 0x10000, "ram": 256 * 1024},  # minus the bootloader
    "native": {},
}
REGISTRY_HOST = ("api.registry.platformio.org", 443)
# PlatformIO env per (board env, backend): lib_deps are installed before any build script runs, so the
# TFLM library has an env of its own and aot builds never fetch it.
PIO_ENVS = {("nano33ble", "tflm"): "nano33ble_tflm"}
BUILD_TIMEOUT_S = 900
_SKIP_PARTS = {".pio", "__pycache__", ".git"}


@dataclass
class Sizes:
    """Bytes by section (from the ELF) and the model's share (from the linker map)."""

    text: int
    rodata: int
    data: int
    bss: int
    stack: int = 0
    model_text: int = 0  # runtime kernels + generated code
    model_rodata: int = 0  # weights, biases, requantization tables
    model_ram: int = 0  # arena and other model data/bss
    frontend_text: int = 0
    frontend_rodata: int = 0
    frontend_ram: int = 0

    @property
    def flash(self) -> int:
        return self.text + self.rodata + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss

    @property
    def model_flash(self) -> int:
        return self.model_text + self.model_rodata

    def to_dict(self) -> dict[str, int]:
        d = asdict(self)
        d.update(flash=self.flash, ram=self.ram, model_flash=self.model_flash)
        return d


@dataclass
class Build:
    """A built firmware: where its ELF is, what went into it, and what it costs."""

    elf: Path
    env: str
    backend: str
    build_hash: str
    model_id: str
    sizes: Sizes
    variant: str | None = None
    tflite: Path | None = None
    pio_ram: tuple[int, int] | None = None  # (used, budget) from PlatformIO's "RAM:" line
    pio_flash: tuple[int, int] | None = None
    build_seconds: float = 0.0
    cached: bool = False
    generated: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "elf": str(self.elf), "env": self.env, "backend": self.backend, "build_hash": self.build_hash,
            "model_id": self.model_id, "variant": self.variant, "tflite": str(self.tflite) if self.tflite else None,
            "sizes": self.sizes.to_dict(), "budgets": BOARD_BUDGETS.get(self.env, {}),
            "pio_ram": list(self.pio_ram) if self.pio_ram else None,
            "pio_flash": list(self.pio_flash) if self.pio_flash else None,
            "build_seconds": round(self.build_seconds, 3), "cached": self.cached, "generated": self.generated,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Build":
        sizes = {k: v for k, v in d["sizes"].items() if k not in ("flash", "ram", "model_flash")}
        return cls(elf=Path(d["elf"]), env=d["env"], backend=d["backend"], build_hash=d["build_hash"],
                   model_id=d["model_id"], sizes=Sizes(**sizes), variant=d.get("variant"),
                   tflite=Path(d["tflite"]) if d.get("tflite") else None,
                   pio_ram=tuple(d["pio_ram"]) if d.get("pio_ram") else None,
                   pio_flash=tuple(d["pio_flash"]) if d.get("pio_flash") else None,
                   build_seconds=d.get("build_seconds", 0.0), generated=d.get("generated", {}))


# ----------------------------------------------------------------------------- environment


def pio_env() -> dict[str, str]:
    """Process environment for PlatformIO: per-checkout core dir, no upgrade check, no telemetry."""
    env = dict(os.environ)
    env["PLATFORMIO_CORE_DIR"] = str(REPO_ROOT / ".cache" / "platformio")
    env["PLATFORMIO_DISABLE_UPGRADE_CHECK"] = "true"
    env["PLATFORMIO_SETTING_ENABLE_TELEMETRY"] = "No"
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    return env


def pio_command() -> list[str]:
    exe = Path(sys.executable).parent / "pio"
    if exe.exists():
        return [str(exe)]
    if shutil.which("pio"):
        return ["pio"]
    return [sys.executable, "-m", "platformio"]


def firmware_fingerprint() -> str:
    """Hash of every file of the firmware project (and of the code generator)."""
    files = sorted(p for p in FIRMWARE_DIR.rglob("*")
                   if p.is_file() and not (_SKIP_PARTS & set(p.relative_to(FIRMWARE_DIR).parts)))
    h = [str(p.relative_to(FIRMWARE_DIR)) + ":" + file_hash(p) for p in files]
    here = Path(__file__).resolve().parent
    gen = [here / "codegen.py", here.parent / "tflite_info.py", here / "firmware.py"]
    return content_hash(h, *[p for p in gen if p.exists()])


def pio_env_name(env: str, backend: str) -> str:
    """The platformio.ini environment that builds ``env`` with ``backend``."""
    return PIO_ENVS.get((env, backend), env)


def lib_dep_hosts(pio_env_name_: str) -> list[tuple[str, int]]:
    """(host, 443) of every URL in the env's lib_deps (platformio.ini, read offline)."""
    cp = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    cp.read(FIRMWARE_DIR / "platformio.ini")
    raw = cp.get(f"env:{pio_env_name_}", "lib_deps", fallback="")
    hosts = []
    for item in raw.split():
        url = item.partition("=")[2] if "=" in item and "://" in item.partition("=")[2] else item
        host = urlparse(url).hostname
        if "://" in url and host and (host, 443) not in hosts:
            hosts.append((host, 443))
    return hosts


def required_hosts(env: str, backend: str) -> list[tuple[tuple[str, int], str]]:
    """The network hosts a first build of (env, backend) needs, each with what it provides."""
    if env in OFFLINE_ENVS:
        return []
    hosts = [(REGISTRY_HOST, "platform nordicnrf52, the Arduino mbed core and the toolchain")]
    hosts += [(h, "the TFLM library (lib_deps)") for h in lib_dep_hosts(pio_env_name(env, backend))]
    return hosts


def host_reachable(host: tuple[str, int], timeout: float = 3.0) -> bool:
    """Whether ``host`` answers a TCP connect (PlatformIO itself waits ~61 s for an unreachable one)."""
    try:
        with socket.create_connection(host, timeout=timeout):
            return True
    except OSError:
        return False


def registry_reachable(timeout: float = 3.0) -> bool:
    """Whether the PlatformIO registry answers a TCP connect."""
    return host_reachable(REGISTRY_HOST, timeout)


def first_unreachable(env: str, backend: str) -> tuple[tuple[str, int], str] | None:
    """The first host the build of (env, backend) needs that does not answer, with what it provides."""
    for host, what in required_hosts(env, backend):
        if not host_reachable(host):
            return host, what
    return None


def _unreachable_message(where: str, env: str, backend: str, host: tuple[str, int], what: str) -> str:
    who = (f"the PlatformIO registry is unreachable ({host[0]}:{host[1]})" if host == REGISTRY_HOST
           else f"{host[0]}:{host[1]} is unreachable")
    return (f"build {where}: {who}; env {pio_env_name(env, backend)} needs {what} "
            f"from it on its first build")


def _nano_packages_installed(backend: str = "aot") -> bool:
    core = REPO_ROOT / ".cache" / "platformio"
    ok = (core / "platforms" / "nordicnrf52").is_dir() and any((core / "packages").glob("framework-arduino-mbed*"))
    if backend == "tflm":
        ok = ok and any((FIRMWARE_DIR / ".pio" / "libdeps" / pio_env_name("nano33ble", "tflm")).glob("*/library.*"))
    return ok


# ----------------------------------------------------------------------------- model sources


def _check_tflite(tflite: str | Path | None) -> Path | None:
    """The model file to build, resolved; None only for builds from ``extra_src_dirs`` alone."""
    if tflite is None:
        return None
    path = Path(tflite)
    if not path.is_file():
        raise HarnessError(f"build: model file {path} does not exist")
    return path.resolve()


def _write_tflm_model(tflite: Path, out: Path, model_id: str) -> dict[str, Any]:
    """Model sources for the tflm backend: the flatbuffer as a C array plus the kws_model.h data."""
    from harness.device import reference
    from harness import tflite_info

    model = tflite_info.read(tflite)
    n_in = 1
    for d in model.tensors[model.inputs[0]].shape:
        n_in *= int(d)
    n_out = 1
    for d in model.tensors[model.outputs[0]].shape:
        n_out *= int(d)
    arena = reference.arena_bytes(tflite) + 2048  # TFLM's own bookkeeping on the device differs slightly
    data = tflite.read_bytes()
    out.mkdir(parents=True, exist_ok=True)
    t_in, t_out = model.tensors[model.inputs[0]], model.tensors[model.outputs[0]]
    (out / "kws_model_data.h").write_text(
        "/* Generated by harness/device/firmware.py for the tflm backend (same macros as codegen's header). */\n"
        "#pragma once\n"
        f"#define KWS_MODEL_ID {json.dumps(model_id)}\n#define KWS_MODEL_INPUT_SIZE {n_in}\n"
        f"#define KWS_MODEL_OUTPUT_SIZE {n_out}\n#define KWS_TFLM_ARENA_BYTES {arena}\n"
        f"#define KWS_MODEL_ARENA_BYTES {arena}\n#define KWS_MODEL_WEIGHT_BYTES {len(data)}\n"
        f"#define KWS_MODEL_INPUT_SCALE {float(t_in.scales[0]) if t_in.scales else 1.0!r}f\n"
        f"#define KWS_MODEL_INPUT_ZERO_POINT ({int(t_in.zero_points[0]) if t_in.zero_points else 0})\n"
        f"#define KWS_MODEL_OUTPUT_SCALE {float(t_out.scales[0]) if t_out.scales else 1.0!r}f\n"
        f"#define KWS_MODEL_OUTPUT_ZERO_POINT ({int(t_out.zero_points[0]) if t_out.zero_points else 0})\n")
    rows = ",\n".join(", ".join(str(b) for b in data[i : i + 24]) for i in range(0, len(data), 24))
    (out / "kws_model_tflite.c").write_text(
        '/* Generated by harness/device/firmware.py: the .tflite flatbuffer for TFLM. */\n#include "kws_model.h"\n'
        f"const char kws_model_id[] = KWS_MODEL_ID;\nconst uint32_t kws_model_input_size = {n_in};\n"
        f"const uint32_t kws_model_output_size = {n_out};\nconst uint32_t kws_model_arena_bytes = {arena};\n"
        f"const uint32_t kws_model_weight_bytes = {len(data)};\nconst uint32_t kws_model_macs = 0;\n"
        f"const unsigned int kws_model_tflite_len = {len(data)};\n"
        f"__attribute__((aligned(16))) const unsigned char kws_model_tflite[] = {{\n{rows}\n}};\n")
    return {"backend": "tflm", "arena_bytes": arena, "tflite_bytes": len(data)}


# ----------------------------------------------------------------------------- sizes


_SECTION_KIND = (
    (".isr_vector", "text"), (".text", "text"), (".init", "text"), (".fini", "text"), (".ARM", "text"),
    (".rodata", "rodata"), (".data", "data"), (".bss", "bss"), (".stack", "stack"), (".noinit", "bss"),
)


def elf_sizes(elf: Path) -> Sizes:
    """text / rodata / data / bss / stack bytes of the allocated sections of an ELF (pyelftools)."""
    from elftools.elf.elffile import ELFFile

    totals = {"text": 0, "rodata": 0, "data": 0, "bss": 0, "stack": 0}
    with open(elf, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            if not sec["sh_flags"] & 0x2 or not sec["sh_size"]:  # SHF_ALLOC
                continue
            for prefix, kind in _SECTION_KIND:
                if sec.name.startswith(prefix):
                    totals[kind] += sec["sh_size"]
                    break
            else:  # other allocated sections (host ELFs: .plt, .got, .eh_frame, ...): code or constants
                totals["rodata" if not sec["sh_flags"] & 0x4 else "text"] += sec["sh_size"]
    return Sizes(**totals)


_MAP_LINE = re.compile(r"^\s(\.[\w.$]+|COMMON)?\s*0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S+\.o)\s*$")


def map_shares(map_path: Path) -> dict[str, dict[str, int]]:
    """Bytes per kind contributed by the model (generated code + runtime) and the front end."""
    shares = {"model": {"text": 0, "rodata": 0, "ram": 0}, "frontend": {"text": 0, "rodata": 0, "ram": 0}}
    try:
        text = map_path.read_text(errors="replace")
    except OSError:
        return shares
    _, _, body = text.partition("Linker script and memory map")
    pending = None
    for line in body.splitlines():
        m = _MAP_LINE.match(line)
        if not m:
            stripped = line.strip()
            pending = stripped if line.startswith(" .") and " " not in stripped else None
            continue
        name = m.group(1) or pending or ""
        pending = None
        addr, size, obj = int(m.group(2), 16), int(m.group(3), 16), m.group(4)
        if not size or (addr == 0 and not name.startswith((".text", ".isr"))):
            continue
        owner = ("model" if ("/kws_model/" in obj or "/kws_runtime/" in obj) else
                 "frontend" if "/kws_frontend/" in obj else None)
        if owner is None:
            continue
        kind = ("text" if name.startswith(".text") else "rodata" if name.startswith(".rodata") else
                "ram" if name.startswith((".data", ".bss", "COMMON")) else None)
        if kind:
            shares[owner][kind] += size
    return shares


_PIO_USAGE = re.compile(r"^(RAM|Flash):.*used (\d+) bytes from (\d+) bytes")


def _parse_pio_usage(output: str) -> dict[str, tuple[int, int]]:
    usage = {}
    for line in output.splitlines():
        m = _PIO_USAGE.match(line.strip())
        if m:
            usage[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return usage


def check_budget(sizes: Sizes, env: str, where: str) -> None:
    """HarnessError naming the budget when the firmware does not fit the board."""
    budget = BOARD_BUDGETS.get(env, {})
    if "flash" in budget and sizes.flash > budget["flash"]:
        raise HarnessError(f"build {where}: flash {sizes.flash} bytes exceeds the {env} budget of {budget['flash']} bytes")
    if "ram" in budget and sizes.ram + sizes.stack > budget["ram"]:
        raise HarnessError(f"build {where}: RAM {sizes.ram + sizes.stack} bytes (data+bss+stack) exceeds the "
                           f"{env} budget of {budget['ram']} bytes")


# ----------------------------------------------------------------------------- running PlatformIO


def _explain_failure(output: str, env: str, where: str, backend: str = "aot") -> str:
    budget = BOARD_BUDGETS.get(env, {})
    m = re.search(r"region [`']?(FLASH|RAM)'? overflowed by (\d+) bytes", output)
    if m:
        kind = m.group(1).lower()
        return (f"build {where}: does not fit the {env} {kind} budget of {budget.get(kind, '?')} bytes "
                f"(over by {m.group(2)} bytes)")
    m = re.search(r"The (program|data) size \((\d+) bytes\) is greater than maximum allowed \((\d+) bytes\)", output)
    if m:
        kind = "flash" if m.group(1) == "program" else "RAM"
        return f"build {where}: {kind} {m.group(2)} bytes exceeds the {env} budget of {m.group(3)} bytes"
    m = re.search(r"Could not resolve host:? '?([\w.-]+)", output)
    if m:
        return (f"build {where}: {m.group(1)} is unreachable (env {pio_env_name(env, backend)} needs "
                f"{'the TFLM library' if backend == 'tflm' else 'packages'} from it)")
    if "HTTPClientError" in output or "MissingPackageManifest" in output:
        return (f"build {where}: the PlatformIO registry is unreachable ({REGISTRY_HOST[0]}; env "
                f"{pio_env_name(env, backend)} needs packages from it)")
    for line in output.splitlines():
        if re.search(r"\berror\b|Error:", line) and "Error 1" not in line:
            return f"build {where}: {line.strip()[:300]}"
    tail = output.strip().splitlines()[-1:] or ["(no output)"]
    return f"build {where}: PlatformIO failed ({tail[0].strip()[:200]})"


def _run_pio(args: list[str], penv: dict[str, str], where: str, env: str, backend: str = "aot") -> str:
    """Run PlatformIO; end it early when it starts waiting on a host that does not answer."""
    proc = subprocess.Popen(pio_command() + args, cwd=FIRMWARE_DIR, env=penv, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    lines: list[str] = []
    down: list[tuple[tuple[str, int], str]] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            # A fresh core dir first "installs" the local symlink:// dev-platform and tool-scons:
            # those need no registry; anything else does.
            if (re.search(r"(Platform|Tool|Library|Package) Manager: Installing", line)
                    and not re.search(r"(symlink|file)://", line) and not down):
                missing = first_unreachable(env, backend)
                if missing:
                    down.append(missing)
                    proc.kill()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise HarnessError(f"build {where}: PlatformIO did not finish within {BUILD_TIMEOUT_S} s") from None
    finally:
        reader.join(timeout=5)
    output = "".join(lines)
    if down:
        raise HarnessError(_unreachable_message(where, env, backend, *down[0]))
    if proc.returncode != 0:
        raise HarnessError(_explain_failure(output, env, where, backend))
    return output


def build(tflite: str | Path | None, env: str = "emu_m4", backend: str = "aot", model_id: str | None = None, *,
          variant: str | None = None, extra_src_dirs: tuple[Path | str, ...] = (), defines: tuple[str, ...] = (),
          force: bool = False) -> Build:
    """Build the firmware for a .tflite file (cached by content hash).

    The device layer knows models only as .tflite files; ``variant`` is a label carried into the
    Build (harness.bench.pipeline.build turns a variant id into its .tflite first).

    ``extra_src_dirs`` adds source folders (tests use a stand-in model there with target None);
    ``defines`` adds preprocessor symbols (e.g. ``KWS_EMU_LINK_UART``: the emulated board on UART0).
    """
    if env not in ENVS:
        raise HarnessError(f"build: unknown environment {env!r} (choose from {', '.join(ENVS)})")
    if backend not in BACKENDS:
        raise HarnessError(f"build: unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend == "tflm" and env != "nano33ble":
        raise HarnessError(f"build: backend tflm needs the TFLM library (GitHub), only for env nano33ble, not {env}")
    tflite = _check_tflite(tflite)
    extra = tuple(Path(d).resolve() for d in extra_src_dirs)
    for d in extra:
        if not d.is_dir():
            raise HarnessError(f"build: source folder {d} does not exist")
    if tflite is None and not extra:
        raise HarnessError("build: give a .tflite file (or a variant id to harness.bench.pipeline.build)")
    model_id = model_id or variant or (tflite.stem if tflite else "standin")
    where = variant or (str(tflite) if tflite else model_id)

    for d in defines:
        if not re.fullmatch(r"[A-Za-z_]\w*(=\w+)?", d):
            raise HarnessError(f"build: bad preprocessor define {d!r}")
    key = content_hash(file_hash(tflite) if tflite else None, model_id, env, backend, firmware_fingerprint(),
                       [(d.name, content_hash(*sorted(p for p in d.rglob("*") if p.is_file()))) for d in extra],
                       sorted(defines))
    out = artifact_dir("firmware", key)
    with open(out / ".lock", "w") as lock:  # the same build from two processes: one builds, one waits
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(out, key, tflite, variant, model_id, env, backend, extra, defines, force, where)


def _build_locked(out: Path, key: str, tflite: Path | None, variant: str | None, model_id: str, env: str,
                  backend: str, extra: tuple[Path, ...], defines: tuple[str, ...], force: bool, where: str) -> Build:
    meta_path = out / "build.json"
    if meta_path.is_file() and not force:
        built = Build.from_dict(json.loads(meta_path.read_text()))
        if built.elf.is_file():
            built.cached = True
            return built

    if env == "nano33ble" and not _nano_packages_installed(backend):
        missing = first_unreachable(env, backend)
        if missing:
            raise HarnessError(_unreachable_message(where, env, backend, *missing))

    started = time.monotonic()
    generated: dict[str, Any] = {}
    model_dir = out / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    if tflite is not None:
        if backend in ("aot", "ref"):
            from harness.device import codegen

            generated = codegen.generate(tflite, model_dir, model_id, backend).summary()
        else:
            generated = _write_tflm_model(tflite, model_dir, model_id)
    penv = pio_env()
    penv.update(KWS_BUILD_HASH=key, KWS_BACKEND=backend, PLATFORMIO_BUILD_DIR=str(out / "pio"),
                KWS_EXTRA_SRC_DIRS=os.pathsep.join(map(str, extra)),
                PLATFORMIO_BUILD_FLAGS=" ".join(f"-D{d}" for d in sorted(defines)))
    penv.pop("KWS_MODEL_DIR", None)
    if tflite is not None:
        penv["KWS_MODEL_DIR"] = str(model_dir)
    output = _run_pio(["run", "-e", pio_env_name(env, backend)], penv, where, env, backend)
    (out / "pio.log").write_text(output)

    env_dir = out / "pio" / pio_env_name(env, backend)
    elf = env_dir / ("firmware.elf" if env != "native" else "firmware")
    if not elf.is_file():
        raise HarnessError(f"build {where}: PlatformIO succeeded but {elf} is missing")
    sizes = elf_sizes(elf)
    shares = map_shares(env_dir / "firmware.map")
    sizes.model_text, sizes.model_rodata, sizes.model_ram = (shares["model"][k] for k in ("text", "rodata", "ram"))
    sizes.frontend_text, sizes.frontend_rodata, sizes.frontend_ram = (
        shares["frontend"][k] for k in ("text", "rodata", "ram"))
    check_budget(sizes, env, where)
    usage = _parse_pio_usage(output)
    built = Build(elf=elf, env=env, backend=backend, build_hash=key, model_id=model_id, sizes=sizes,
                  variant=variant, tflite=tflite, pio_ram=usage.get("RAM"), pio_flash=usage.get("Flash"),
                  build_seconds=time.monotonic() - started, generated=generated)
    atomic_write_json(meta_path, built.to_dict())
    return built


def upload(built: Build, port: str) -> str:
    """Flash a nano33ble build once (``pio run -t nobuild -t upload``: the cached ELF's image, never a
    rebuild); returns PlatformIO's output. harness.device.boards.serial.flash retries and waits."""
    if built.env != "nano33ble":
        raise HarnessError(f"upload: only nano33ble builds go to a real board, not {built.env}")
    env_dir = built.elf.parent
    if not built.elf.is_file():
        raise HarnessError(f"upload: {built.elf} is missing (rebuild with --force)")
    penv = pio_env()
    penv.update(KWS_BUILD_HASH=built.build_hash, KWS_BACKEND=built.backend, PLATFORMIO_BUILD_DIR=str(env_dir.parent))
    model_dir = env_dir.parent.parent / "model"
    if model_dir.is_dir():
        penv["KWS_MODEL_DIR"] = str(model_dir)
    return _run_pio(["run", "-e", pio_env_name(built.env, built.backend), "-t", "nobuild", "-t", "upload",
                     "--upload-port", port], penv, f"upload to {port}", built.env, built.backend)


def cache_root() -> Path:
    return cache_dir() / "firmware"
