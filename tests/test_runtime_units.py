"""Unit tests of the generator's arithmetic and planning (no TensorFlow, no converter).

The constants TFLM computes in Prepare (multipliers, activation ranges, softmax parameters) are
checked against values worked out by hand from the TFLite formulas; the weight layout is checked
by replaying what the C conv kernel reads; the arena planner by the overlap invariant.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.device import codegen
from harness.errors import HarnessError


@pytest.mark.parametrize("real, expected", [
    (0.5, (1 << 30, 0)),
    (1.0, (1 << 30, 1)),
    (0.25, (1 << 30, -1)),
    (0.0, (0, 0)),
    (1e-12, (0, 0)),  # shift below -31 -> zero, as TFLite
    (0.75, (3 << 29, 0)),
    (1 - 2.0 ** -33, (1 << 30, 1)),  # q * 2^31 rounds up to 2^31 -> halved, shift + 1
    (math.ldexp(1 - 2.0 ** -33, -3), (1 << 30, -2)),
])
def test_quantize_multiplier(real: float, expected: tuple[int, int]) -> None:
    assert codegen.quantize_multiplier(real) == expected


def test_quantize_multiplier_reconstructs_the_scale() -> None:
    rng = np.random.default_rng(0)
    for real in rng.uniform(1e-6, 10.0, 200):
        m, s = codegen.quantize_multiplier(float(real))
        assert (1 << 30) <= m < (1 << 31)
        assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0 ** -30


def test_round_half_away_from_zero() -> None:
    assert [codegen._round_half_away(v) for v in (0.5, 1.5, 2.5, -0.5, -2.5, 2.4999)] == [1, 2, 3, -1, -3, 2]


def test_activation_ranges() -> None:
    assert codegen.activation_range(0, 0.1, -128, "t") == (-128, 127)
    assert codegen.activation_range(1, 0.1, -5, "t") == (-5, 127)
    assert codegen.activation_range(3, 0.05, -128, "t") == (-128, -8)  # 6 / 0.05 = 120
    assert codegen.activation_range(3, 0.01, -128, "t") == (-128, 127)  # clamped to int8
    assert codegen.activation_range(2, 0.02, 0, "t") == (-50, 50)
    with pytest.raises(HarnessError, match="fused activation 4"):
        codegen.activation_range(4, 0.1, 0, "model.tflite: op 3 CONV_2D")


def test_softmax_params() -> None:
    # input scale 1/16, beta 1: 1/16 * 2^26 = 2^22 -> multiplier 2^30, left shift 23
    mult, shift, diff_min = codegen.softmax_params(1.0, 1 / 16)
    assert (mult, shift) == (1 << 30, 23)
    assert diff_min == -math.floor(31 * 2 ** 26 / 2 ** 23)


def _replay_conv_layout(layout: np.ndarray, out_c: int, kp: int) -> np.ndarray:
    """Read the int16 stream exactly as kws_conv2d_s8 does; return weights [out_c, kp]."""
    w = np.zeros((out_c, kp), dtype=np.int64)
    pos = 0

    def group(c: int, g: int) -> None:
        nonlocal pos  # lanes: (w0, w2) pair with the even patch bytes, (w1, w3) with the odd ones
        w[c, 4 * g + 0], w[c, 4 * g + 2], w[c, 4 * g + 1], w[c, 4 * g + 3] = layout[pos:pos + 4]
        pos += 4

    for b in range(out_c // 4):
        for g in range(kp // 4):
            for j in range(4):
                group(4 * b + j, g)
    for c in range(out_c // 4 * 4, out_c):
        for g in range(kp // 4):
            group(c, g)
    assert pos == len(layout)
    return w


@pytest.mark.parametrize("shape", [(8, 10, 8, 1), (5, 3, 5, 3), (3, 3, 3, 1), (6, 2, 1, 2), (4, 1, 1, 4)])
def test_conv_weight_layout_roundtrip(shape: tuple[int, int, int, int]) -> None:
    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, shape).astype(np.int8)
    layout = codegen.conv_weight_layout(w)
    kp = codegen.conv_k_padded(w)
    assert kp % 8 == 0 and 0 <= kp - w[0].size < 8
    assert layout.dtype == np.int16 and layout.size == shape[0] * kp
    back = _replay_conv_layout(layout, shape[0], kp)
    np.testing.assert_array_equal(back[:, :w[0].size], w.reshape(shape[0], -1))
    assert not back[:, w[0].size:].any()  # padding weights are zero


@pytest.mark.parametrize("shape", [(8, 10, 8, 1), (7, 10, 8, 1), (3, 4, 7, 1), (2, 1, 1, 1), (6, 3, 2, 1)])
def test_conv_fast_weight_layout_roundtrip(shape: tuple[int, int, int, int]) -> None:
    """Replays kws_conv_dot_c's reads (blocks of 4 then 2 channels, per row and tap pair, per channel)."""
    rng = np.random.default_rng(2)
    w = rng.integers(-128, 128, shape).astype(np.int8)
    out_c, k_h, k_w, _ = shape
    layout = codegen.conv_fast_weight_layout(w.astype(np.int32))
    oc2, pairs = out_c + out_c % 2, (k_w + 1) // 2
    assert layout.size == oc2 * k_h * pairs * 2
    back = np.zeros((oc2, k_h, 2 * pairs), dtype=np.int32)
    pos = 0
    for c0 in range(0, oc2, 4):
        nch = 4 if oc2 - c0 >= 4 else 2
        for ky in range(k_h):
            for j in range(pairs):
                for c in range(c0, c0 + nch):
                    back[c, ky, 2 * j:2 * j + 2] = layout[pos:pos + 2]
                    pos += 2
    assert pos == layout.size
    np.testing.assert_array_equal(back[:out_c, :, :k_w], w.reshape(out_c, k_h, k_w))
    assert not back[out_c:].any() and not back[:, :, k_w:].any()


