"""The runtime's Cortex-M4 DSP path (SXTB16/SMLAD) run in QEMU, bit-exact with TFLM.

The host tests run the portable C equivalents of the DSP intrinsics; this one cross-compiles the
generated TinyConv and the runtime with arm-none-eabi-gcc for a Cortex-M4F, runs them bare metal
on QEMU's mps2-an386 (semihosting prints the scores and exits), and compares with TFLM. A minimal
vector table and linker script live here as text, so the test does not depend on the firmware
project. ``m4_instructions_per_inference`` counts executed instructions exactly with QEMU's
one-instruction-per-block exec trace (used by the slow test and for reports).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.device import codegen, reference

pytestmark = [
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                       reason="needs arm-none-eabi-gcc and qemu-system-arm"),
    pytest.mark.filterwarnings("ignore:Statistics for quantized inputs"),
]

N_INPUTS = 16
QEMU_TIMEOUT_S = 60

STARTUP_C = r"""
#include <stdint.h>
#include "kws_model.h"

extern uint32_t __stack_top, __bss_start, __bss_end;
extern const int8_t test_inputs[][KWS_MODEL_INPUT_SIZE];
extern const int test_count;

static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static void semihost_exit(int code) {
    uint32_t block[2] = {0x20026u, (uint32_t)code}; /* ADP_Stopped_ApplicationExit */
    semihost(0x20, block);                          /* SYS_EXIT_EXTENDED */
    for (;;) {}
}

static void fault(void) { semihost_exit(99); }

int main(void) {
    static int8_t out[KWS_MODEL_OUTPUT_SIZE];
    static char line[4 * KWS_MODEL_OUTPUT_SIZE + 2];
    static const char hex[] = "0123456789abcdef";
#ifdef REPEAT
    for (int r = 0; r < REPEAT; ++r) kws_model_invoke(test_inputs[0], out);
    return 0;
#endif
    for (int i = 0; i < test_count; ++i) {
        kws_model_invoke(test_inputs[i], out);
        int n = 0;
        for (int c = 0; c < KWS_MODEL_OUTPUT_SIZE; ++c) {
            line[n++] = hex[((uint8_t)out[c]) >> 4];
            line[n++] = hex[((uint8_t)out[c]) & 15];
        }
        line[n++] = '\n';
        line[n] = 0;
        semihost(0x04, line); /* SYS_WRITE0 */
    }
    return 0;
}

void reset_handler(void) {
    for (uint32_t *p = &__bss_start; p < &__bss_end; ++p) *p = 0;
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: enable the FPU */
    __asm__ volatile("dsb\n isb");
    semihost_exit(main());
}

__attribute__((section(".vectors"), used)) void (*const vectors[16])(void) = {
    (void (*)(void))&__stack_top, reset_handler, fault, fault, fault, fault, fault,
};
"""

LINKER_LD = """
MEMORY { CODE (rx) : ORIGIN = 0x00000000, LENGTH = 4M
         RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 4M }
