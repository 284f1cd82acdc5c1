"""The C front end compiled for the Cortex-M4F and run in QEMU (mps2-an386) equals the host.

WHY separately from test_frontend_c.py: the host .so proves the port matches TF, but the
firmware runs other code: its FFT uses the M4's DSP instructions (SADD16, SMUSD, SSAX, ...)
instead of the portable C, and shifts of negative values, int16 wrap-around and 64-bit
multiplies take other instruction paths. This builds a minimal bare-metal image (own
vector table, semihosting output, no board layer, so it tests only kws_frontend), runs it with
-icount shift=0 and compares every int8 feature with the host build. It also reports the
front end's instruction count per 1 s clip (SysTick at 25 MHz = 40 instructions per tick).
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from harness.device import frontend_native

pytestmark = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm (apt-get install gcc-arm-none-eabi qemu-system-arm)",
)

CFLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2", "-std=c99",
          "-ffreestanding", "-nostdlib"]
INSNS_PER_TICK = 40  # icount shift=0: 1 ns per instruction; SysTick runs at 25 MHz

STARTUP_C = r"""
#include <stdint.h>
extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__, __stack_top__;
int main(void);
void Reset_Handler(void);
static int semihost(int op, const void *arg) {
  register int r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}
void sh_write0(const char *s) { semihost(0x04, s); }
static void sh_exit(int code) {
  uint32_t block[2] = {0x20026u, (uint32_t)code}; /* ADP_Stopped_ApplicationExit */
  semihost(0x20, block);                           /* SYS_EXIT_EXTENDED */
  for (;;) {}
}
static void Fault_Handler(void) { sh_exit(70); }
__attribute__((section(".isr_vector"), used)) const void *const vectors[16] = {
    &__stack_top__, (void *)Reset_Handler, (void *)Fault_Handler, (void *)Fault_Handler,
    (void *)Fault_Handler, (void *)Fault_Handler, (void *)Fault_Handler, 0, 0, 0, 0,
    (void *)Fault_Handler, (void *)Fault_Handler, 0, (void *)Fault_Handler, (void *)Fault_Handler};
void Reset_Handler(void) {
  *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20); /* CPACR: FPU on, as the firmware's start-up */
  uint32_t *src = &__etext, *dst = &__data_start__;
  while (dst < &__data_end__) *dst++ = *src++;
  for (dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;
  sh_exit(main());
}
"""

LINK_LD = """
MEMORY { FLASH (rx) : ORIGIN = 0x00000000, LENGTH = 4096K  RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 1024K }
ENTRY(Reset_Handler)
SECTIONS {
  .isr_vector : { KEEP(*(.isr_vector)) } > FLASH
  .text : { *(.text*) *(.rodata*) . = ALIGN(4); } > FLASH
  __etext = .;
  .data : AT(__etext) { __data_start__ = .; *(.data*) . = ALIGN(4); __data_end__ = .; } > RAM
  .bss (NOLOAD) : { __bss_start__ = .; *(.bss*) *(COMMON) . = ALIGN(4); __bss_end__ = .; } > RAM
  __stack_top__ = ORIGIN(RAM) + LENGTH(RAM);
}
"""

MAIN_C = r"""
#include <stdint.h>
#include "kws_frontend.h"
void sh_write0(const char *s);
extern const int16_t clips[NUM_CLIPS][16000];
static int8_t feat[KWS_FRONTEND_FEATURES];
static char line[2 * KWS_FRONTEND_FEATURES + 32];
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
int main(void) {
  static const char hex[] = "0123456789abcdef";
  int c, i;
  SYST_RVR = 0xFFFFFFu;
  SYST_CSR = 5u; /* processor clock, enabled, no interrupt */
  for (c = 0; c < NUM_CLIPS; ++c) {
    SYST_CVR = 0;
    const uint32_t t0 = SYST_CVR;
    const int rc = kws_frontend_compute(clips[c], 16000, feat);
    const uint32_t t1 = SYST_CVR;
    uint32_t ticks = (t0 - t1) & 0xFFFFFFu;
    char *p = line, d[12];
    int n = 0;
    if (rc != 0) return 3;
    for (i = 0; i < KWS_FRONTEND_FEATURES; ++i) {
      const uint8_t b = (uint8_t)feat[i];
      *p++ = hex[b >> 4];
      *p++ = hex[b & 15];
    }
    *p++ = ' ';
    do { d[n++] = (char)('0' + ticks % 10); ticks /= 10; } while (ticks);
    while (n) *p++ = d[--n];
    *p++ = '\n';
    *p = 0;
    sh_write0(line);
  }
  /* bad length must be refused on the device too */
  return kws_frontend_compute(clips[0], 15999, feat) == KWS_FRONTEND_ERR_LENGTH ? 0 : 4;
}
"""


def _clips() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    t = np.arange(16000) / 16000
    sweep = np.sin(2 * np.pi * (50 * t + 3950 * t**2))
    clips = {
        "white-noise": np.clip(rng.normal(0, 3000, 16000), -32768, 32767).astype(np.int16),
        "clipped-loud": np.clip(sweep * 200000 + rng.normal(0, 20000, 16000), -32768, 32767).astype(np.int16),
        "tone-bursts": (np.sin(2 * np.pi * 700 * t) * 12000 * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.int16),
        # full-scale extremes, where int16 wrap-around inside the FFT (SADD16 on the M4) matters
        "nyquist-full-scale": np.where(np.arange(16000) % 2 == 0, 32767, -32768).astype(np.int16),
        "uniform-full-range": rng.integers(-32768, 32768, 16000).astype(np.int16),
        # levels across the square root's 32- and 64-bit paths and the window's shift range
        "quiet-noise": np.clip(rng.normal(0, 12, 16000), -32768, 32767).astype(np.int16),
        "fading-chirp": (np.sin(2 * np.pi * (200 * t + 3000 * t**2)) * 30000 * np.exp(-6 * t)).astype(np.int16),
        "square-1khz": np.where(np.sin(2 * np.pi * 1000 * t) >= 0, 20000, -20000).astype(np.int16),
        # -32768 where the window is 4096: a windowed -32768 that TF's int16 abs ignores, then wraps
        "silence-then-click": np.where(np.isin(np.arange(16000), (9000, 20 * 320 + 240)), -32768,
                                       np.where(np.arange(16000) == 20 * 320 + 300, 3, 0)).astype(np.int16),
    }
    if shutil.which("espeak-ng"):
        proc = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", "yes"], capture_output=True, check=True)
        clips["speech-yes"] = _wav_bytes(proc.stdout)
    return clips


def _wav_bytes(data: bytes) -> np.ndarray:
    """espeak-ng's 22.05 kHz wav on stdout -> 1 s of 16 kHz int16."""
    import io

    import soundfile as sf

    from harness.data.audio import fit_clip, resample, to_int16

    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    return fit_clip(to_int16(resample(audio.astype(np.float64), rate)))