@pytest.mark.parametrize("units, depth", [(4, 16), (7, 462), (12, 13), (3, 5), (8, 4000)])
def test_fc_weight_layout_roundtrip(units: int, depth: int) -> None:
    """Replays kws_fc_s8's reads: 4-unit blocks interleaved per input word, then tail bytes, then rows."""
    w = np.random.default_rng(3).integers(-128, 128, (units, depth)).astype(np.int8)
    flat = codegen.fc_weight_layout(w)
    assert flat.dtype == np.int8 and flat.size == w.size
    back = np.zeros_like(w)
    pos, groups = 0, depth // 4
    for u in range(0, units - units % 4, 4):
        for g in range(groups):
            for i in range(4):
                back[u + i, 4 * g:4 * g + 4] = flat[pos:pos + 4]
                pos += 4
        for t in range(depth % 4):
            back[u:u + 4, 4 * groups + t] = flat[pos:pos + 4]
            pos += 4
    for u in range(units - units % 4, units):
        back[u] = flat[pos:pos + depth]
        pos += depth
    np.testing.assert_array_equal(back, w)


def test_short_requant_proof() -> None:
    """codegen.short_requant_ok: only right shifts 1..30, no overflow of 2 * |acc| or the rounding constant."""
    w = np.ones((2, 10, 8, 1), dtype=np.int32)
    bias, mult = np.array([100, -100]), np.array([1 << 30, (1 << 31) - 1])
    assert codegen.short_requant_ok(bias, w, mult, np.array([-5, -9]), -128)
    assert not codegen.short_requant_ok(bias, w, mult, np.array([0, -9]), -128)  # no right shift
    assert not codegen.short_requant_ok(bias, w, mult, np.array([1, -9]), -128)  # left shift
    assert not codegen.short_requant_ok(bias, w, mult, np.array([-31, -9]), 0)
    assert not codegen.short_requant_ok(np.array([1 << 30, 0]), w, mult, np.array([-5, -9]), 0)  # 2|acc| >= 2^31
    assert not codegen.short_requant_ok(bias, w, mult, np.array([-24, -9]), -128)  # zp * 2^24 too close to 2^31


