"""The Nano 33 BLE build, checked offline (no board, no PlatformIO registry here).

- The board layer compiles for the nRF52840's Cortex-M4 with arm-none-eabi-g++ against
  tests/fixtures/arduino_api_subset/Arduino.h, a declaration check of our file (exactly the Arduino
  and CMSIS names it uses), not a stand-in for the core: what is simulated is the core's headers.
- setup()/loop() live in src/main.c with C linkage; no file under firmware/lib includes a src/ header.
- Our sources get emu_m4's optimisation flags on nano33ble: firmware/extra_script.py runs against a
  stand-in SCons environment that carries the mbed core's -Os (simulated), and its output is compared
  with emu_m4's build flags from ``pio project config`` (the real platformio.ini, read offline).
- The TFLM backend: its env alone fetches the library, DebugLog is wrapped off the link, tensors are
  allocated at start-up.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.device import firmware
from harness.paths import FIRMWARE_DIR

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "arduino_api_subset"
BOARD_CPP = FIRMWARE_DIR / "lib" / "board" / "board_nano33ble.cpp"
M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
BOARD_API = ("board_init", "board_uart_read", "board_uart_write", "board_timer_restart", "board_timer_read",
             "board_timing_method", "board_clock_hz", "board_timer_unit", "board_timer_source", "board_name",
             "board_ram_bytes", "board_exit")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:  # `make setup` installs gcc-arm-none-eabi (APT_PACKAGES)
        pytest.fail(f"{name} is not installed (make setup installs gcc-arm-none-eabi)")
    return path


def _defined_symbols(obj: Path) -> dict[str, str]:
    out = subprocess.run([_tool("arm-none-eabi-nm"), str(obj)], capture_output=True, text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            syms[parts[-1]] = parts[-2]
    return syms


# ----------------------------------------------------------------------------- compile checks


def test_board_layer_compiles_for_the_cortex_m4_against_the_declared_arduino_subset(tmp_path):
    obj = tmp_path / "board_nano33ble.o"
    cmd = [_tool("arm-none-eabi-g++"), *M4, "-std=gnu++17", "-ffreestanding", "-fno-exceptions", "-fno-rtti",
           "-O2", "-Wall", "-Wextra", "-Werror", "-DKWS_BOARD_NANO33BLE", f"-I{FIXTURE}",
           f"-I{FIRMWARE_DIR / 'lib' / 'board'}", "-c", str(BOARD_CPP), "-o", str(obj)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    syms = _defined_symbols(obj)
    # every board.h function, with C linkage (unmangled), as the C core calls them
    missing = [name for name in BOARD_API if syms.get(name) != "T"]
    assert not missing, f"not defined with C linkage: {missing}"
    assert "setup" not in syms and "loop" not in syms  # the Arduino glue lives in src/main.c


def test_arduino_entry_points_are_in_src_with_c_linkage(tmp_path):
    obj = tmp_path / "main.o"
    cmd = [_tool("arm-none-eabi-gcc"), *M4, "-std=gnu11", "-ffreestanding", "-O2", "-Wall", "-Werror",
           "-DKWS_BOARD_NANO33BLE", f"-I{FIRMWARE_DIR / 'src'}", f"-I{FIRMWARE_DIR / 'lib' / 'board'}",
           "-c", str(FIRMWARE_DIR / "src" / "main.c"), "-o", str(obj)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    syms = _defined_symbols(obj)
    assert syms.get("setup") == "T" and syms.get("loop") == "T"  # what the mbed core's main() calls
    assert "main" not in syms  # the core owns main() on the Nano
    assert {syms.get(n) for n in ("board_init", "kws_app_init", "kws_app_step")} == {"U"}


def test_declaration_header_lists_exactly_what_the_board_layer_uses():
    decl = (FIXTURE / "Arduino.h").read_text()
    code = re.sub(r"/\*.*?\*/", "", BOARD_CPP.read_text(), flags=re.S)
    body = re.sub(r"/\*.*?\*/", "", decl, flags=re.S)
    functions = set(re.findall(r"\b(\w+)\s*\([^;{]*\)\s*;", body)) - {"bool"}
    variables = set(re.findall(r"extern\s+[\w:]+\s+(\w+)\s*;", body))
    assert functions >= {"millis", "NVIC_SystemReset", "begin", "available", "read", "write"}
    assert "SystemCoreClock" in variables
    members = {"begin", "available", "read", "write"}
    for name in functions - members:
        assert re.search(rf"\b{name}\s*\(", code), f"{name} is declared but board_nano33ble.cpp does not use it"
    for name in members:
        assert re.search(rf"\bSerial\.{name}\s*\(", code), f"Serial.{name} is declared but unused"
    assert "SystemCoreClock" in code and re.search(r"!\s*Serial\b", code)  # operator bool
    used = set(re.findall(r"\bSerial\.(\w+)\s*\(", code))
    assert used <= members, f"board_nano33ble.cpp uses Serial members the declaration check lacks: {used - members}"


def test_no_lib_file_includes_a_src_header():
    src_headers = {p.name for p in (FIRMWARE_DIR / "src").glob("*.h")}
    lib_headers = {p.name for p in (FIRMWARE_DIR / "lib").rglob("*.h")}
    only_in_src = src_headers - lib_headers
    assert "app.h" in only_in_src
    offenders = []
    for path in sorted((FIRMWARE_DIR / "lib").rglob("*")):
        if path.suffix not in (".c", ".cpp", ".h", ".hpp", ".S"):
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = re.match(r'\s*#\s*include\s*[<"]([^">]+)[">]', line)
            if m and (Path(m.group(1)).name in only_in_src or "src/" in m.group(1)):
                offenders.append(f"{path.relative_to(FIRMWARE_DIR)}:{n}: {line.strip()}")
    assert not offenders, "firmware/lib must not include firmware/src headers:\n" + "\n".join(offenders)


# ----------------------------------------------------------------------------- build flags


def _pio_config() -> dict[str, dict]:
    """platformio.ini as PlatformIO resolves it (interpolation, extends), read offline."""
    r = subprocess.run(firmware.pio_command() + ["project", "config", "--json-output"], cwd=FIRMWARE_DIR,
                       env=firmware.pio_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return {section: dict(options) for section, options in json.loads(r.stdout)}


def _flags(values) -> list[str]:
    values = [values] if isinstance(values, str) else values
    return [f for v in values for f in shlex.split(v)]


def _codegen(flags: list) -> list[str]:
    """The optimisation flags among compile flags (-O level and -f options), in order."""
    return [f for f in flags if isinstance(f, str) and (f.startswith("-O") or f.startswith("-f"))]


class _Node:
    def __init__(self, path: Path):
        self.path = path

    def srcnode(self) -> "_Node":
        return self

    def get_abspath(self) -> str:
        return str(self.path)


class _StandInEnv(dict):
    """The few SCons/PlatformIO environment calls extra_script.py makes, recorded (simulated)."""

    def __init__(self, pioenv: str, build_dir: Path, **flags):
        super().__init__(PIOENV=pioenv, **flags)
        from platformio.project.config import ProjectConfig

        self.config = ProjectConfig(str(FIRMWARE_DIR / "platformio.ini"))
        self.build_dir = build_dir
        self.middlewares: list = []
        self.exit_code: int | None = None

    def GetProjectConfig(self):  # noqa: N802 (SCons names)
        return self.config

    def subst(self, text: str) -> str:
        return text.replace("$PROJECT_DIR", str(FIRMWARE_DIR)).replace("$BUILD_DIR", str(self.build_dir))

    def Append(self, **kw):  # noqa: N802
        for k, v in kw.items():
            self.setdefault(k, [])
            self[k] = list(self[k]) + list(v)

    def BuildSources(self, *a):  # noqa: N802
        pass

    def AddBuildMiddleware(self, callback, pattern=None):  # noqa: N802
        self.middlewares.append(callback)

    def Exit(self, code):  # noqa: N802
        self.exit_code = code

    def Object(self, node, **overrides):  # noqa: N802
        return ("object", node.path, overrides)


def _run_extra_script(pioenv: str, tmp_path: Path, monkeypatch, backend: str = "aot", **flags) -> _StandInEnv:
    import runpy

    monkeypatch.setenv("KWS_BACKEND", backend)
    monkeypatch.delenv("KWS_MODEL_DIR", raising=False)
    monkeypatch.delenv("KWS_EXTRA_SRC_DIRS", raising=False)
    env = _StandInEnv(pioenv, tmp_path / pioenv, **flags)
    env.script = runpy.run_path(str(FIRMWARE_DIR / "extra_script.py"),
                                init_globals={"Import": lambda *_: None, "env": env})
    return env


# The compile flags the Arduino mbed core gives every file of the nano33ble env (simulated: the core
# is not installed here). -Os is what the issue is about; the rest must survive untouched.
CORE_FLAGS = {"CCFLAGS": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=softfp", "-mfpu=fpv4-sp-d16", "-Os", "-g",
                          "-ffunction-sections", "-fdata-sections", "-funsigned-char"],
              "CFLAGS": ["-std=gnu11", "-Os"], "CXXFLAGS": ["-std=gnu++14", "-Os", "-fno-rtti"]}
# PlatformIO's compile commands (SCons' gcc tool, wrapped by PlatformIO's long-command-line handling)
PIO_COMMANDS = {"CCCOM": "${TEMPFILE('$CC -o $TARGET -c $CFLAGS $CCFLAGS $_CCCOMCOM $SOURCES','$CCCOMSTR')}",
                "CXXCOM": "${TEMPFILE('$CXX -o $TARGET -c $CXXFLAGS $CCFLAGS $_CCCOMCOM $SOURCES','$CXXCOMSTR')}"}


def _expand(command: str, env: dict) -> list[str]:
    """The flags of a compile command as SCons would expand them when the file compiles."""
    inner = re.search(r"TEMPFILE\('([^']*)'", command).group(1)
    out: list[str] = []
    for word in inner.split():
        if word.startswith("$") and word[1:] in env:
            out.extend(str(v) for v in env[word[1:]])
        elif not word.startswith("$"):
            out.append(word)
    return out


def test_nano33ble_compiles_our_sources_with_the_emu_m4_optimisation_flags(tmp_path, monkeypatch):
    cfg = _pio_config()
    emu = _codegen(_flags(cfg["env:emu_m4"]["build_flags"]))
    assert emu and emu[0] == "-O2"
    assert emu == _codegen(_flags(cfg["kws"]["opt_flags"]))
    assert not _codegen(_flags(cfg["env:nano33ble"]["build_flags"]))  # the core keeps its own flags
    builder = (FIRMWARE_DIR / "platform" / "builder" / "main.py").read_text()
    assert not re.search(r'"-O\w*"', builder), "emu_m4's -O level must come from [kws] opt_flags only"

    # extra_script.py runs before the framework script: no core flags yet (the model's files are
    # collected at this point), then the core adds its flags; the compile line is expanded after both.
    env = _run_extra_script("nano33ble", tmp_path, monkeypatch, **PIO_COMMANDS)
    assert env.exit_code is None and len(env.middlewares) == 1
    middleware = env.middlewares[0]
    ours = [FIRMWARE_DIR / "src" / "app.c", FIRMWARE_DIR / "lib" / "kws_runtime" / "kws_conv.c",
            FIRMWARE_DIR / "lib" / "board" / "board_nano33ble.cpp"]
    results = [middleware(env, _Node(path)) for path in ours]
    env.Append(**CORE_FLAGS)  # the framework script (simulated)
    for path, (kind, _, overrides) in zip(ours, results):
        assert kind == "object"
        final = {**env, **overrides}
        for command in ("CCCOM", "CXXCOM"):
            line = _expand(final[command], final)
            levels = [f for f in line if f.startswith("-O")]
            assert levels[-1] == "-O2", (path.name, command, levels)  # GCC uses the last -O
            assert _codegen(line)[-len(emu):] == emu  # emu_m4's optimisation flags, last, in order
            core = CORE_FLAGS["CCFLAGS"] + CORE_FLAGS["CFLAGS" if command == "CCCOM" else "CXXFLAGS"]
            before_ours = line[: line.index("-O2")]
            assert all(f in before_ours for f in core)  # the core's flags all kept, ahead of ours
    core_file = _Node(Path("/pio/packages/framework-arduino-mbed/cores/arduino/main.cpp"))
    assert middleware(env, core_file) is core_file  # the core's own files keep -Os
    line = _expand(env["CCCOM"], env)
    assert [f for f in line if f.startswith("-O")] == ["-Os", "-Os"]
    assert "-O2 -ffunction-sections -fdata-sections" in (tmp_path / "nano33ble" / "kws_build_info" /
                                                         "kws_build_info.h").read_text()


def test_opt_middleware_in_a_real_scons_environment(tmp_path, monkeypatch):
    """The middleware's Object in SCons itself (from the venv, as PlatformIO runs it): flags the
    framework adds after the pre-script still reach the line, and ours come last."""
    import os

    from SCons.Environment import Environment

    script = _run_extra_script("nano33ble", tmp_path, monkeypatch).script
    opt = _flags(_pio_config()["kws"]["opt_flags"])
    src = tmp_path / "src" / "app.c"
    src.parent.mkdir()
    src.write_text("int x;\n")
    env = Environment(tools=["gcc", "g++"], ENV=dict(os.environ))
    for name in ("CCCOM", "CXXCOM"):  # PlatformIO's long-command-line wrapping, as in piomaxlen
        env[name] = "${TEMPFILE('%s','$%sSTR')}" % (env[name], name)
    middleware = script["make_opt_middleware"]([str(tmp_path / "src")], opt)
    obj = middleware(env, env.File(str(src)))
    env.Append(CCFLAGS=["-mcpu=cortex-m4", "-Os"], CFLAGS=["-std=gnu11", "-Os"])  # the core, later
    line = obj[0].get_executor().get_contents().decode().split()
    assert line[-1 - len(opt):-1] == opt and line[-1].endswith("app.c")
    assert [f for f in line if f.startswith("-O")] == ["-Os", "-Os", "-O2"]  # GCC takes the last: -O2
    assert "-mcpu=cortex-m4" in line


def test_emu_m4_gets_no_middleware_and_reports_the_same_flags(tmp_path, monkeypatch):
    env = _run_extra_script("emu_m4", tmp_path, monkeypatch)
    assert env.middlewares == []  # nothing but our sources is compiled there; build_flags carry opt_flags
    header = (tmp_path / "emu_m4" / "kws_build_info" / "kws_build_info.h").read_text()
    assert '#define KWS_BUILD_CFLAGS "-O2 -ffunction-sections -fdata-sections"' in header


# ----------------------------------------------------------------------------- TFLM backend


def test_only_the_tflm_env_fetches_the_tflm_library(tmp_path, monkeypatch):
    cfg = _pio_config()
    assert "lib_deps" not in cfg["env:nano33ble"]
    assert any("tflite-micro" in d for d in cfg["env:nano33ble_tflm"]["lib_deps"])
    assert firmware.pio_env_name("nano33ble", "aot") == "nano33ble"
    assert firmware.pio_env_name("nano33ble", "tflm") == "nano33ble_tflm"
    hosts = {h for (h, _), _what in firmware.required_hosts("nano33ble", "aot")}
    assert hosts == {firmware.REGISTRY_HOST[0]}
    tflm_hosts = [h for (h, _), _what in firmware.required_hosts("nano33ble", "tflm")]
    assert tflm_hosts == [firmware.REGISTRY_HOST[0], "github.com"]
    assert firmware.required_hosts("emu_m4", "aot") == []

    aot = _run_extra_script("nano33ble", tmp_path, monkeypatch, backend="aot")
    assert {"Arduino_TensorFlowLite", "tflite-micro-arduino-examples"} <= set(aot.config.get("env:nano33ble",
                                                                                             "lib_ignore"))
    assert "-Wl,--wrap=DebugLog" not in aot.get("LINKFLAGS", [])
    tflm = _run_extra_script("nano33ble_tflm", tmp_path, monkeypatch, backend="tflm")
    assert tflm.exit_code is None
    assert "KWS_BACKEND_TFLM" in tflm["CPPDEFINES"]
    assert "-Wl,--wrap=DebugLog" in tflm["LINKFLAGS"]  # TFLM's log text never reaches the link
    wrong = _run_extra_script("nano33ble", tmp_path, monkeypatch, backend="tflm")
    assert wrong.exit_code == 1  # the aot env has no TFLM library


def test_unreachable_host_error_names_the_host_the_build_needs(monkeypatch):
    monkeypatch.setattr(firmware, "_nano_packages_installed", lambda backend="aot": False)
    asked = []

    def only_registry(host, timeout=3.0):  # simulated network: the registry answers, GitHub does not
        asked.append(host[0])
        return host == firmware.REGISTRY_HOST

    monkeypatch.setattr(firmware, "host_reachable", only_registry)
    missing = firmware.first_unreachable("nano33ble", "tflm")
    assert missing is not None and missing[0] == ("github.com", 443)
    assert firmware.first_unreachable("nano33ble", "aot") is None  # aot never asks GitHub
    msg = firmware._unreachable_message("v1", "nano33ble", "tflm", *missing)
    assert "github.com:443 is unreachable" in msg and "nano33ble_tflm" in msg and "TFLM" in msg
    monkeypatch.setattr(firmware, "host_reachable", lambda host, timeout=3.0: False)
    msg = firmware._unreachable_message("v1", "nano33ble", "aot", *firmware.first_unreachable("nano33ble", "aot"))
    assert msg.startswith("build v1: the PlatformIO registry is unreachable (api.registry.platformio.org:443); "
                          "env nano33ble needs")


def test_tflm_backend_allocates_at_start_up_and_drops_its_log():
    code = (FIRMWARE_DIR / "src" / "backend_tflm.cpp").read_text()
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)
    invoke = code[code.index("int kws_model_invoke"):]
    assert "AllocateTensors" not in invoke and "prepare" not in invoke  # never inside a timed region
    assert re.search(r'extern "C" void __wrap_DebugLog\([^)]*\)\s*\{\s*\(void\)\w+;\s*\}', code)
    app = (FIRMWARE_DIR / "src" / "app.c").read_text()
    init = app[app.index("void kws_app_init(void)"):]
    init = init[: init.index("\n}\n")]
    assert "kws_tflm_prepare()" in init


def test_hello_reports_compiler_flags_and_timing_method_of_the_build():
    """The same core on the native build: HELLO's cflags are [kws] opt_flags, read from the build."""
    from harness.device import emulator
    from harness.device.link import Board

    standin = Path(__file__).resolve().parent / "fixtures" / "firmware_standin"
    built = firmware.build(None, env="native", extra_src_dirs=(standin,))
    opt = " ".join(_flags(_pio_config()["kws"]["opt_flags"]))
    with emulator.start(built) as emu, Board(emu.url, timeout=2.0) as board:
        info = board.hello()
    assert (info.cflags, info.timing, info.firmware) == (opt, "preemptible", "0.2.0")
    assert info.compiler.startswith("gcc ") and info.extra == {}