SECTIONS {
  .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) } > CODE
  .data : { *(.data*) } > RAM
  .bss (NOLOAD) : { __bss_start = .; *(.bss*) *(COMMON) . = ALIGN(4); __bss_end = .; } > RAM
  __stack_top = ORIGIN(RAM) + LENGTH(RAM);
}
"""

M4_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]


def build_m4_test_image(tflite: Path, x: np.ndarray, out_dir: Path, opt: str = "-O2",
                        repeat: int | None = None, backend: str = "aot") -> Path:
    """ELF for mps2-an386: the generated model, the runtime and ``x`` as test inputs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = codegen.generate(tflite, out_dir / "gen", "m4-test", backend)
    (out_dir / "startup.c").write_text(STARTUP_C)
    (out_dir / "link.ld").write_text(LINKER_LD)
    rows = ",\n".join("{" + ",".join(map(str, s.reshape(-1).tolist())) + "}" for s in x)
    (out_dir / "inputs.c").write_text(
        f'#include "kws_model.h"\nconst int test_count = {len(x)};\n'
        f"const int8_t test_inputs[][KWS_MODEL_INPUT_SIZE] = {{\n{rows}\n}};\n")
    elf = out_dir / "test.elf"
    cmd = ["arm-none-eabi-gcc", "-std=c99", *M4_FLAGS, opt, "-Wall", "-Wextra", "-Werror", "-nostdlib",
           "-nostartfiles", "-ffreestanding", "-T", str(out_dir / "link.ld"), "-I", str(codegen.RUNTIME_DIR), "-I", str(gen.dir),
           *([f"-DREPEAT={repeat}"] if repeat else []), str(out_dir / "startup.c"), str(out_dir / "inputs.c"),
           *map(str, gen.sources), *map(str, codegen.runtime_sources()), "-lgcc", "-o", str(elf)]
    # -nostdlib: memcpy/memset come from a tiny local copy (no newlib needed)
    (out_dir / "mem.c").write_text(
        "#include <stddef.h>\n"
        "void *memcpy(void *d, const void *s, size_t n) { char *a = d; const char *b = s; while (n--) *a++ = *b++; return d; }\n"
        "void *memset(void *d, int v, size_t n) { char *a = d; while (n--) *a++ = (char)v; return d; }\n")
    cmd.insert(-3, str(out_dir / "mem.c"))
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return elf


def run_qemu(elf: Path, extra: list[str] = ()) -> subprocess.CompletedProcess:
    cmd = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "null",
           "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", *extra, "-kernel", str(elf)]
    # semihosting console text lands on stdout or stderr depending on what they are: read both
    return subprocess.run(cmd, capture_output=True, text=True, timeout=QEMU_TIMEOUT_S, stdin=subprocess.DEVNULL)


def m4_instructions_per_inference(tflite: Path, work: Path, opt: str = "-O2", backend: str = "aot") -> int:
    """Executed Cortex-M4 instructions of one kws_model_invoke (trace of 2 runs minus 1 run)."""
    x = np.zeros((1, *codegen.generate(tflite, work / "probe", "probe").input_shape[1:]), dtype=np.int8)
    counts = []
    for repeat in (1, 2):
        elf = build_m4_test_image(tflite, x, work / f"r{repeat}", opt, repeat=repeat, backend=backend)
        log = work / f"r{repeat}.log"
        result = run_qemu(elf, ["-singlestep", "-d", "exec,nochain", "-D", str(log)])
        assert result.returncode == 0, result.stderr[-500:]
        with open(log, "rb") as f:
            counts.append(sum(chunk.count(b"Trace ") for chunk in iter(lambda: f.read(1 << 22), b"")))
        log.unlink()
    return counts[1] - counts[0]


@pytest.fixture(scope="module")
def tinyconv() -> Path:
    from tests.test_codegen_exact import MODELS, _convert

    return _convert("tinyconv8", MODELS["tinyconv8"]["build"], (49, 40))


@pytest.fixture(scope="module")
def mixed() -> Path:
    from tests.test_codegen_exact import MODELS, _convert

    return _convert("mixed_convs", MODELS["mixed_convs"]["build"], (49, 40))


@pytest.fixture(scope="module")
def tinyconv7() -> Path:
    from tests.test_codegen_exact import MODELS, _convert

    return _convert("tinyconv7", MODELS["tinyconv7"]["build"], (49, 40))


@pytest.fixture(scope="module")
def tinyconv3() -> Path:
    from tests.test_codegen_exact import MODELS, _convert

    return _convert("tinyconv3", MODELS["tinyconv3"]["build"], (49, 40))


@pytest.fixture(scope="module")
def fc_leftovers() -> Path:
    from tests.test_codegen_exact import MODELS, _convert

    return _convert("fc_leftovers", MODELS["fc_leftovers"]["build"], (49, 40))


@pytest.fixture(scope="module")
def odd_fast() -> Path:
    from tests.test_codegen_exact import MODELS, _convert

    return _convert("odd_fast", MODELS["odd_fast"]["build"], (49, 40))