REQUANT_CHECK_C = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "kws_arith.h"

static uint64_t s = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return (uint32_t)(s >> 16); }

int main(int argc, char **argv) {
    long n = 0, bad = 0, halves = 0;
    const long cases = argc > 1 ? atol(argv[1]) : 4000000;
    for (long i = 0; i < cases; ++i) {
        const int32_t right = 1 + (int32_t)(rnd() % 22);          /* 1..22 */
        const int32_t m = (int32_t)((1u << 30) + (rnd() & 0x3FFFFFFFu));
        const int32_t zp = (int32_t)(rnd() % 256) - 128;
        /* |acc| < 2^30 (the proof); small ones often, so exact halves and the clamp edges occur */
        const uint32_t r = rnd();
        const int32_t mag = (r & 3) == 0 ? 0x3FFFFFFF : (r & 3) == 1 ? 0xFFFFF : (r & 3) == 2 ? 0x3FFF : 0xFF;
        int32_t acc = (int32_t)(rnd() & (uint32_t)mag);
        if (rnd() & 1) acc = -acc;
        const int32_t mask = (int32_t)((1u << right) - 1);
        const int8_t want = kws_requant_ch(acc, m, 0, right, mask, zp, -128, 127);
        const int32_t add = (1 << (right - 1)) + zp * (1 << right);
        const int8_t got = (int8_t)kws_ssat8(kws_requant_short(2 * acc, m, add, right));
        const int32_t x = kws_srdhm(acc, m);
        halves += (x & mask) == (1 << (right - 1));
        bad += want != got;
        ++n;
    }
    printf("%ld %ld %ld\n", n, bad, halves);
    return 0;
}
"""


def _host_program(tmp_path: Path, name: str, source: str) -> Path:
    """``source`` compiled for the host against the runtime's headers (skips without a C compiler)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no host C compiler")
    (tmp_path / f"{name}.c").write_text(source)
    exe = tmp_path / name
    subprocess.run([cc, "-O2", "-std=c99", "-I", str(codegen.RUNTIME_DIR), str(tmp_path / f"{name}.c"), "-o", str(exe)],
                   check=True, capture_output=True)
    return exe


def test_short_requant_equals_general_on_millions_of_cases(tmp_path: Path) -> None:
    """kws_requant_short (SMMULR form) against kws_requant_ch (TFLite's double rounding), 4 M random cases."""
    exe = _host_program(tmp_path, "check", REQUANT_CHECK_C)
    n, bad, halves = map(int, subprocess.run([str(exe), "4000000"], capture_output=True, text=True,
                                             check=True).stdout.split())
    assert n == 4_000_000 and halves > 10_000  # exact halves (the rounding corner) are exercised
    assert bad == 0, f"{bad} of {n} short requantizations differ from the general path"


TFLITE_REQUANT_C = r"""
#include <stdint.h>
#include <stdio.h>
#include "kws_arith.h"

static uint64_t s = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return (uint32_t)(s >> 16); }

int main(void) {
    for (int i = 0; i < 20000; ++i) {
        const uint32_t r = rnd();
        int32_t acc = (int32_t)(rnd() ^ rnd() << 16);
        if (r & 1) acc >>= r >> 27;  /* small ones too */
        if ((r & 0xF0) == 0) acc = (r & 0x100) ? INT32_MIN : INT32_MAX;
        const int32_t m = (r & 0xF00) == 0 ? 0 : (int32_t)((1u << 30) + (rnd() & 0x3FFFFFFFu));
        const int32_t shift = (int32_t)(rnd() % 40) - 31; /* -31 .. 8 */
        const int32_t zp = (int32_t)(rnd() % 256) - 128, lo = (int32_t)(rnd() % 128) - 128, hi = lo + (int32_t)(rnd() % (128 - lo));
        printf("%ld %ld %ld %ld %ld %ld %d\n", (long)acc, (long)m, (long)shift, (long)zp, (long)lo, (long)hi,
               kws_requant(acc, m, shift, zp, lo, hi));
    }
    return 0;
}
"""


