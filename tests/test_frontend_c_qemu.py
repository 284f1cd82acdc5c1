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


def _build(tmp_path, main_c: str, clips: dict[str, np.ndarray]):
    """Bare-metal image of the front end (and its reference) with ``main_c``; returns the ELF path."""
    names = list(clips)
    (tmp_path / "startup.c").write_text(STARTUP_C)
    (tmp_path / "link.ld").write_text(LINK_LD)
    (tmp_path / "main.c").write_text(main_c)
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
    return elf


def _run(elf) -> list[str]:
    """Run the image under QEMU (-icount shift=0); returns its semihosting output lines."""
    run = subprocess.run(
        ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "null",
         "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", str(elf)],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"QEMU exit {run.returncode}: {(run.stdout + run.stderr)[-300:]}"
    # QEMU 7.2 sends semihosting console output to stderr (stdout when a chardev is given)
    return (run.stdout + run.stderr).splitlines()


def test_cortex_m4_build_matches_host_bit_for_bit(tmp_path, capsys):
    clips = _clips()
    names = list(clips)
    out = _run(_build(tmp_path, MAIN_C, clips))
    lines = [ln for ln in out if len(ln.split()) == 2 and len(ln.split()[0]) == 2 * 49 * 40]
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
    # 49 frames of a 512-point FFT and 40 channels cannot cost less than ~0.5M or more than ~20M
    assert all(500_000 < c < 20_000_000 for c in counts), counts