@pytest.fixture(scope="module")
def tinyconv5() -> Path:
    from tests.test_codegen_exact import MODELS, _convert

    return _convert("tinyconv5", MODELS["tinyconv5"]["build"], (49, 40))


# tinyconv*: the fused generated pair code (4-blocks, a 2-block, padding channels); odd_fast: generated
# block dot products with C requantization; fc_leftovers / mixed: the general im2col kernel; ref backend
@pytest.mark.parametrize("which,backend", [("tinyconv", "aot"), ("tinyconv7", "aot"), ("tinyconv5", "aot"),
                                           ("tinyconv3", "aot"), ("odd_fast", "aot"), ("fc_leftovers", "aot"),
                                           ("mixed", "aot"), ("tinyconv", "ref"), ("tinyconv8_4bit", "aot"),
                                           ("tinyconv8_2bit", "aot"), ("tinyconv8_2bit_dead", "aot"),
                                           ("tinyconv7_6bit_6units", "aot"),
                                           ("tinyconv8_4bit_6units", "aot"), ("tinyconv7_4bit_5units", "aot"),
                                           ("tinyconv8_pruned70", "aot"), ("tinyconv8_pruned90", "aot"),
                                           ("tinyconv8_pruned95_6units", "aot")])
def test_m4_dsp_path_bit_exact(request: pytest.FixtureRequest, tmp_path: Path, which: str, backend: str) -> None:
    from tests.test_codegen_exact import MODELS, _convert

    if which in MODELS:  # packed sub-byte / sparse weights: decoded on the board
        spec = MODELS[which]
        tflite = _convert(which, spec["build"], (49, 40), bits=spec.get("bits", 0), prune=spec.get("prune", 0.0),
                          dead=spec.get("dead", ()))
    else:
        tflite = request.getfixturevalue(which)
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (N_INPUTS, 49, 40)).astype(np.int8)
    elf = build_m4_test_image(tflite, x, tmp_path, backend=backend)
    result = run_qemu(elf)
    assert result.returncode == 0, f"qemu exit {result.returncode}: {result.stderr[-500:]}"
    text = result.stdout + result.stderr
    lines = re.findall(r"^(?:[0-9a-f]{2})+$", text, re.M)
    assert len(lines) == N_INPUTS, text[-500:]
    got = np.array([np.frombuffer(bytes.fromhex(line), dtype=np.int8) for line in lines])
    np.testing.assert_array_equal(got, reference.predict(tflite, x))


def test_m4_fast_conv_general_requant(tinyconv7: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The generated block dot products with C requantization (short path refused), bit-exact on the M4."""
    monkeypatch.setattr(codegen, "short_requant_ok", lambda *a, **k: False)
    x = np.random.default_rng(8).integers(-128, 128, (N_INPUTS, 49, 40)).astype(np.int8)
    elf = build_m4_test_image(tinyconv7, x, tmp_path)
    assert ".short_q = 0," in (tmp_path / "gen" / "kws_model_data.c").read_text()
    result = run_qemu(elf)
    lines = re.findall(r"^(?:[0-9a-f]{2})+$", result.stdout + result.stderr, re.M)
    got = np.array([np.frombuffer(bytes.fromhex(line), dtype=np.int8) for line in lines])
    np.testing.assert_array_equal(got, reference.predict(tinyconv7, x))


@pytest.mark.slow
def test_m4_instruction_budget(tinyconv: Path, tmp_path: Path) -> None:
    """TinyConv (336k MACs): executed Cortex-M4 instructions per inference (a sanity bound, not a
    timing: the fast path stays under one instruction per MAC and above the 0.5 of SMLAD alone)."""
    instructions = m4_instructions_per_inference(tinyconv, tmp_path / "aot")
    macs = codegen.generate(tinyconv, tmp_path / "g", "t").macs
    print(f"\nTinyConv on Cortex-M4: {instructions} instructions per inference, {instructions / macs:.2f} per MAC")
    assert macs / 2 < instructions < macs
