"""PlatformIO builds of the firmware (harness/device/firmware.py): offline envs, cache, sizes, failures.

Builds use the stand-in model in tests/fixtures/firmware_standin/ (the real runtime is tested in
test_emulator_model.py); successful builds are cached by content hash, so reruns cost nothing.
"""

from __future__ import annotations

import importlib.util
import re
import threading
import time
from pathlib import Path

import pytest

from harness.device import firmware
from harness.errors import HarnessError

STANDIN = Path(__file__).resolve().parent / "fixtures" / "firmware_standin"
_spec = importlib.util.spec_from_file_location("standin", STANDIN / "standin.py")
standin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(standin)


@pytest.fixture(scope="module")
def emu_build():
    return firmware.build(None, env="emu_m4", extra_src_dirs=(STANDIN,))


def test_emu_build_sizes_agree_with_platformio(emu_build):
    s = emu_build.sizes
    assert emu_build.elf.is_file() and emu_build.elf.suffix == ".elf"
    assert re.fullmatch(r"[0-9a-f]{16}", emu_build.build_hash)
    assert s.text > 1000 and s.rodata > 0 and s.bss > 16000  # audio buffer alone is 32 kB
    assert s.flash == s.text + s.rodata + s.data and s.ram == s.data + s.bss
    # PlatformIO's own RAM/Flash lines (from its size check) against the board's budgets
    assert emu_build.pio_flash == (s.flash, 1024 * 1024)
    assert emu_build.pio_ram == (s.ram + s.stack, 256 * 1024)
    assert s.frontend_text > 0 and s.frontend_rodata > 0  # read from the linker map
    d = emu_build.to_dict()
    assert d["sizes"]["flash"] == s.flash and d["budgets"]["ram"] == 256 * 1024


def test_cached_build_is_a_fast_hit(emu_build):
    t0 = time.monotonic()
    again = firmware.build(None, env="emu_m4", extra_src_dirs=(STANDIN,))
    assert again.cached and again.build_hash == emu_build.build_hash and again.elf == emu_build.elf
    assert time.monotonic() - t0 < 5.0


def test_a_define_changes_the_build_hash(emu_build):
    uart = firmware.build(None, env="emu_m4", extra_src_dirs=(STANDIN,), defines=("KWS_EMU_LINK_UART",))
    assert uart.build_hash != emu_build.build_hash
    from harness.device import emulator

    assert emulator.emu_link(uart.elf) == "uart" and emulator.emu_link(emu_build.elf) == "semihost"


def test_two_builds_run_in_parallel(tmp_path):
    dirs = []
    for k in range(2):
        d = tmp_path / f"model{k}"
        d.mkdir()
        (d / "kws_model.h").write_text((STANDIN / "kws_model.h").read_text())
        (d / "kws_model_standin.c").write_text(
            (STANDIN / "kws_model_standin.c").read_text().replace('"standin"', f'"parallel{k}"'))
        dirs.append(d)
    results: dict[int, object] = {}

    def run(k: int) -> None:
        try:
            results[k] = firmware.build(None, env="native", model_id=f"parallel{k}", extra_src_dirs=(dirs[k],))
        except Exception as exc:  # noqa: BLE001
            results[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(isinstance(results[k], firmware.Build) for k in range(2)), results
    assert results[0].elf != results[1].elf and results[0].elf.is_file() and results[1].elf.is_file()


@pytest.mark.parametrize("storage, budget", [
    ("static const int8_t weights[1200000] = {1, 2, 3};", r"flash budget of 1048576 bytes"),
    ("int8_t weights[300000];  /* global: the compiler cannot fold it away */", r"ram budget of 262144 bytes"),
])
def test_model_too_big_names_the_budget(tmp_path, storage, budget):
    d = tmp_path / "big"
    d.mkdir()
    (d / "kws_model.h").write_text((STANDIN / "kws_model.h").read_text())
    (d / "kws_model_big.c").write_text(
        '#include "kws_model.h"\nconst char kws_model_id[] = "big";\nconst uint32_t kws_model_arena_bytes = 0;\n'
        f"{storage}\n"
        "int kws_model_invoke(const int8_t *in, int8_t *out) {\n"
        "  for (int c = 0; c < 4; c++) out[c] = weights[(unsigned)(in[c] + 128) * 1000u + c];\n  return 0;\n}\n")
    with pytest.raises(HarnessError, match=budget) as err:
        firmware.build(None, env="emu_m4", model_id="big", extra_src_dirs=(d,))
    assert "\n" not in str(err.value)


def test_budget_check_names_ram_budget():
    sizes = firmware.Sizes(text=1000, rodata=0, data=0, bss=300_000)
    with pytest.raises(HarnessError, match="RAM 300000 bytes .* budget of 262144 bytes"):
        firmware.check_budget(sizes, "emu_m4", "v")
    firmware.check_budget(sizes, "native", "v")  # the host has no budget


def test_compile_error_is_one_line_naming_the_file(tmp_path):
    d = tmp_path / "broken"
    d.mkdir()
    (d / "kws_model.h").write_text((STANDIN / "kws_model.h").read_text())
    (d / "kws_model_broken.c").write_text('#include "kws_model.h"\nint kws_model_invoke(const int8_t *in, int8_t *out) { return nope; }\n')
    with pytest.raises(HarnessError, match=r"kws_model_broken\.c:2.*nope") as err:
        firmware.build(None, env="native", model_id="broken", extra_src_dirs=(d,))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"env": "esp32"}, "unknown environment 'esp32'"),
    ({"backend": "tflm"}, "backend tflm .* only for env nano33ble"),
    ({"backend": "onnx"}, "unknown backend 'onnx'"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(HarnessError, match=message):
        firmware.build(None, extra_src_dirs=(STANDIN,), **kwargs)


def test_missing_tflite_is_named(tmp_path):
    with pytest.raises(HarnessError, match="nothere.tflite does not exist"):
        firmware.build(tmp_path / "nothere.tflite")


def test_nano33ble_without_registry_fails_fast_in_one_line():
    if firmware.registry_reachable(timeout=2):
        pytest.skip("the PlatformIO registry is reachable here: the real build would run")
    t0 = time.monotonic()
    with pytest.raises(HarnessError, match="PlatformIO registry is unreachable") as err:
        firmware.build(None, env="nano33ble", extra_src_dirs=(STANDIN,))
    assert time.monotonic() - t0 < 10 and "\n" not in str(err.value)