MAIN_RANDOM_C = r"""
#include <stdint.h>
#include "kws_fft.h"
#include "kws_frontend.h"
#include "kws_frontend_ref.h"
#include "kws_frontend_tables.h"
void sh_write0(const char *s);
extern const int16_t clips[NUM_CLIPS][16000];
static uint32_t rng = 2463534242u;
static uint32_t next(void) { rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5; return rng; }
static int16_t sat16(int32_t v) { return (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v); }
/* One random frame of one of several kinds: full-range noise, noise at a random level (2^0..2^16),
 * full-scale square waves and Nyquist patterns, sparse impulses (-32768 included), a constant,
 * and a slow random walk that clips. */
static void make_frame(int16_t *x, int n) {
  const uint32_t kind = next() % 7, level = next() % 17, period = 1 + next() % 64;
  const int16_t c = (int16_t)next();
  int32_t walk = (int16_t)next();
  int i;
  for (i = 0; i < n; ++i) {
    const uint32_t r = next();
    switch (kind) {
      case 0: x[i] = (int16_t)r; break;
      case 1: x[i] = sat16((((int32_t)(r & 0xFFF) + (int32_t)((r >> 12) & 0xFFF) - 4095) << level) >> 11); break;
      case 2: x[i] = (i / period) & 1 ? 32767 : -32768; break;
      case 3: x[i] = (r & 31) == 0 ? (int16_t)(r >> 16) : (r & 63) == 1 ? -32768 : 0; break;
      case 4: x[i] = c; break;
      case 5: walk += ((int32_t)(r & 0x3FF) - 512) << (level / 2); x[i] = sat16(walk); walk = x[i]; break;
      default: x[i] = (i & 1) ? c : -32768; break;
    }
  }
}
static void put(const char *what, uint32_t n) {
  char line[64], d[12], *p = line;
  int k = 0;
  while (*what) *p++ = *what++;
  *p++ = ' ';
  do { d[k++] = (char)('0' + n % 10); n /= 10; } while (n);
  while (k) *p++ = d[--k];
  *p++ = '\n';
  *p = 0;
  sh_write0(line);
}
static int16_t frame[KWS_FRONTEND_WINDOW];
static int16_t padded[KWS_FFT_SIZE];
static int32_t e_fast[KWS_FFT_BINS], e_ref[KWS_FFT_BINS];
static uint64_t w_fast[KWS_FRONTEND_CHANNELS + 1], w_ref[KWS_FRONTEND_CHANNELS + 1];
int main(void) {
  uint16_t fast[KWS_FRONTEND_CHANNELS], ref[KWS_FRONTEND_CHANNELS];
  uint32_t noise[KWS_FRONTEND_CHANNELS];
  uint32_t bad = 0, n, i, c;
  /* frames in sequence (the noise estimate carries), a fresh state every 49 */
  for (n = 0; n < NUM_FRAMES; ++n) {
    if (n % 49 == 0) {
      kws_frontend_reset();
      for (c = 0; c < KWS_FRONTEND_CHANNELS; ++c) noise[c] = 0;
    }
    make_frame(frame, KWS_FRONTEND_WINDOW);
    kws_frontend_frame(frame, fast);
    kws_fe_ref_frame(frame, ref, noise);
    for (c = 0; c < KWS_FRONTEND_CHANNELS; ++c) bad += fast[c] != ref[c];
  }
  put("frames", n);
  put("frame_mismatches", bad);
  /* the FFT stage alone at every shift, on windowed-looking frames with -32768 and wrap-arounds */
  bad = 0;
  for (n = 0; n < NUM_SPECTRA; ++n) {
    const int shift = (int)(n % 16);
    make_frame(padded, KWS_FE_WINDOW_SIZE);
    kws_fft_energy(padded, shift, KWS_FE_FB_START_INDEX, KWS_FE_FB_END_INDEX, e_fast);
    kws_fe_ref_spectrum(padded, shift, e_ref);
    for (i = KWS_FE_FB_START_INDEX; i < KWS_FE_FB_END_INDEX; ++i) bad += e_fast[i] != e_ref[i];
    kws_fe_filterbank(e_ref, w_fast);
    kws_fe_ref_filterbank(e_ref, w_ref);
    for (i = 1; i <= KWS_FRONTEND_CHANNELS; ++i) bad += w_fast[i] != w_ref[i];
  }
  put("spectra", n);
  put("spectrum_mismatches", bad);
  /* the square root on every bit length up to 2^48, near squares and at TF's 0xFFFF cap */
  bad = 0;
  for (n = 0; n < NUM_SQRTS; ++n) {
    const uint32_t r = next(), bits = n % 49;
    uint64_t v = ((uint64_t)next() << 32 | r) & ((bits == 64 ? 0 : (1ull << bits)) - 1);
    if (n % 3 == 1) { const uint64_t s = v >> (bits / 2 + 1); v = s * s + (r % 5) - 2 + (r & 8 ? s : 0); }
    if (n % 7 == 2) v = 0xFFFE0001ull + (r % 0x20000);
    if (v >= 1ull << 48) v &= (1ull << 48) - 1;
    bad += kws_fe_sqrt64(v) != kws_fe_ref_sqrt64(v);
  }
  put("sqrts", n);
  put("sqrt_mismatches", bad);
  bad = 0;
  for (n = 0; n < 65536; ++n) bad += kws_frontend_quantize((uint16_t)n) != kws_fe_ref_quantize((uint16_t)n);
  put("quantize_mismatches", bad);
  return (int)clips[0][0] * 0;
}
"""


def test_cortex_m4_fast_paths_equal_the_reference_on_random_frames(tmp_path, capsys):
    """The M4's fast routines (DSP instructions, asm, VSQRT) against kws_frontend_ref.c compiled for
    the same core: random and extreme frames in sequence, the FFT stage at every shift, the square
    root across its range and the quantization of every uint16. The host test (test_frontend_fast.py)
    checks the portable build of the same algorithms on many more frames."""
    elf = _build(tmp_path, MAIN_RANDOM_C.replace("NUM_FRAMES", "4000").replace("NUM_SPECTRA", "4000")
                 .replace("NUM_SQRTS", "500000"), {"zeros": np.zeros(16000, np.int16)})
    out = dict(ln.split() for ln in _run(elf) if len(ln.split()) == 2 and not ln.startswith("QEMU"))
    with capsys.disabled():
        print(f"\nC front end on emulated Cortex-M4, fast vs reference: {out}")
    assert int(out["frames"]) == 4000 and int(out["spectra"]) == 4000 and int(out["sqrts"]) == 500000
    assert out["frame_mismatches"] == "0"
    assert out["spectrum_mismatches"] == "0"
    assert out["sqrt_mismatches"] == "0"
    assert out["quantize_mismatches"] == "0"
