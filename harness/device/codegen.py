"""Ahead-of-time compiler: an int8 .tflite becomes C (weights in flash, a static arena, kernel calls).

Why: the board runs the exact network the harness exported, with no interpreter, no op resolver
and no malloc, and every number TFLM computes at Prepare time (multipliers, shifts, activation
ranges, padding, softmax parameters) is computed here once, in Python, with the same formulas,
so the C kernels in ``firmware/lib/kws_runtime`` only do integer arithmetic. The outputs are bit
for bit those of the TFLM reference kernels (tests/test_codegen_exact.py checks it).

``generate`` writes ``kws_model_data.c`` / ``kws_model_data.h`` into a directory;
``build_native_library`` compiles them with the runtime into a host shared library (cached by
content hash) and ``native_predict`` runs it through ctypes, which is how the test suites check
bit-exactness of every variant without a board.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import tflite_info
from harness.cache import artifact_dir, atomic_write_text, content_hash
from harness.errors import HarnessError
from harness.paths import FIRMWARE_DIR

RUNTIME_DIR = FIRMWARE_DIR / "lib" / "kws_runtime"
SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX")
BACKENDS = ("aot", "ref")  # fast kernels / TFLM-reference-style loops (kws_ref.c), same generator
_ALIGN = 4  # arena offsets; kernels load words through memcpy, so 4 is enough for LDR
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}


@dataclass(frozen=True)
class GeneratedModel:
    """What ``generate`` wrote and what it costs: sources, ops in order, arena/weight bytes, MACs."""

    dir: Path
    sources: tuple[Path, ...]  # generated C files (compile with runtime_sources())
    header: Path
    model_id: str
    ops: tuple[str, ...]
    arena_bytes: int
    weight_bytes: int  # constant arrays emitted into flash (weights, biases, multipliers, shifts)
    macs: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    op_macs: tuple[int, ...] = field(default=())
    backend: str = "aot"
    weight_formats: tuple[str, ...] = field(default=())  # per CONV_2D / FULLY_CONNECTED: "int8", "4bit", ...

    def summary(self) -> dict[str, Any]:
        return {"dir": str(self.dir), "model_id": self.model_id, "ops": list(self.ops), "backend": self.backend,
                "weight_formats": list(self.weight_formats),
                "arena_bytes": self.arena_bytes, "weight_bytes": self.weight_bytes, "macs": self.macs,
                "op_macs": list(self.op_macs), "input_shape": list(self.input_shape),
                "output_shape": list(self.output_shape)}


# ----------------------------------------------------------------------------- TFLite arithmetic


def _round_half_away(x: float) -> int:
    """std::round / TfLiteRound: halves go away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplier: real = m * 2^(shift - 31) with m a Q0.31 int32 (frexp-based)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), int(shift)


def activation_range(activation: int, scale: float, zero_point: int, where: str) -> tuple[int, int]:
    """tflite::CalculateActivationRangeQuantized for int8 (f / scale in float32, then round)."""
    if activation not in _ACTIVATIONS:
        raise HarnessError(f"{where}: fused activation {activation} is not supported by the kws runtime")

    def quantize(f: float) -> int:
        return zero_point + _round_half_away(float(np.float32(f) / np.float32(scale)))

    name = _ACTIVATIONS[activation]
    if name == "RELU":
        return max(-128, quantize(0.0)), 127
    if name == "RELU6":
        return max(-128, quantize(0.0)), min(127, quantize(6.0))
    if name == "RELU_N1_TO_1":
        return max(-128, quantize(-1.0)), min(127, quantize(1.0))
    return -128, 127


def _same_or_valid_padding(padding: int, stride: int, dilation: int, in_size: int, k: int,
                           out_size: int) -> int:
    """tflite::ComputePaddingHeightWidth: the leading (top/left) padding."""
    if padding == 1:  # VALID
        return 0
    effective = (k - 1) * dilation + 1
    pad = ((out_size - 1) * stride + effective - in_size) // 2
    return max(pad, 0)


def _expected_out(padding: int, stride: int, dilation: int, in_size: int, k: int) -> int:
    effective = (k - 1) * dilation + 1
    if padding == 0:
        return (in_size + stride - 1) // stride
    return (in_size + stride - effective) // stride


# ----------------------------------------------------------------------------- C emission helpers