def test_tflite_requant_equals_the_c_kernel(tmp_path: Path) -> None:
    """codegen.tflite_requant (the folded constant of an all-zero channel) is kws_requant's integer
    arithmetic, on 20,000 random cases with accumulators over the whole int32 range."""
    exe = _host_program(tmp_path, "r", TFLITE_REQUANT_C)
    rows = [list(map(int, line.split())) for line in
            subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()]
    assert len(rows) == 20000
    bad = [r for r in rows if codegen.tflite_requant(*r[:6]) != r[6]]
    assert not bad, f"{len(bad)} differ, first {bad[0]}"
    assert len({r[6] for r in rows}) > 200  # not only clamped values


def _step(i: int, o: int, scratch: int = 0, alias: bool = False) -> codegen._Step:
    return codegen._Step("OP", "", "f({in}, {out}, {scratch});", i, o, scratch_bytes=scratch, alias=alias)


def test_arena_planner_reuses_dead_buffers_and_aliases_reshape() -> None:
    # 0 -> A(100) -> B(50) -> C(100) -> reshape D -> E(8) (graph output 5)
    steps = [_step(0, 1, scratch=30), _step(1, 2), _step(2, 3), _step(3, 4, alias=True), _step(4, 5)]
    sizes = {0: 10, 1: 100, 2: 50, 3: 100, 4: 100, 5: 8}
    offsets, calls, arena = codegen._plan_arena(steps, 0, 5, sizes)
    assert len(calls) == 4  # the reshape emits no code
    assert calls[0].startswith("f(input, (kws_arena + ") and calls[-1].endswith("output, (int8_t *)0);")
    assert calls[3].startswith(f"f((kws_arena + {offsets[3]})")  # reads C through the alias
    # live-together buffers never overlap: (A, scratch0), (A, B), (B, C)
    spans = {"A": (offsets[1], 100), "S": (offsets[-1], 30), "B": (offsets[2], 50), "C": (offsets[3], 100)}
    for x, y in (("A", "S"), ("A", "B"), ("B", "C")):
        (ox, sx), (oy, sy) = spans[x], spans[y]
        assert ox + sx <= oy or oy + sy <= ox, (x, y, spans)
    assert offsets[3] == offsets[1]  # C reuses A's space once A is dead
    assert arena == 152  # 100 + 50 rounded to 4


def test_model_id_is_checked(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="model id"):
        codegen.generate(tmp_path / "x.tflite", tmp_path, 'bad"\nid')


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")
def test_runtime_compiles_warning_free_for_cortex_m4(tmp_path: Path) -> None:
    """The DSP path (SXTB16/SMLAD intrinsics) must build for the board with -Wall -Wextra -Werror."""
    for src in codegen.runtime_sources():
        cmd = ["arm-none-eabi-gcc", "-std=c99", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
               "-mfpu=fpv4-sp-d16", "-O2", "-Wall", "-Wextra", "-Werror", "-c", str(src),
               "-o", str(tmp_path / (src.stem + ".o"))]
        result = subprocess.run(cmd, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(tmp_path / (src.stem + ".o"))],
                             capture_output=True, text=True).stdout
        if src.stem in ("kws_conv", "kws_fc"):
            assert "smlad" in dis and "sxtb16" in dis, f"{src.name} does not use the DSP instructions"
        if src.stem == "kws_fc":
            assert "ldmia" in dis, "kws_fc.c: the 4-unit loop should fetch its weights with one LDM"