def test_cortex_m4_build_matches_host_bit_for_bit(tmp_path, capsys):
    clips = _clips()
    names = list(clips)
    (tmp_path / "startup.c").write_text(STARTUP_C)
    (tmp_path / "link.ld").write_text(LINK_LD)
    (tmp_path / "main.c").write_text(MAIN_C)
    rows = ",\n".join("{" + ",".join(map(str, clips[n].tolist())) + "}" for n in names)
    (tmp_path / "clips.c").write_text(f"#include <stdint.h>\nconst int16_t clips[{len(names)}][16000] = {{\n{rows}}};\n")

    src = frontend_native.SOURCE_DIR
    elf = tmp_path / "frontend_check.elf"
    build = subprocess.run(
        ["arm-none-eabi-gcc", *CFLAGS, f"-DNUM_CLIPS={len(names)}", "-I", str(src),
         *(str(tmp_path / f) for f in ("startup.c", "main.c", "clips.c")),
         *(str(src / s) for s in frontend_native.RUNTIME_SOURCES),
         "-T", str(tmp_path / "link.ld"), "-lgcc", "-o", str(elf)],
        capture_output=True, text=True)
    assert build.returncode == 0, build.stderr

    run = subprocess.run(
        ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "null",
         "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", str(elf)],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"QEMU exit {run.returncode}: {run.stderr[-300:]}"
    # QEMU 7.2 sends semihosting console output to stderr (stdout when a chardev is given)
    lines = [ln for ln in (run.stdout + run.stderr).splitlines() if len(ln.split()) == 2 and len(ln.split()[0]) == 2 * 49 * 40]
    assert len(lines) == len(names)

    counts = []
    for name, ln in zip(names, lines):
        hexdata, ticks = ln.split()
        device = np.frombuffer(bytes.fromhex(hexdata), np.int8).reshape(49, 40)
        np.testing.assert_array_equal(device, frontend_native.features_c(clips[name]), err_msg=name)
        counts.append(int(ticks) * INSNS_PER_TICK)
    with capsys.disabled():
        print(f"\nC front end on emulated Cortex-M4 (QEMU icount): identical on {len(names)} clips; "
              f"instructions per 1 s clip: " + ", ".join(f"{n} {c:,}" for n, c in zip(names, counts)))
    # 49 frames of a 512-point FFT and 40 channels cannot cost less than ~1M or more than ~20M
    assert all(1_000_000 < c < 20_000_000 for c in counts), counts