def _c_array(ctype: str, name: str, values: np.ndarray, per_line: int = 24) -> str:
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    lines = [", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line)] or ["0"]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{max(len(flat), 1)}] KWS_ALIGNED = {{\n    {body}\n}};\n"


def _c_struct(ctype: str, name: str, fields: dict[str, Any]) -> str:
    body = "\n".join(f"    .{k} = {v}," for k, v in fields.items())
    return f"static const {ctype} {name} = {{\n{body}\n}};\n"


def _channel_q_array(name: str, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> str:
    """kws_channel_q_t[] rows {bias, multiplier, left_shift, right_shift, round_mask} per channel."""
    rows = []
    for b, m, s in zip(bias.tolist(), mult.tolist(), shift.tolist()):
        left, right = max(s, 0), max(-s, 0)
        rows.append(f"    {{{b}, {m}, {left}, {right}, {(1 << right) - 1}}},")
    return f"static const kws_channel_q_t {name}[{len(rows)}] = {{\n" + "\n".join(rows) + "\n};\n"


@dataclass
class _Step:
    """One lowered op: C declarations, the call (with placeholders for buffers), costs."""

    op: str
    decls: str
    call: str  # format string with {in}, {out} and optionally {scratch}
    in_tensor: int
    out_tensor: int
    macs: int = 0
    const_bytes: int = 0
    scratch_bytes: int = 0
    alias: bool = False  # RESHAPE: output shares the input's storage


class _Lowering:
    """Turns each supported op into a _Step; everything TFLM does in Prepare happens here."""

    def __init__(self, model: tflite_info.TfliteModel, where: str, backend: str = "aot", general_only: bool = False,
                 pack: bool = True):
        self.m = model
        self.pack = pack  # store weights with few levels per channel as 2/4/6-bit codes + tables
        self.packing: dict[str, int] = {}  # op prefix -> bits per stored weight (8: int8 as exported)
        self.sparse_alt: dict[str, tuple[_Step, int, str]] = {}  # op prefix -> (sparse step, extra time, name)
        self.where = where
        self.backend = backend
        self.general_only = general_only  # tests: force the general kernels where a fast path applies

    def err(self, op: tflite_info.OpInfo, msg: str) -> HarnessError:
        return HarnessError(f"{self.where}: op {op.index} {op.name}: {msg}")

    def tensor(self, index: int) -> tflite_info.TensorInfo:
        return self.m.tensors[index]

    def int8_activation(self, op: tflite_info.OpInfo, index: int, what: str) -> tflite_info.TensorInfo:
        t = self.tensor(index)
        if t.is_constant:
            raise self.err(op, f"{what} tensor {t.name!r} is constant; the kws runtime expects an activation")
        if t.dtype != "INT8":
            raise self.err(op, f"{what} tensor {t.name!r} is {t.dtype}; the kws runtime runs int8 models only")
        if len(t.scales) != 1 or len(t.zero_points) != 1:
            raise self.err(op, f"{what} tensor {t.name!r} needs per-tensor quantization")
        return t

    def weights(self, op: tflite_info.OpInfo, index: int, channels: int, axis: int) -> tuple[np.ndarray, list[float]]:
        t = self.tensor(index)
        if not t.is_constant or t.dtype != "INT8":
            raise self.err(op, f"weights {t.name!r} must be constant int8, found {t.dtype}"
                               f"{'' if t.is_constant else ' (not constant)'}")
        if any(z != 0 for z in t.zero_points):
            raise self.err(op, f"weights {t.name!r} have a non-zero zero point; int8 weights must be symmetric")
        scales = list(t.scales)
        if len(scales) == 1:
            scales = scales * channels
        elif len(scales) != channels or t.quantized_dimension != axis:
            raise self.err(op, f"weights {t.name!r} have {len(scales)} scales on axis {t.quantized_dimension}, "
                               f"expected 1 or {channels} on axis {axis}")
        return t.data.astype(np.int32), scales

    def bias(self, op: tflite_info.OpInfo, channels: int) -> np.ndarray:
        if len(op.inputs) < 3 or op.inputs[2] < 0:
            return np.zeros(channels, dtype=np.int64)
        t = self.tensor(op.inputs[2])
        if not t.is_constant or t.dtype != "INT32" or t.data.size != channels:
            raise self.err(op, f"bias {t.name!r} must be constant int32 with {channels} values, found {t.dtype}")
        return t.data.astype(np.int64).reshape(-1)

    @staticmethod
    def int32(values: np.ndarray, what: str, where: str) -> np.ndarray:
        v = np.asarray(values, dtype=np.int64)
        if v.size and (v.min() < -(1 << 31) or v.max() >= (1 << 31)):
            raise HarnessError(f"{where}: {what} overflows int32")
        return v.astype(np.int32)

    # --- ops ---

    def _conv_operands(self, op: tflite_info.OpInfo, channel_axis: int) -> tuple[Any, Any, np.ndarray, np.ndarray]:
        """Input and output tensors (int8, input [1, H, W, C]) and the per-output-channel weights of a
        CONV_2D (channels on axis 0) or DEPTHWISE_CONV_2D (axis 3)."""
        x = self.int8_activation(op, op.inputs[0], "input")
        y = self.int8_activation(op, op.outputs[0], "output")
        if len(x.shape) != 4 or x.shape[0] != 1:
            raise self.err(op, f"input shape {x.shape} must be [1, H, W, C]")
        w, w_scales = self.weights(op, op.inputs[1], y.shape[3], channel_axis)
        return x, y, w, w_scales

    def conv_2d(self, op: tflite_info.OpInfo, k: int) -> _Step:
        o = op.options
        x, y, w, w_scales = self._conv_operands(op, channel_axis=0)
        _, in_h, in_w, in_c = x.shape
        _, out_h, out_w, out_c = y.shape
        oc, k_h, k_w, ic = w.shape
        if oc != out_c or ic != in_c:
            raise self.err(op, f"filter shape {w.shape} does not fit input {x.shape} / output {y.shape}")
        dil_h, dil_w = int(o.get("dilationHFactor", 1)), int(o.get("dilationWFactor", 1))
        if (dil_h, dil_w) != (1, 1):
            raise self.err(op, f"dilation {dil_h}x{dil_w} is not supported by the kws runtime (only 1)")
        s_h, s_w, padding = int(o["strideH"]), int(o["strideW"]), int(o["padding"])
        if (_expected_out(padding, s_h, 1, in_h, k_h), _expected_out(padding, s_w, 1, in_w, k_w)) != (out_h, out_w):
            raise self.err(op, f"output shape {y.shape} does not follow from input {x.shape}, filter {w.shape}")
        pad_top = _same_or_valid_padding(padding, s_h, 1, in_h, k_h, out_h)
        pad_left = _same_or_valid_padding(padding, s_w, 1, in_w, k_w, out_w)
        padded_h, padded_w = (out_h - 1) * s_h + k_h, (out_w - 1) * s_w + k_w
        needs_pad = pad_top > 0 or pad_left > 0 or padded_h > in_h or padded_w > in_w
        in_zp, out_zp = x.zero_points[0], y.zero_points[0]
        mult, shift = self._per_channel(x.scales[0], w_scales, y.scales[0])
        act_min, act_max = activation_range(int(o.get("fusedActivationFunction", 0)), y.scales[0], out_zp,
                                            f"{self.where}: op {op.index} {op.name}")
        macs = out_h * out_w * out_c * k_h * k_w * in_c
        p = f"op{k}"
        if self.backend == "ref":
            raw_bias = self.int32(self.bias(op, out_c), "bias", self.where)
            arrays = (_c_array("int8_t", f"{p}_weights", w) + _c_array("int32_t", f"{p}_bias", raw_bias)
                      + _c_array("int32_t", f"{p}_mult", mult) + _c_array("int32_t", f"{p}_shift", shift))
            fields = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h, k_w=k_w,
                          stride_h=s_h, stride_w=s_w, pad_top=pad_top, pad_left=pad_left, input_offset=-in_zp,
                          output_zp=out_zp, act_min=act_min, act_max=act_max, weights=f"{p}_weights",
                          bias=f"{p}_bias", multiplier=f"{p}_mult", shift=f"{p}_shift")
            return _Step(op.name, arrays + _c_struct("kws_ref_conv2d_t", p, fields),
                         f"kws_ref_conv2d_s8(&{p}, {{in}}, {{out}});", op.inputs[0], op.outputs[0],
                         macs=macs, const_bytes=w.size + out_c * 12)
        # Fold the input offset: sum w * (x - zp) = sum w * x - zp * sum w (padding holds zp).
        bias = self.bias(op, out_c) - in_zp * w.reshape(out_c, -1).sum(axis=1)
        if conv_fast_applies(in_c, s_w) and not self.general_only:
            return self.conv_2d_fast(op, p, w, bias, mult, shift, macs,
                                     dict(in_h=in_h, in_w=in_w, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h,
                                          k_w=k_w, stride_h=s_h, pad_top=pad_top, pad_left=pad_left,
                                          input_zp=in_zp, output_zp=out_zp, act_min=act_min, act_max=act_max))
        layout = conv_weight_layout(w)
        words = layout.astype("<i2").view("<u4")  # (w0, w2) and (w1, w3) pairs, one SMLAD operand each
        arrays = (_c_array("uint32_t", f"{p}_weights", words)
                  + _channel_q_array(f"{p}_channels", self.int32(bias, "folded bias", self.where), mult, shift))
        fields = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h, k_w=k_w,
                      stride_h=s_h, stride_w=s_w, pad_top=pad_top, pad_left=pad_left,
                      padded_h=padded_h if needs_pad else 0, padded_w=padded_w if needs_pad else 0,
                      k_padded=conv_k_padded(w),
                      input_zp=in_zp, output_zp=out_zp, act_min=act_min, act_max=act_max,
                      weights=f"{p}_weights", channels=f"{p}_channels")
        return _Step(op.name, arrays + _c_struct("kws_conv2d_t", p, fields),
                     f"kws_conv2d_s8(&{p}, {{in}}, {{out}}, {{scratch}});", op.inputs[0], op.outputs[0],
                     macs=macs, const_bytes=layout.size * 2 + out_c * 20,
                     scratch_bytes=conv_k_padded(w) + (padded_h * padded_w * in_c if needs_pad else 0))

    def conv_2d_fast(self, op: tflite_info.OpInfo, p: str, w: np.ndarray, bias: np.ndarray, mult: np.ndarray,
                     shift: np.ndarray, macs: int, g: dict[str, int]) -> _Step:
        """kws_conv2d_fast_s8: int16-expanded input, 2 positions x 4 channels per block (see kws_conv_fast.c)."""
        out_c, k_h, k_w, out_w, out_h = g["out_c"], g["k_h"], g["k_w"], g["out_w"], g["out_h"]
        pairs = (k_w + 1) // 2
        row_q = 2 * (out_w + (out_w & 1) - 1) + 2 * pairs
        rows_q = (out_h - 1) * g["stride_h"] + k_h
        # A channel whose weights are all zero (a quantized or pruned-away filter) outputs one constant;
        # the converter gives it a tiny scale and a huge bias, which alone would rule out the short
        # requantization for the whole layer. Its constant is folded in (bias 0, add = 2 * c, right 1).
        dead = ~w.reshape(out_c, -1).any(axis=1)
        live = ~dead
        short_q = short_requant_ok(bias[live], w[live], mult[live], shift[live], g["output_zp"])
        scale = 2 if short_q else 1
        if short_q and dead.any():
            const = {c: tflite_requant(int(bias[c]), int(mult[c]), int(shift[c]), g["output_zp"], g["act_min"],
                                       g["act_max"]) for c in np.flatnonzero(dead).tolist()}
            bias = np.where(dead, 0, bias)
        packed = conv_fast_weight_layout(w * scale)
        oc_pad = out_c + (out_c & 1)
        rows = []
        for c in range(oc_pad):  # kws_fast_q_t {multiplier, add, right, bias}
            if c >= out_c:
                rows.append("    {0, 0, 0, 0},")
                continue
            b, m, sh = int(bias[c]) * scale, int(mult[c]), int(shift[c])
            if short_q and dead[c]:  # (0 + 2c + 0) >> 1 = c
                rows.append(f"    {{0, {2 * const[c]}, 1, 0}},")
            elif short_q:
                right = -sh
                rows.append(f"    {{{m}, {(1 << (right - 1)) + g['output_zp'] * (1 << right)}, {right}, {b}}},")
            else:
                rows.append(f"    {{{m}, {max(sh, 0)}, {max(-sh, 0)}, {b}}},")
        self.int32(np.asarray(bias, dtype=np.int64) * scale, "folded bias", self.where)
        consts = f"static const kws_fast_q_t {p}_channels[{oc_pad}] = {{\n" + "\n".join(rows) + "\n};\n"
        full_range = (g["act_min"], g["act_max"]) == (-128, 127)
        fused = short_q and full_range and out_w % 2 == 0
        last_c = (oc_pad - 1) // 4 * 4
        if fused:  # one generated function per pair of output positions, all channels
            fns = {"full": f"kws_gen_{p}_pair"}
            asm = conv_pair_asm(fns["full"], out_c, k_h, pairs, row_q)
        else:  # generated dot products, C requantization
            fns = {"last": f"kws_gen_{p}_dot{oc_pad - last_c}"}
            if last_c:
                fns["full"] = f"kws_gen_{p}_dot4"
            asm = "".join(conv_dot_asm(name, int(name[-1]), k_h, pairs, row_q) for name in sorted(set(fns.values())))
        protos = "".join(f"void {name}(const int16_t *x, const uint32_t *w, void *acc_or_q, int8_t *out);\n"
                         for name in sorted(set(fns.values())))
        ids = conv_fast_channel_ids(out_c, k_h, pairs)
        pk = pack_weights(conv_fast_weight_layout(w), ids, oc_pad) if self.pack else None  # tables unscaled
        if pk is not None and pk[0] > 4:
            pk = None  # 6 bits save a few hundred bytes here but cost ~2 % of TinyConv's time: keep int16
        if pk is None:
            weight_decl, bits, w_bytes, dec_bytes = _c_array("uint32_t", f"{p}_weights", packed.astype("<i2").view("<u4")), 0, packed.size * 2, 0
        else:
            bits, codes, tables = pk
            if codes.size + tables.size >= packed.size * 2:
                pk, bits = None, 0
        if pk is None:
            weight_decl, bits, w_bytes, dec_bytes = _c_array("uint32_t", f"{p}_weights", packed.astype("<i2").view("<u4")), 0, packed.size * 2, 0
        else:
            weight_decl = (_c_array("uint8_t", f"{p}_packed", codes) + _c_array("int8_t", f"{p}_tables", tables))
            w_bytes, dec_bytes = codes.size + tables.size, packed.size * 2
        self.packing[p] = bits or 8
        decls = (weight_decl + consts
                 + f"#if KWS_USE_DSP && defined(__thumb2__)\n{asm}{protos}"
                 + "".join(f"#define {p}_DOT_{k.upper()} {v}\n" for k, v in fns.items())
                 + "#endif\n" + "".join(f"#ifndef {p}_DOT_{k}\n#define {p}_DOT_{k} 0\n#endif\n" for k in ("FULL", "LAST")))
        fields = dict(in_h=g["in_h"], in_w=g["in_w"], out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h, pairs=pairs,
                      stride_h=g["stride_h"], pad_top=g["pad_top"], pad_left=g["pad_left"], rows_q=rows_q,
                      row_q=row_q, short_q=int(short_q), full_range=int(full_range), fused=int(fused),
                      input_zp=g["input_zp"], output_zp=g["output_zp"], act_min=g["act_min"], act_max=g["act_max"],
                      weights=f"{p}_weights" if not bits else "0", channels=f"{p}_channels", bits=bits,
                      packed=f"{p}_packed" if bits else "0", tables=f"{p}_tables" if bits else "0",
                      dot_full=f"{p}_DOT_FULL",
                      dot_last=f"{p}_DOT_LAST")
        return _Step(op.name, decls + _c_struct("kws_conv2d_fast_t", p, fields),
                     f"kws_conv2d_fast_s8(&{p}, {{in}}, {{out}}, {{scratch}});", op.inputs[0], op.outputs[0],
                     macs=macs, const_bytes=w_bytes + oc_pad * 16, scratch_bytes=rows_q * row_q * 2 + dec_bytes)

    def depthwise_conv_2d(self, op: tflite_info.OpInfo, k: int) -> _Step:
        o = op.options
        x, y, w, w_scales = self._conv_operands(op, channel_axis=3)
        _, in_h, in_w, in_c = x.shape
        _, out_h, out_w, out_c = y.shape
        one, k_h, k_w, wc = w.shape
        if one != 1 or wc != out_c or out_c % in_c:
            raise self.err(op, f"filter shape {w.shape} does not fit input {x.shape} / output {y.shape}")
        dil_h, dil_w = int(o.get("dilationHFactor", 1)), int(o.get("dilationWFactor", 1))
        s_h, s_w, padding = int(o["strideH"]), int(o["strideW"]), int(o["padding"])
        if (_expected_out(padding, s_h, dil_h, in_h, k_h), _expected_out(padding, s_w, dil_w, in_w, k_w)) != (out_h, out_w):
            raise self.err(op, f"output shape {y.shape} does not follow from input {x.shape}, filter {w.shape}")
        mult, shift = self._per_channel(x.scales[0], w_scales, y.scales[0])
        out_zp = y.zero_points[0]
        act_min, act_max = activation_range(int(o.get("fusedActivationFunction", 0)), y.scales[0], out_zp,
                                            f"{self.where}: op {op.index} {op.name}")
        p = f"op{k}"
        arrays = (_c_array("int8_t", f"{p}_weights", w) + _c_array("int32_t", f"{p}_bias", self.int32(self.bias(op, out_c), "bias", self.where))
                  + _c_array("int32_t", f"{p}_mult", mult) + _c_array("int32_t", f"{p}_shift", shift))
        fields = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h, k_w=k_w,
                      stride_h=s_h, stride_w=s_w, dilation_h=dil_h, dilation_w=dil_w,
                      pad_top=_same_or_valid_padding(padding, s_h, dil_h, in_h, k_h, out_h),
                      pad_left=_same_or_valid_padding(padding, s_w, dil_w, in_w, k_w, out_w),
                      depth_multiplier=out_c // in_c, input_offset=-x.zero_points[0], output_zp=out_zp,
                      act_min=act_min, act_max=act_max,
                      weights=f"{p}_weights", bias=f"{p}_bias", multiplier=f"{p}_mult", shift=f"{p}_shift")
        return _Step(op.name, arrays + _c_struct("kws_depthwise_t", p, fields),
                     f"kws_depthwise_s8(&{p}, {{in}}, {{out}});", op.inputs[0], op.outputs[0],
                     macs=out_h * out_w * out_c * k_h * k_w, const_bytes=w.size + out_c * 12)

    def fully_connected(self, op: tflite_info.OpInfo, k: int) -> _Step:
        o = op.options
        x = self.int8_activation(op, op.inputs[0], "input")
        y = self.int8_activation(op, op.outputs[0], "output")
        if int(o.get("weightsFormat", 0)) != 0:
            raise self.err(op, "shuffled weights format is not supported by the kws runtime")
        wt = self.tensor(op.inputs[1])
        if len(wt.shape) != 2:
            raise self.err(op, f"weights shape {wt.shape} must be [units, depth]")
        units, depth = wt.shape
        w, w_scales = self.weights(op, op.inputs[1], units, 0)
        n_in = int(np.prod(x.shape))
        if n_in % depth or int(np.prod(y.shape)) != (n_in // depth) * units:
            raise self.err(op, f"input {x.shape} / output {y.shape} do not fit weights {wt.shape}")
        per_channel = len(self.tensor(op.inputs[1]).scales) > 1
        in_s, out_s = x.scales[0], y.scales[0]
        if per_channel:
            mult, shift = self._per_channel(in_s, w_scales, out_s)
        else:
            # tflite::GetQuantizedConvolutionMultipler multiplies the two scales in float32.
            real = float(np.float32(in_s) * np.float32(w_scales[0])) / float(out_s)
            m, s = quantize_multiplier(real)
            mult, shift = np.array([m], dtype=np.int32), np.array([s], dtype=np.int32)
        out_zp = y.zero_points[0]
        act_min, act_max = activation_range(int(o.get("fusedActivationFunction", 0)), out_s, out_zp,
                                            f"{self.where}: op {op.index} {op.name}")
        p = f"op{k}"
        if self.backend == "ref":
            arrays = (_c_array("int8_t", f"{p}_weights", w)
                      + _c_array("int32_t", f"{p}_bias", self.int32(self.bias(op, units), "bias", self.where))
                      + _c_array("int32_t", f"{p}_mult", mult) + _c_array("int32_t", f"{p}_shift", shift))
            fields = dict(batches=n_in // depth, depth=depth, units=units, input_offset=-x.zero_points[0],
                          output_zp=out_zp, act_min=act_min, act_max=act_max, per_channel=int(per_channel),
                          weights=f"{p}_weights", bias=f"{p}_bias", multiplier=f"{p}_mult", shift=f"{p}_shift")
            return _Step(op.name, arrays + _c_struct("kws_ref_fc_t", p, fields),
                         f"kws_ref_fc_s8(&{p}, {{in}}, {{out}});", op.inputs[0], op.outputs[0],
                         macs=(n_in // depth) * units * depth, const_bytes=w.size + units * 4 + mult.size * 8)
        bias = self.bias(op, units) - x.zero_points[0] * w.sum(axis=1)
        sparse = self.fc_sparse(op, p, w, bias, mult, shift, n_in // depth, units, depth, per_channel, out_zp,
                                 act_min, act_max) if self.pack else None
        wc = (weight_codes(w.reshape(-1), np.repeat(np.arange(units), depth), units)
              if self.pack and depth % 4 == 0 else None)
        pk = None
        if wc is not None:
            bits, tables = wc[0], wc[2]
            codes = fc_packed_layout(wc[1].reshape(units, depth), bits)
            pk = bits, codes, tables
        if pk is not None and sparse is not None and sparse[0].const_bytes < pk[1].size + pk[2].size + units * 4:
            pk = None  # sparse is smaller than the packed codes: offer it (generate() decides on time)
        if pk is not None and pk[1].size + pk[2].size >= w.size:
            pk = None  # tables would eat the saving (few weights per channel)
        if pk is not None:
            bits, codes, tables = pk
            self.packing[p] = bits
            arrays = (_c_array("uint8_t", f"{p}_packed", codes) + _c_array("int8_t", f"{p}_tables", tables)
                      + _c_array("int32_t", f"{p}_bias", self.int32(bias, "folded bias", self.where))
                      + _c_array("int32_t", f"{p}_mult", mult) + _c_array("int32_t", f"{p}_shift", shift))
            fields = dict(batches=n_in // depth, depth=depth, units=units, output_zp=out_zp, act_min=act_min,
                          act_max=act_max, per_channel=int(per_channel), bits=bits, packed=f"{p}_packed",
                          tables=f"{p}_tables", bias=f"{p}_bias", multiplier=f"{p}_mult", shift=f"{p}_shift")
            self.sparse_alt.pop(p, None)
            return _Step(op.name, arrays + _c_struct("kws_fc_packed_t", p, fields),
                         f"kws_fc_packed{bits}_s8(&{p}, {{in}}, {{out}}{'' if bits == 6 else ', {scratch}'});",
                         op.inputs[0], op.outputs[0],
                         macs=(n_in // depth) * units * depth,
                         scratch_bytes={2: 16 * 64 + 4 * 1024, 4: 2 * 1024, 6: 0}[bits],  # chunk / byte tables
                         const_bytes=codes.size + tables.size + units * 4 + mult.size * 8)
        self.packing[p] = 8
        arrays = (_c_array("int8_t", f"{p}_weights", fc_weight_layout(w)) + _c_array("int32_t", f"{p}_bias", self.int32(bias, "folded bias", self.where))
                  + _c_array("int32_t", f"{p}_mult", mult) + _c_array("int32_t", f"{p}_shift", shift))
        fields = dict(batches=n_in // depth, depth=depth, units=units, output_zp=out_zp, act_min=act_min,
                      act_max=act_max, per_channel=int(per_channel), weights=f"{p}_weights", bias=f"{p}_bias",
                      multiplier=f"{p}_mult", shift=f"{p}_shift")
        return _Step(op.name, arrays + _c_struct("kws_fc_t", p, fields), f"kws_fc_s8(&{p}, {{in}}, {{out}});",
                     op.inputs[0], op.outputs[0], macs=(n_in // depth) * units * depth,
                     const_bytes=w.size + units * 4 + mult.size * 8)

    def fc_sparse(self, op: tflite_info.OpInfo, p: str, w: np.ndarray, bias: np.ndarray, mult: np.ndarray,
                  shift: np.ndarray, batches: int, units: int, depth: int, per_channel: bool, out_zp: int,
                  act_min: int, act_max: int) -> tuple[_Step, int] | None:
        """The kws_fc_sparse_s8 step for these weights if it is smaller than int8, with its estimated
        extra instructions over the dense kernel (generate() keeps it when that stays small)."""
        # 4-bit position steps, or 8-bit ones where nonzeros are so far apart that fillers would dominate
        groups, steps, values, step_bits = min(
            (sparse_fc_encode(w, b) + (b,) for b in (4, 8)),
            key=lambda e: (e[1].size + e[2].size, int(e[0].sum())))
        nbytes = steps.size + values.size + groups.size * 2 + units * 4 + mult.size * 8
        dense_bytes = w.size + units * 4 + mult.size * 8
        if nbytes >= dense_bytes:
            return None
        extra = int(batches * (SPARSE_INSTR_PER_GROUP * int(groups.sum()) - DENSE_FC_INSTR_PER_MAC * w.size))
        arrays = (_c_array("uint16_t", f"{p}_groups", groups) + _c_array("uint8_t", f"{p}_steps", steps)
                  + _c_array("int8_t", f"{p}_values", values)
                  + _c_array("int32_t", f"{p}_bias", self.int32(bias, "folded bias", self.where))
                  + _c_array("int32_t", f"{p}_mult", mult) + _c_array("int32_t", f"{p}_shift", shift))
        fields = dict(batches=batches, depth=depth, units=units, output_zp=out_zp, act_min=act_min, act_max=act_max,
                      per_channel=int(per_channel), step_bits=step_bits, groups=f"{p}_groups", steps=f"{p}_steps",
                      values=f"{p}_values", bias=f"{p}_bias", multiplier=f"{p}_mult", shift=f"{p}_shift")
        step = _Step(op.name, arrays + _c_struct("kws_fc_sparse_t", p, fields), f"kws_fc_sparse_s8(&{p}, {{in}}, {{out}});",
                     op.inputs[0], op.outputs[0], macs=batches * units * depth, const_bytes=nbytes)
        nonzero = int((w != 0).sum())
        self.sparse_alt[p] = (step, extra, f"sparse {100 * nonzero / max(w.size, 1):.1f}% nonzero"
                                           + (", 8-bit steps" if step_bits == 8 else ""))
        return step, extra

    def softmax(self, op: tflite_info.OpInfo, k: int) -> _Step:
        x = self.int8_activation(op, op.inputs[0], "input")
        y = self.int8_activation(op, op.outputs[0], "output")
        if y.zero_points[0] != -128 or np.float32(y.scales[0]) != np.float32(1.0 / 256):
            raise self.err(op, f"output quantization ({y.scales[0]}, {y.zero_points[0]}) must be (1/256, -128)")
        beta = float(np.float32(op.options.get("beta", 1.0)))
        mult, left_shift, diff_min = softmax_params(beta, x.scales[0])
        depth = x.shape[-1]
        p = f"op{k}"
        fields = dict(rows=int(np.prod(x.shape)) // depth, depth=depth, input_multiplier=mult,
                      input_left_shift=left_shift, diff_min=diff_min)
        return _Step(op.name, _c_struct("kws_softmax_t", p, fields), f"kws_softmax_s8(&{p}, {{in}}, {{out}});",
                     op.inputs[0], op.outputs[0])

    def reshape(self, op: tflite_info.OpInfo, k: int) -> _Step:
        x = self.int8_activation(op, op.inputs[0], "input")
        y = self.int8_activation(op, op.outputs[0], "output")
        if int(np.prod(x.shape)) != int(np.prod(y.shape)):
            raise self.err(op, f"reshape {x.shape} -> {y.shape} changes the element count")
        if (x.scales[0], x.zero_points[0]) != (y.scales[0], y.zero_points[0]):
            raise self.err(op, "reshape changes quantization parameters")
        return _Step(op.name, "", f"memcpy({{out}}, {{in}}, {int(np.prod(x.shape))});", op.inputs[0],
                     op.outputs[0], alias=True)

    @staticmethod
    def _per_channel(in_s: float, w_scales: list[float], out_s: float) -> tuple[np.ndarray, np.ndarray]:
        """tflite::PopulateConvolutionQuantizationParams: input * filter / output in double."""
        pairs = [quantize_multiplier(float(in_s) * float(ws) / float(out_s)) for ws in w_scales]
        return np.array([m for m, _ in pairs], dtype=np.int32), np.array([s for _, s in pairs], dtype=np.int32)


def softmax_params(beta: float, input_scale: float, integer_bits: int = 5) -> tuple[int, int, int]:
    """tflite::PreprocessSoftmaxScaling + CalculateInputRadius: (multiplier, left shift, diff_min)."""
    real = min(beta * float(input_scale) * (1 << (31 - integer_bits)), float((1 << 31) - 1))
    mult, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise HarnessError(f"softmax input scale {input_scale} with beta {beta} is too small for the int8 kernel")
    radius = math.floor(((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << left_shift))
    return mult, left_shift, -radius


PACK_BITS = (2, 4, 6)
# Cortex-M4 instructions, measured on the emulated board: kws_fc_dot4_asm per MAC, kws_fc_sparse_s8 per
# group of 4 stored weights (21 in kws_fc_sparse4_asm's loop + the per-unit call; used to keep sparse
# FCs only where they cost little time).
DENSE_FC_INSTR_PER_MAC = 1.375
SPARSE_INSTR_PER_GROUP = 21.5
SPARSE_MAX_EXTRA = 0.025  # of the network's MACs: at 0.87 instructions/MAC, under 3 % of the network's time


def sparse_fc_encode(w: np.ndarray, step_bits: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FC rows as kws_fc_sparse_s8 reads them: (groups per unit, position steps, int8 values).

    Each unit's nonzeros in order, each with the step from the previous position (the first from 0);
    steps over the largest a step holds (15 for 4-bit steps, two to a byte LSB first; 255 for
    8-bit ones) go through zero-valued fillers, and zero-valued entries with step 0 fill the last
    group of 4.
    """
    top = (1 << step_bits) - 1
    groups, steps, values = [], [], []
    for row in np.asarray(w):
        st, va, pos = [], [], 0
        for i in np.flatnonzero(row).tolist():
            gap = i - pos
            while gap > top:
                st.append(top)
                va.append(0)
                gap -= top
            st.append(gap)
            va.append(int(row[i]))
            pos = i
        while len(st) % 4:
            st.append(0)
            va.append(0)
        groups.append(len(st) // 4)
        steps += st if step_bits == 8 else [st[k] | st[k + 1] << 4 for k in range(0, len(st), 2)]
        values += va
    return (np.array(groups, dtype=np.uint16), np.array(steps, dtype=np.uint8), np.array(values, dtype=np.int8))


def weight_codes(values: np.ndarray, channel: np.ndarray, n_channels: int) -> tuple[int, np.ndarray, np.ndarray] | None:
    """(b, codes, tables): each weight's index in its channel's sorted table of values, or None if
    8 bits are needed. b is the smallest of 2/4/6 with at most 2^b distinct values in every
    channel (``channel`` names each element's); tables are [n_channels, 2^b], zero-filled."""
    values, channel = np.asarray(values).reshape(-1), np.asarray(channel).reshape(-1)
    levels = [np.unique(values[channel == c]) for c in range(n_channels)]
    most = max((len(v) for v in levels), default=1)
    bits = next((b for b in PACK_BITS if most <= (1 << b)), None)
    if bits is None:
        return None
    tables = np.zeros((n_channels, 1 << bits), dtype=np.int64)
    codes = np.zeros(values.size, dtype=np.int64)
    for c, lv in enumerate(levels):
        tables[c, :len(lv)] = lv
        sel = channel == c
        codes[sel] = np.searchsorted(lv, values[sel])
    return bits, codes, tables


def pack_weights(values: np.ndarray, channel: np.ndarray, n_channels: int) -> tuple[int, np.ndarray, np.ndarray] | None:
    """Weights as b-bit codes + a per-channel table of their values, or None if 8 bits are needed.

    ``values`` is the weight stream in the order the kernel reads it (length a multiple of 4),
    ``channel`` the output channel of each element (see weight_codes); codes are packed LSB
    first (4 codes fill b/2 bytes). Decoding is a table lookup, exact.
    """
    if np.asarray(values).size % 4:
        return None
    wc = weight_codes(values, channel, n_channels)
    if wc is None:
        return None
    bits, codes, tables = wc
    bitpos = np.arange(codes.size) * bits
    stream = np.zeros((codes.size * bits + 7) // 8 + 1, dtype=np.int64)
    for k in range(bits):  # scatter each code bit into its byte
        bit = (codes >> k) & 1
        pos = bitpos + k
        np.add.at(stream, pos // 8, bit << (pos % 8))
    return bits, stream[:codes.size * bits // 8].astype(np.uint8), tables


def fc_packed_layout(codes: np.ndarray, bits: int) -> np.ndarray:
    """FC codes [units, depth] (depth % 4 == 0) as the bytes kws_fc_packed{2,4,6}_s8 read.

    2 bits: row-major, one byte per input word (code of input 4g + i in bits 2i). 4 bits: per
    input word the bytes (c0 | c2 << 4) and (c1 | c3 << 4), rows padded to whole words, the words
    of each unit pair interleaved (unit 0's, unit 1's, ...), a last odd unit's row after. 6 bits:
    per unit, every 4 input words in 3 words (word k: input word k's codes in bits 0-23, code k
    of input word 3 in bits 24-29, bits 2k, 2k+1 of its code 3 in bits 30-31), then one word
    (bits 0-23) per leftover input word.
    """
    units, depth = codes.shape
    groups = depth // 4
    c = np.asarray(codes, dtype=np.uint32).reshape(units, groups, 4)
    if bits == 2:
        return (c[:, :, 0] | c[:, :, 1] << 2 | c[:, :, 2] << 4 | c[:, :, 3] << 6).astype(np.uint8).reshape(-1)
    if bits == 4:
        b = np.stack([c[:, :, 0] | c[:, :, 2] << 4, c[:, :, 1] | c[:, :, 3] << 4], axis=2).reshape(units, -1)
        if groups % 2:
            b = np.concatenate([b, np.zeros((units, 2), dtype=np.uint32)], axis=1)
        words = b.reshape(units, -1, 4)
        parts = [words[u:u + 2].transpose(1, 0, 2).reshape(-1) for u in range(0, units - 1, 2)]
        parts += [words[units - 1].reshape(-1)] if units % 2 else []
        return np.concatenate(parts).astype(np.uint8)
    if bits != 6:
        raise ValueError(f"no FC layout for {bits}-bit codes")

    def four(g: np.ndarray) -> np.ndarray:
        return g[..., 0] | g[..., 1] << 6 | g[..., 2] << 12 | g[..., 3] << 18

    quads = groups // 4
    q = c[:, :quads * 4].reshape(units, quads, 4, 4)
    last = q[:, :, 3]
    words = np.stack([four(q[:, :, k]) | last[..., k] << 24 | ((last[..., 3] >> (2 * k)) & 3) << 30
                      for k in range(3)], axis=2).reshape(units, -1)
    rows = np.concatenate([words, four(c[:, quads * 4:])], axis=1)
    return rows.astype("<u4").view(np.uint8).reshape(-1)


def conv_fast_channel_ids(out_c: int, k_h: int, pairs: int) -> np.ndarray:
    """Output channel of each int16 of conv_fast_weight_layout (padding channels included)."""
    oc2, ids = out_c + (out_c & 1), []
    for c0 in range(0, oc2, 4):
        n = 4 if oc2 - c0 >= 4 else 2
        ids.append(np.tile(np.repeat(np.arange(c0, c0 + n), 2), k_h * pairs))
    return np.concatenate(ids)


def fc_weight_layout(w: np.ndarray) -> np.ndarray:
    """FULLY_CONNECTED weights [units, depth] in the order kws_fc_s8 reads them.

    Blocks of 4 units: for each group of 4 inputs the 4 units' 4 bytes, then for each of the
    depth % 4 tail inputs the 4 units' bytes; the units % 4 leftover rows follow row-major.
    """
    units, depth = w.shape
    groups, blocks = depth // 4, units // 4
    parts = []
    for b in range(blocks):
        blk = w[4 * b:4 * b + 4]
        parts.append(blk[:, :groups * 4].reshape(4, groups, 4).transpose(1, 0, 2).reshape(-1))
        parts.append(blk[:, groups * 4:].T.reshape(-1))
    parts.append(w[blocks * 4:].reshape(-1))
    return np.concatenate(parts).astype(np.int8)


def conv_fast_applies(in_c: int, stride_w: int) -> bool:
    """Shapes kws_conv2d_fast_s8 covers: one input channel, horizontal stride 2 (TinyConv)."""
    return in_c == 1 and stride_w == 2


def tflite_requant(acc: int, multiplier: int, shift: int, out_zp: int, act_min: int, act_max: int) -> int:
    """TFLite's int8 requantization of one accumulator (MultiplyByQuantizedMultiplier, double rounding,
    as TFLM builds it; kws_requant in kws_arith.h), then zero point and activation clamp."""
    left, right = max(shift, 0), max(-shift, 0)
    a = ((acc << left) + (1 << 31)) % (1 << 32) - (1 << 31)  # int32 wrap, as C
    if a == multiplier == -(1 << 31):
        x = (1 << 31) - 1
    else:
        x = (a * multiplier + (1 << 30)) >> 31  # SaturatingRoundingDoublingHighMul (floor form, see kws_arith.h)
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    v = (x >> right) + (1 if (x & mask) > threshold else 0) + out_zp
    return min(max(v, act_min), act_max)


def short_requant_ok(bias: np.ndarray, w: np.ndarray, mult: np.ndarray, shift: np.ndarray, out_zp: int) -> bool:
    """Whether kws_requant_short is exact for every accumulator this layer can produce.

    Inputs are int8, so |sum w * x| <= 128 * sum |w|; the doubled accumulator must stay below 2^31,
    every right shift must be 1..30 with no left shift, and the rounding constant plus the
    SMMULR result (|x| <= 2^30) must not overflow.
    """
    abs_w = np.abs(np.asarray(w, dtype=np.int64))
    bound = np.abs(np.asarray(bias, dtype=np.int64)) + 128 * abs_w.sum(axis=tuple(range(1, abs_w.ndim)))
    if (2 * bound >= (1 << 31)).any():
        return False
    for s in np.asarray(shift).tolist():
        if not -30 <= s <= -1:
            return False
        right = -s
        if abs((1 << (right - 1)) + out_zp * (1 << right)) >= (1 << 30) - 1:
            return False
    return bool((np.asarray(mult) >= 0).all())


def conv_fast_weight_layout(w: np.ndarray) -> np.ndarray:
    """CONV_2D weights [out_c, k_h, k_w, 1] as the int16 stream kws_conv2d_fast_s8 reads.

    k_w is padded to even and out_c to even with zeros; channels go in blocks of 4 (then one of 2);
    within a block, for each kernel row and tap pair (kx, kx+1), one int16 pair per channel.
    """
    out_c, k_h, k_w = w.shape[:3]
    kw2, oc2 = k_w + (k_w & 1), out_c + (out_c & 1)
    full = np.zeros((oc2, k_h, kw2), dtype=np.int16)
    full[:out_c, :, :k_w] = w.reshape(out_c, k_h, k_w)
    parts = []
    for c in range(0, oc2, 4):
        n = 4 if oc2 - c >= 4 else 2
        blk = full[c:c + n].reshape(n, k_h, kw2 // 2, 2)  # [ch, ky, pair, 2]
        parts.append(blk.transpose(1, 2, 0, 3).reshape(-1))  # ky, pair, ch, (lo, hi)
    return np.concatenate(parts)


def _dot_steps(nch: int, k_h: int, pairs: int, row_q: int) -> list[str]:
    """The unrolled multiply-accumulate of one block: input pairs from r12, weights from lr (post-increment)."""
    lines, base = [], 0
    for ky in range(k_h):
        for j in range(pairs):
            off = ky * row_q * 2 + j * 4
            if off - base > 1020:  # LDRD reaches 1020 bytes: move the base to this kernel row
                delta = ky * row_q * 2 - base
                lines += [f"movw r8, #{delta}", "add r12, r12, r8"]
                base += delta
            lines.append(f"ldrd r8, r9, [r12, #{off - base}]")
            for half in range(nch // 2):
                a = 4 * half
                lines += ["ldrd r10, r11, [lr], #8",
                          f"smlad r{a}, r10, r8, r{a}", f"smlad r{a + 1}, r10, r9, r{a + 1}",
                          f"smlad r{a + 2}, r11, r8, r{a + 2}", f"smlad r{a + 3}, r11, r9, r{a + 3}"]
    return lines


def _asm_function(name: str, lines: list[str]) -> str:
    head = [".pushsection .text." + name + ',\\"ax\\",%progbits', ".syntax unified", ".thumb", ".p2align 2",
            f".global {name}", ".thumb_func", f".type {name}, %function", f"{name}:"]
    tail = [f".size {name}, .-{name}", ".popsection"]
    return "__asm__(\n" + "".join(f'    "{line}\\n"\n' for line in head + lines + tail) + ");\n"


def conv_dot_asm(name: str, nch: int, k_h: int, pairs: int, row_q: int) -> str:
    """Thumb-2 code for one block of kws_conv2d_fast_s8 (kws_conv_dot_c's loop, fully unrolled).

    r0-r7 accumulators (channel c, position p in r(2c+p)), r8/r9 the two positions' input pair
    (one LDRD at an immediate offset from r12), r10/r11 two channels' weight pairs (LDRD with
    post-increment from lr). AAPCS: r0 = x, r1 = w, r2 = acc[2 * nch] (in: biases, out: sums).
    """
    acc_regs = "r0-r7" if nch == 4 else "r0-r3"
    return _asm_function(name, ["push {r2, r4-r11, lr}", "mov r12, r0", "mov lr, r1", f"ldm r2, {{{acc_regs}}}",
                                *_dot_steps(nch, k_h, pairs, row_q),
                                "ldr r8, [sp]", f"stm r8, {{{acc_regs}}}", "add sp, sp, #4", "pop {r4-r11, pc}"])


def conv_pair_asm(name: str, out_c: int, k_h: int, pairs: int, row_q: int) -> str:
    """Thumb-2 code for all channels of one pair of output positions, requantized and stored.

    AAPCS: r0 = x, r1 = weights, r2 = kws_fast_q_t[], r3 = out. Stack: [sp] blocks left,
    [sp+4] x, [sp+8] q, [sp+12] out; lr walks the weights across blocks. Full 4-channel blocks
    run in a loop, the last block (2 or 4 channels, maybe one padding channel, never stored)
    follows. Each block starts from its biases, runs _dot_steps, then per channel
    kws_requant_short (SMMULR, ADD x >> 31, ADD, ASR) and SSAT, storing position 0 at out[c]
    and position 1 at out[out_c + c].
    """
    oc_pad = out_c + (out_c & 1)
    last_c = (oc_pad - 1) // 4 * 4
    blocks = [(4, 4)] * (last_c // 4) + [(oc_pad - last_c, out_c - last_c)]
    tail = [] if blocks[-1] == (4, 4) else [blocks[-1]]
    loop_n = len(blocks) - len(tail)

    def block(nch: int, real: int) -> list[str]:
        lines = ["ldr r12, [sp, #4]", "ldr r8, [sp, #8]"]
        for c in range(nch):
            lines += [f"ldr r{2 * c}, [r8, #{16 * c + 12}]", f"mov r{2 * c + 1}, r{2 * c}"]
        lines += _dot_steps(nch, k_h, pairs, row_q)
        lines.append("ldrd r8, r9, [sp, #8]")
        for c in range(real):
            lines += ["ldmia r8!, {r10, r11, r12}", "add r8, r8, #4"]  # multiplier, add, right; skip bias
            for pos in range(2):
                r = f"r{2 * c + pos}"
                lines += [f"smmulr {r}, {r}, r10", f"add {r}, {r}, {r}, asr #31", f"add {r}, {r}, r11",
                          f"asr {r}, {r}, r12", f"ssat {r}, #8, {r}", f"strb {r}, [r9, #{pos * out_c + c}]"]
        return lines

    lines = ["push {r0, r2-r11, lr}", "mov lr, r1", "sub sp, sp, #4"]
    if loop_n:
        lines += [f"movs r8, #{loop_n}", "str r8, [sp]", "1:", *block(4, 4),
                  "add r9, r9, #4", "strd r8, r9, [sp, #8]",
                  "ldr r8, [sp]", "subs r8, r8, #1", "str r8, [sp]", "bne 1b"]
    for nch, real in tail:
        lines += block(nch, real)
    lines += ["add sp, sp, #16", "pop {r4-r11, pc}"]
    return _asm_function(name, lines)


def conv_k_padded(w: np.ndarray) -> int:
    """Patch length the conv kernel uses: k_h * k_w * in_c rounded up to 8 (two words per step)."""
    k = int(np.prod(w.shape[1:]))
    return -(-k // 8) * 8


def conv_weight_layout(w: np.ndarray) -> np.ndarray:
    """CONV_2D weights [out_c, k_h, k_w, in_c] as the int16 stream kws_conv2d_s8 reads.

    Each channel's flattened weights are zero-padded to ``conv_k_padded`` and cut into groups of 4
    ordered (w0, w2, w1, w3), so a word pair lines up with SXTB16(x) = (x0, x2) and
    SXTB16(x ror 8) = (x1, x3) of 4 patch bytes. Blocks of 4 channels interleave their groups
    (group g of channels c..c+3, then group g + 1); channels beyond the last full block follow one
    at a time.
    """
    out_c = w.shape[0]
    kp = conv_k_padded(w)
    flat = np.zeros((out_c, kp), dtype=np.int16)
    flat[:, :int(np.prod(w.shape[1:]))] = w.reshape(out_c, -1)
    groups = flat.reshape(out_c, kp // 4, 4)[:, :, [0, 2, 1, 3]]  # [out_c, groups, 4]
    blocks = out_c // 4
    parts = [groups[4 * b:4 * b + 4].transpose(1, 0, 2).reshape(-1) for b in range(blocks)]
    parts += [groups[c].reshape(-1) for c in range(blocks * 4, out_c)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


# ----------------------------------------------------------------------------- memory planning


def _plan_arena(steps: list[_Step], graph_in: int, graph_out: int,
                sizes: dict[int, int]) -> tuple[dict[int, int], list[str], int]:
    """Storage for every activation: the caller's input/output buffers or an arena offset.

    RESHAPE outputs alias their input (no code) unless they are the graph output. Arena buffers
    are placed greedily, largest first, at the lowest offset free during their lifetime (the
    scheme of TFLM's GreedyMemoryPlanner); an op's output never overlaps its own inputs.
    """
    root: dict[int, int] = {}

    def find(t: int) -> int:
        while t in root:
            t = root[t]
        return t

    calls: list[str] = []
    for step in steps:
        if step.alias and step.out_tensor != graph_out:
            root[step.out_tensor] = find(step.in_tensor)
    # Lifetimes of arena buffers (by root tensor) and per-op scratch (keyed by negative ids).
    life: dict[int, list[int]] = {}

    def touch(key: int, i: int) -> None:
        span = life.setdefault(key, [i, i])
        span[0], span[1] = min(span[0], i), max(span[1], i)

    buf_size: dict[int, int] = {}
    for i, step in enumerate(steps):
        for t in (step.in_tensor, step.out_tensor):
            r = find(t)
            if r in (graph_in, graph_out):
                continue
            touch(r, i)
            buf_size[r] = max(buf_size.get(r, 0), sizes[t])
        if step.scratch_bytes:
            touch(-(i + 1), i)
            buf_size[-(i + 1)] = step.scratch_bytes
    placed: list[tuple[int, int, int, int]] = []  # offset, size, start, end
    offsets: dict[int, int] = {}
    for key in sorted(buf_size, key=lambda k: (-buf_size[k], life[k][0])):
        size, (start, end) = buf_size[key], life[key]
        offset = 0
        for o, s, a, b in sorted(placed):
            if a <= end and start <= b and offset < o + s and o < offset + size:
                offset = -(-(o + s) // _ALIGN) * _ALIGN
        placed.append((offset, size, start, end))
        offsets[key] = offset
    arena = max((o + s for o, s, _, _ in placed), default=0)
    arena = -(-arena // _ALIGN) * _ALIGN

    def ref(t: int) -> str:
        r = find(t)
        if r == graph_in:
            return "input"
        if r == graph_out:
            return "output"
        return f"(kws_arena + {offsets[r]})"

    for i, step in enumerate(steps):
        if step.alias and step.out_tensor != graph_out:
            continue
        scratch = f"(kws_arena + {offsets[-(i + 1)]})" if step.scratch_bytes else "(int8_t *)0"
        calls.append(step.call.format(**{"in": ref(step.in_tensor), "out": ref(step.out_tensor), "scratch": scratch}))
    return offsets, calls, arena


# ----------------------------------------------------------------------------- generate


def _check_model_id(model_id: str) -> str:
    if not model_id or len(model_id) > 64 or not all(32 <= ord(ch) < 127 for ch in model_id):
        raise HarnessError(f"model id {model_id!r} must be 1-64 printable ASCII characters")
    return model_id


def _c_float(x: float) -> str:
    return f"{float(np.float32(x))!r}f"


def generate(tflite_path: Path | str, out_dir: Path | str, model_id: str, backend: str = "aot",
             general_only: bool = False, pack: bool = True) -> GeneratedModel:
    """Compile an int8 .tflite into ``kws_model_data.c`` and ``kws_model_data.h`` under ``out_dir``.

    ``backend`` "aot" emits the fast kernels, "ref" the TFLM-reference-style ones (kws_ref.c).
    """
    if backend not in BACKENDS:
        raise HarnessError(f"codegen: unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    tflite_path, out_dir = Path(tflite_path), Path(out_dir)
    model_id = _check_model_id(model_id)
    model = tflite_info.read(tflite_path)
    where = str(tflite_path)
    for op in model.ops:
        if op.name not in SUPPORTED_OPS:
            raise HarnessError(f"{where}: op {op.index} {op.name} is not supported by the kws runtime "
                               f"(supported: {', '.join(SUPPORTED_OPS)})")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise HarnessError(f"{where}: the kws runtime needs 1 input and 1 output, found "
                           f"{len(model.inputs)} and {len(model.outputs)}")
    for what, t in (("input", model.input), ("output", model.output)):
        if t.dtype != "INT8":
            raise HarnessError(f"{where}: model {what} tensor {t.name!r} is {t.dtype}; the kws runtime needs a full-int8 model")
    if not model.ops:
        raise HarnessError(f"{where}: the model has no operators")

    lower = _Lowering(model, where, backend, general_only, pack and backend == "aot")
    steps = [getattr(lower, op.name.lower())(op, k) for k, op in enumerate(model.ops)]
    produced = {model.inputs[0]}
    for op, step in zip(model.ops, steps):
        if step.in_tensor not in produced:
            raise HarnessError(f"{where}: op {op.index} {op.name} reads tensor {step.in_tensor} before it is computed")
        produced.add(step.out_tensor)
    if model.outputs[0] not in produced:
        raise HarnessError(f"{where}: no operator computes the model output")
    sizes = {t.index: int(np.prod(t.shape)) if t.shape else 1 for t in model.tensors}
    total_macs = sum(st.macs for st in steps)
    for k, op in enumerate(model.ops):  # sparse FCs: only where they cost little time
        alt = lower.sparse_alt.get(f"op{k}")
        if alt is not None and alt[1] <= SPARSE_MAX_EXTRA * total_macs:
            steps[k] = alt[0]
            lower.packing[f"op{k}"] = alt[2]
    _, calls, arena = _plan_arena(steps, model.inputs[0], model.outputs[0], sizes)

    macs = sum(s.macs for s in steps)
    weight_bytes = sum(s.const_bytes for s in steps)
    def storage(k: int) -> str:
        kind = lower.packing.get(f"op{k}", 8)
        return kind if isinstance(kind, str) else "int8" if kind == 8 else f"{kind}bit"

    formats = [f"op{k} {op.name} {storage(k)}" for k, op in enumerate(model.ops)
               if op.name in ("CONV_2D", "FULLY_CONNECTED")]
    in_t, out_t = model.input, model.output
    guard = "KWS_MODEL_DATA_H"
    header = f"""/* Generated by harness/device/codegen.py from {tflite_path.name}; do not edit. */
#ifndef {guard}
#define {guard}

#define KWS_MODEL_ID {json.dumps(model_id)}
#define KWS_MODEL_INPUT_SIZE {sizes[in_t.index]}
#define KWS_MODEL_OUTPUT_SIZE {sizes[out_t.index]}
#define KWS_MODEL_ARENA_BYTES {arena}
#define KWS_MODEL_WEIGHT_BYTES {weight_bytes}
#define KWS_MODEL_MACS {macs}
#define KWS_MODEL_BACKEND "{backend}"
#define KWS_MODEL_WEIGHT_FORMAT "{'; '.join(formats)}"
#define KWS_MODEL_INPUT_SCALE {_c_float(in_t.scales[0])}
#define KWS_MODEL_INPUT_ZERO_POINT ({in_t.zero_points[0]})
#define KWS_MODEL_OUTPUT_SCALE {_c_float(out_t.scales[0])}
#define KWS_MODEL_OUTPUT_ZERO_POINT ({out_t.zero_points[0]})

#endif /* {guard} */
"""
    arena_decl = (f"static int32_t kws_arena_words[{max(arena // 4, 1)}];\n"
                  f"#define kws_arena ((int8_t *)kws_arena_words)\n")
    body = "\n".join(f"    {c}" for c in calls)
    source = f"""/* Generated by harness/device/codegen.py from {tflite_path.name}; do not edit.
 * Backend {backend}. Ops: {', '.join(op.name for op in model.ops)}; {macs} MACs; arena {arena} bytes; constants {weight_bytes} bytes.
 */
#include <stdint.h>
#include <string.h>

#include "kws_arith.h"
#include "kws_model.h"
#include "kws_runtime.h"

const char kws_model_id[] = KWS_MODEL_ID;
const uint32_t kws_model_input_size = KWS_MODEL_INPUT_SIZE;
const uint32_t kws_model_output_size = KWS_MODEL_OUTPUT_SIZE;
const uint32_t kws_model_arena_bytes = KWS_MODEL_ARENA_BYTES;
const uint32_t kws_model_weight_bytes = KWS_MODEL_WEIGHT_BYTES;
const uint32_t kws_model_macs = KWS_MODEL_MACS;

/* Activations and scratch, reused across ops by lifetime (see codegen._plan_arena). */
{arena_decl}
{''.join(s.decls + chr(10) for s in steps if s.decls)}
int kws_model_invoke(const int8_t *input, int8_t *output) {{
{body}
    return 0;
}}
"""
    out_dir.mkdir(parents=True, exist_ok=True)
    h_path, c_path = out_dir / "kws_model_data.h", out_dir / "kws_model_data.c"
    atomic_write_text(h_path, header)
    atomic_write_text(c_path, source)
    return GeneratedModel(out_dir, (c_path,), h_path, model_id, tuple(op.name for op in model.ops), arena,
                          weight_bytes, macs, tuple(in_t.shape), tuple(out_t.shape), tuple(s.macs for s in steps),
                          backend, tuple(formats))


# ----------------------------------------------------------------------------- host build and run


def runtime_sources() -> list[Path]:
    """The runtime's C files (compile them together with a GeneratedModel's sources)."""
    return sorted(RUNTIME_DIR.glob("*.c"))


def runtime_fingerprint() -> str:
    """Hash of the generator and the runtime sources: a change to either invalidates generated builds."""
    return content_hash(Path(__file__), *sorted(RUNTIME_DIR.iterdir()))


def _host_cc() -> str:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")
    if not cc:
        raise HarnessError("no host C compiler found (install gcc or set CC) to build the native kws runtime")
    return cc


def build_native_library(tflite_path: Path | str, model_id: str = "model", cflags: tuple[str, ...] = (),
                         backend: str = "aot", general_only: bool = False, pack: bool = True) -> Path:
    """Host shared library of the generated model + runtime (gcc -O2 -shared), cached by content hash."""
    tflite_path = Path(tflite_path)
    if not tflite_path.is_file():
        raise HarnessError(f"cannot read .tflite {tflite_path}: no such file")
    key = content_hash(tflite_path, model_id, runtime_fingerprint(), list(cflags),
                       *([backend] if backend != "aot" else []), *(["general"] if general_only else []), *(["unpacked"] if not pack else []),
                       *([SPARSE_MAX_EXTRA] if SPARSE_MAX_EXTRA != 0.025 else []))
    out = artifact_dir("native_runtime", key)
    so = out / "libkws_model.so"
    if so.is_file():
        return so
    gen = generate(tflite_path, out / "src", model_id, backend, general_only, pack)
    cc = _host_cc()
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".libkws_model.", suffix=".so")
    os.close(fd)
    cmd = [cc, "-std=c99", "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-I", str(RUNTIME_DIR), "-I", str(gen.dir),
           *cflags, *map(str, gen.sources), *map(str, runtime_sources()), "-o", tmp]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        os.unlink(tmp)
        first = next((line for line in result.stderr.splitlines() if "error" in line), result.stderr.strip()[:200])
        raise HarnessError(f"host build of the kws runtime for {tflite_path} failed: {first}")
    os.replace(tmp, so)
    atomic_write_text(out / "generated.json", json.dumps(gen.summary(), indent=2) + "\n")
    return so


_LIBS: dict[str, ctypes.CDLL] = {}


def _load(so_path: Path) -> ctypes.CDLL:
    key = str(Path(so_path).resolve())
    if key not in _LIBS:
        try:
            lib = ctypes.CDLL(key)
        except OSError as exc:
            raise HarnessError(f"cannot load native kws runtime {so_path}: {exc}") from None
        lib.kws_model_invoke.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.kws_model_invoke.restype = ctypes.c_int
        _LIBS[key] = lib
    return _LIBS[key]


def native_predict(so_path: Path | str, x_int8: np.ndarray) -> np.ndarray:
    """Run the native model on int8 inputs [N, ...] (e.g. [N, 49, 40]); returns int8 scores [N, C]."""
    lib = _load(Path(so_path))
    n_in = ctypes.c_uint32.in_dll(lib, "kws_model_input_size").value
    n_out = ctypes.c_uint32.in_dll(lib, "kws_model_output_size").value
    x = np.asarray(x_int8)
    if x.dtype != np.int8 or x.size % n_in or (x.ndim > 1 and int(np.prod(x.shape[1:])) != n_in):
        raise HarnessError(f"{so_path}: inputs must be int8 [N, ...] with {n_in} values per sample, "
                           f"got {x.dtype} {x.shape}")
    x = np.ascontiguousarray(x.reshape(-1, n_in))
    out = np.empty((len(x), n_out), dtype=np.int8)
    for i in range(len(x)):
        rc = lib.kws_model_invoke(x[i].ctypes.data, out[i].ctypes.data)
        if rc != 0:
            raise HarnessError(f"{so_path}: kws_model_invoke returned {rc} on sample {i}")
    return out
