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
