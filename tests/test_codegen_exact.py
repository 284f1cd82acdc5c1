"""Bit-exactness of the generated C runtime against the TFLM reference, op by op and model by model.

Each model is a small Keras network converted to full int8 with the TFLite converter (cached by
content hash, so only the first session pays the converter), compiled with the host gcc into a
shared library and run through ctypes on random int8 inputs; the scores must equal TFLM's exactly.
The models cover every kernel path: 4-channel blocks and leftover channels, rows with and without
a 1-3 element tail, padding SAME/VALID, strides, per-channel and per-tensor fully connected,
depthwise with a depth multiplier, softmax, all-zero weights, fused ReLU/ReLU6.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from harness.device import codegen, reference
from harness.cache import artifact_dir, atomic_write_bytes, content_hash
from harness.errors import HarnessError

pytestmark = pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")

N_INPUTS = 200
INPUT_SCALE = 666 / 256 * 10 / 256  # the micro_speech feature scale (features.INPUT_SCALE)


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def _convert(name: str, build: Callable, in_shape: tuple[int, ...], quantize: bool = True,
             per_tensor_dense: bool = False, zero_weights: bool = False, bits: int = 0, prune: float = 0.0,
             dead: tuple[int, ...] = ()) -> Path:
    """Build a Keras model with ``build(tf)``, convert it (full int8 unless ``quantize`` is False), cache it.

    ``bits`` > 0 rounds every kernel to 2^(bits-1) - 1 symmetric levels per output channel first, as
    a b-bit quantized variant does, so the int8 export has at most 2^bits values per channel. ``prune``
    zeroes that fraction of every kernel's smallest weights (unstructured pruning). ``dead`` lists
    output channels of the first conv whose kernel is all zero (bias kept), as a 2-bit QAT model has:
    the converter gives them a tiny scale and a huge int32 bias."""
    import inspect

    closure = [c.cell_contents for c in (build.__closure__ or ())]
    key = content_hash(name, inspect.getsource(build), closure, in_shape, quantize, per_tensor_dense,
                       zero_weights, "v1", *([bits] if bits else []), *([prune] if prune else []),
                       *([list(dead)] if dead else []))
    path = artifact_dir("test_codegen_models", key) / f"{name}.tflite"
    if path.is_file():
        return path
    tf = _tf()
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input(in_shape, batch_size=1)
    model = tf.keras.Model(inp, build(tf, inp))
    if zero_weights:
        for layer in model.layers:
            if layer.get_weights():
                layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    else:  # non-zero biases, so the bias path is exercised too
        for layer in model.layers:
            ws = layer.get_weights()
            if len(ws) == 2:
                kernel = ws[0]
                if prune:
                    kernel = np.where(np.abs(kernel) < np.quantile(np.abs(kernel), prune), 0, kernel).astype(np.float32)
                if bits:  # per output channel (last axis) b-bit symmetric levels
                    top = (1 << (bits - 1)) - 1
                    s_ = np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0) / top
                    kernel = (np.round(kernel / s_) * s_).astype(np.float32)
                if dead and kernel.ndim == 4:
                    kernel[..., list(dead)] = 0.0
                    dead = ()
                layer.set_weights([kernel, np.random.default_rng(1).normal(0, 0.3, ws[1].shape).astype(np.float32)])
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(32):
            q = rng.integers(-128, 128, (1, *in_shape))
            yield [((q + 128) * INPUT_SCALE).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        if per_tensor_dense:
            conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    atomic_write_bytes(path, conv.convert())
    return path


def _tinyconv(channels: int, softmax: bool = False, units: int = 4):
    def build(tf, x):
        x = tf.keras.layers.Reshape((49, 40, 1))(x)
        x = tf.keras.layers.Conv2D(channels, (10, 8), strides=2, padding="same", activation="relu")(x)
        x = tf.keras.layers.Flatten()(x)
        x = tf.keras.layers.Dense(units)(x)
        return tf.keras.layers.Softmax()(x) if softmax else x

    return build


def _build_odd_fast(tf, x):
    # the conv fast path's other branches: odd kernel width (padded to even), odd out_w (17: the last
    # pair's second position is padding), 5 channels (a 4-block + a 2-block with a padding channel),
    # ReLU6 (not the full int8 range: unfused blocks, C clamp)
    x = tf.keras.layers.Reshape((49, 40, 1))(x)
    x = tf.keras.layers.Conv2D(5, (9, 7), strides=2, padding="valid", activation="relu6")(x)
    x = tf.keras.layers.Flatten()(x)
    return tf.keras.layers.Dense(6)(x)


def _build_mixed(tf, x):
    # conv with a 3-wide row (tail only, 3 leftover channels), then a 3-channel conv with
    # 15-element rows (groups + tail, one 4-block + 2 leftovers), ReLU6, VALID and SAME.
    x = tf.keras.layers.Reshape((49, 40, 1))(x)
    x = tf.keras.layers.Conv2D(3, (3, 3), strides=1, padding="valid", activation="relu")(x)
    x = tf.keras.layers.Conv2D(6, (5, 5), strides=(2, 3), padding="same", activation="relu6")(x)
    x = tf.keras.layers.Flatten()(x)
    return tf.keras.layers.Dense(5, activation="relu")(x)


def _build_fc_leftovers(tf, x):
    # 3-channel conv (leftover channels only), FC depth 14*11*3 = 462 (2-element tail) into 7 units:
    # a 4-unit block, a leftover pair and a single unit
    x = tf.keras.layers.Reshape((49, 40, 1))(x)
    x = tf.keras.layers.Conv2D(3, (10, 8), strides=3, padding="valid", activation="relu")(x)
    x = tf.keras.layers.Flatten()(x)
    return tf.keras.layers.Dense(7)(x)


def _build_depthwise(tf, x):
    x = tf.keras.layers.Reshape((49, 40, 1))(x)
    x = tf.keras.layers.Conv2D(3, (4, 4), strides=2, padding="same", activation="relu")(x)
    x = tf.keras.layers.DepthwiseConv2D((3, 5), strides=(2, 1), padding="same", depth_multiplier=2,
                                        activation="relu6")(x)
    x = tf.keras.layers.DepthwiseConv2D((3, 3), strides=1, padding="valid")(x)
    x = tf.keras.layers.Flatten()(x)
    return tf.keras.layers.Dense(4)(x)


def _build_avgpool(tf, x):
    x = tf.keras.layers.Reshape((49, 40, 1))(x)
    x = tf.keras.layers.AveragePooling2D((2, 2))(x)
    x = tf.keras.layers.Flatten()(x)
    return tf.keras.layers.Dense(4)(x)


def _build_tanh(tf, x):
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(8)(x)
    x = tf.keras.layers.Activation("tanh")(x)
    return tf.keras.layers.Dense(4)(x)


MODELS = {
    "tinyconv8": dict(build=_tinyconv(8)),
    "tinyconv5": dict(build=_tinyconv(5)),
    "tinyconv7": dict(build=_tinyconv(7)),  # 4-channel block + 3 leftover channels run together
    "tinyconv3": dict(build=_tinyconv(3)),  # leftover channels only
    "tinyconv2": dict(build=_tinyconv(2)),
    "fc_leftovers": dict(build=_build_fc_leftovers),
    "odd_fast": dict(build=_build_odd_fast),
    "tinyconv8_zero_weights": dict(build=_tinyconv(8), zero_weights=True),
    "tinyconv8_softmax": dict(build=_tinyconv(8, softmax=True)),
    "tinyconv8_per_tensor_fc": dict(build=_tinyconv(8), per_tensor_dense=True),
    "mixed_convs": dict(build=_build_mixed),
    "tinyconv8_4bit": dict(build=_tinyconv(8), bits=4),
    "tinyconv8_2bit": dict(build=_tinyconv(8), bits=2),
    # 3 all-zero conv channels (tiny scale, huge bias): folded constants keep the fused short path
    "tinyconv8_2bit_dead": dict(build=_tinyconv(8), bits=2, dead=(3, 4, 6)),
    "tinyconv8_4bit_6units": dict(build=_tinyconv(8, units=6), bits=4),  # an interleaved block + 2 rows
    "tinyconv7_6bit_6units": dict(build=_tinyconv(7, units=6), bits=6),  # padding channel and FC units
    # 4-bit FC: an odd unit after 2 pairs, an odd count of input words (depth 3500): the C tails
    "tinyconv7_4bit_5units": dict(build=_tinyconv(7, units=5), bits=4),
    "odd_fast_4bit": dict(build=_build_odd_fast, bits=4),  # odd k_w: the padding zero joins the levels
    "tinyconv8_pruned70": dict(build=_tinyconv(8), prune=0.7),  # sparse FC
    "tinyconv8_pruned90": dict(build=_tinyconv(8), prune=0.9),  # 4-bit steps with fillers (gaps > 15)
    "tinyconv8_pruned95_6units": dict(build=_tinyconv(8, units=6), prune=0.95),  # longer gaps: 8-bit steps
    "depthwise": dict(build=_build_depthwise),
}


@pytest.fixture(scope="module")
def models() -> dict[str, Path]:
    return {name: _convert(name, spec["build"], (49, 40), per_tensor_dense=spec.get("per_tensor_dense", False),
                           zero_weights=spec.get("zero_weights", False), bits=spec.get("bits", 0),
                           prune=spec.get("prune", 0.0), dead=spec.get("dead", ()))
            for name, spec in MODELS.items()}


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    rng = np.random.default_rng(42)
    x = rng.integers(-128, 128, (N_INPUTS, 49, 40)).astype(np.int8)
    x[0] = -128  # silence: every feature at the zero point
    x[1] = 127  # saturated
    return x


@pytest.mark.parametrize("name", list(MODELS))
def test_bit_exact_with_tflm(models: dict[str, Path], inputs: np.ndarray, name: str) -> None:
    so = codegen.build_native_library(models[name], name)
    got = codegen.native_predict(so, inputs)
    want = reference.predict(models[name], inputs)
    assert got.shape == want.shape
    mismatches = int((got != want).sum())
    assert mismatches == 0, f"{name}: {mismatches} of {got.size} scores differ from TFLM"
    # The test must be able to fail: outputs vary across inputs (not a constant clamp).
    if "zero_weights" not in name:
        assert len(np.unique(got, axis=0)) > N_INPUTS // 2


@pytest.mark.parametrize("name", ["tinyconv8", "tinyconv7", "tinyconv8_softmax", "tinyconv8_per_tensor_fc",
                                  "mixed_convs", "depthwise", "fc_leftovers"])
def test_ref_backend_bit_exact_with_tflm(models: dict[str, Path], inputs: np.ndarray, name: str,
                                         tmp_path: Path) -> None:
    """--backend ref: TFLM-reference-style loops over the .tflite's own layouts, same scores as TFLM."""
    so = codegen.build_native_library(models[name], name, backend="ref")
    np.testing.assert_array_equal(codegen.native_predict(so, inputs), reference.predict(models[name], inputs))
    source = codegen.generate(models[name], tmp_path, name, backend="ref").sources[0].read_text()
    assert "kws_ref_" in source and "kws_conv2d_s8(" not in source and "kws_fc_s8(" not in source


FAST_CONV = ["tinyconv8", "tinyconv7", "tinyconv5", "tinyconv3", "tinyconv2", "odd_fast", "tinyconv8_zero_weights"]


@pytest.mark.parametrize("name", FAST_CONV)
def test_conv_fast_path_and_general_kernel_agree_with_tflm(models: dict[str, Path], inputs: np.ndarray, name: str,
                                                           tmp_path: Path) -> None:
    """Shapes the fast CONV_2D covers run it; forcing the general im2col kernel gives the same scores."""
    fast_src = codegen.generate(models[name], tmp_path / "f", name).sources[0].read_text()
    assert "kws_conv2d_fast_s8(" in fast_src
    general_src = codegen.generate(models[name], tmp_path / "g", name, general_only=True).sources[0].read_text()
    assert "kws_conv2d_fast_s8(" not in general_src and "kws_conv2d_s8(" in general_src
    so = codegen.build_native_library(models[name], name, general_only=True)
    np.testing.assert_array_equal(codegen.native_predict(so, inputs), reference.predict(models[name], inputs))


def test_conv_fast_path_with_the_general_requantization(models: dict[str, Path], inputs: np.ndarray, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where codegen cannot prove the short requantization exact, the fast kernel uses kws_requant_ch."""
    monkeypatch.setattr(codegen, "short_requant_ok", lambda *a, **k: False)
    src = codegen.generate(models["tinyconv7"], tmp_path, "t").sources[0].read_text()
    assert ".short_q = 0," in src and ".fused = 0," in src
    so = codegen.build_native_library(models["tinyconv7"], "tinyconv7", cflags=("-DKWS_TEST_NO_SHORT_Q",))
    np.testing.assert_array_equal(codegen.native_predict(so, inputs), reference.predict(models["tinyconv7"], inputs))


def test_conv_fast_path_choices(models: dict[str, Path], tmp_path: Path) -> None:
    """TinyConv gets the fused short requantization; an odd out_w falls back to block dot products + C requantization."""
    src = codegen.generate(models["tinyconv8"], tmp_path / "t", "t").sources[0].read_text()
    assert ".short_q = 1," in src and ".fused = 1," in src and "kws_gen_op1_pair" in src
    odd = codegen.generate(models["odd_fast"], tmp_path / "o", "o").sources[0].read_text()
    assert ".fused = 0," in odd and "kws_gen_op1_dot2" in odd and "kws_gen_op1_dot4" in odd
    mixed = codegen.generate(models["mixed_convs"], tmp_path / "m", "m").sources[0].read_text()
    assert "kws_conv2d_fast_s8(" not in mixed  # stride 1 and 3-channel inputs: general kernel


def test_dead_conv_channels_keep_the_fused_short_path(models: dict[str, Path], tmp_path: Path) -> None:
    """All-zero conv channels (huge bias, tiny scale) are constants: the layer still gets the fused
    short requantization (a 2-bit QAT model ran 55 % slower without it); bit-exactness is
    test_bit_exact_with_tflm's."""
    src = codegen.generate(models["tinyconv8_2bit_dead"], tmp_path, "d").sources[0].read_text()
    assert ".short_q = 1," in src and ".fused = 1," in src and "kws_gen_op1_pair" in src
    rows = src.split("op1_channels[8] = {")[1].split("};")[0].strip().splitlines()
    assert [r.strip().startswith("{0, ") and r.strip().endswith(", 1, 0},") for r in rows] == \
        [c in (3, 4, 6) for c in range(8)]


@pytest.mark.parametrize("name, bits, conv, fc", [
    ("tinyconv8_4bit", 4, "4bit", "4bit"), ("tinyconv8_2bit", 2, "2bit", "2bit"),
    ("tinyconv8_4bit_6units", 4, "4bit", "4bit"), ("tinyconv7_4bit_5units", 4, "4bit", "4bit"),
    ("tinyconv7_6bit_6units", 6, "int8", "6bit"),  # 6-bit conv codes would save little and cost time
    ("odd_fast_4bit", 4, "4bit", "int8")])  # FC depth 1785: not a multiple of 4
def test_packed_weights_bit_exact(models: dict[str, Path], inputs: np.ndarray, name: str, bits: int, conv: str,
                                  fc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """b-bit variants store b-bit codes + per-channel tables, decode exactly, and take less flash."""
    monkeypatch.setattr(codegen, "SPARSE_MAX_EXTRA", -1.0)  # the packed path, not a sparse one
    gen = codegen.generate(models[name], tmp_path / "p", name)
    assert gen.weight_formats == (f"op1 CONV_2D {conv}", f"op3 FULLY_CONNECTED {fc}")
    plain = codegen.generate(models[name], tmp_path / "u", name, pack=False)
    assert plain.weight_formats == ("op1 CONV_2D int8", "op3 FULLY_CONNECTED int8")
    if fc != "int8":
        assert gen.weight_bytes < plain.weight_bytes * (bits + 1.5) / 8
    so = codegen.build_native_library(models[name], name)
    np.testing.assert_array_equal(codegen.native_predict(so, inputs), reference.predict(models[name], inputs))
    assert len(np.unique(codegen.native_predict(so, inputs), axis=0)) > N_INPUTS // 2


@pytest.mark.parametrize("name, steps", [("tinyconv8_pruned70", 4), ("tinyconv8_pruned90", 4),
                                         ("tinyconv8_pruned95_6units", 8)])
def test_sparse_fc_bit_exact_and_chosen_only_when_cheap(models: dict[str, Path], inputs: np.ndarray, name: str,
                                                        steps: int, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Unstructured-pruned FCs store nonzeros + 4- or 8-bit steps (whichever is smaller) when smaller
    than dense and (by estimate) at most SPARSE_MAX_EXTRA slower; scores stay TFLM's."""
    gen = codegen.generate(models[name], tmp_path / "s", name)
    assert gen.weight_formats[1].startswith("op3 FULLY_CONNECTED sparse")
    assert gen.weight_formats[1].endswith(", 8-bit steps") == (steps == 8)
    if name == "tinyconv8_pruned90":  # the 4-bit stream has fillers (a step of 15 with a zero value)
        src = gen.sources[0].read_text()
        assert any((b & 15) == 15 or b >> 4 == 15 for b in
                   map(int, src.split("op3_steps[")[1].split("{")[1].split("}")[0].split(",")))
    dense = codegen.generate(models[name], tmp_path / "d", name, pack=False)
    assert gen.weight_bytes < 0.6 * dense.weight_bytes
    so = codegen.build_native_library(models[name], name)
    np.testing.assert_array_equal(codegen.native_predict(so, inputs), reference.predict(models[name], inputs))
    monkeypatch.setattr(codegen, "SPARSE_MAX_EXTRA", -1.0)  # no time to spare: dense
    assert codegen.generate(models[name], tmp_path / "t", name).weight_formats[1] == "op3 FULLY_CONNECTED int8"


@pytest.mark.parametrize("step_bits", [4, 8])
def test_sparse_encoding_roundtrip(step_bits: int) -> None:
    """Replays kws_fc_sparse_s8's walk: positions from the 4- or 8-bit steps, values in groups of 4."""
    rng = np.random.default_rng(5)
    w = np.where(rng.random((5, 700)) < 0.1, rng.integers(-128, 128, (5, 700)), 0).astype(np.int8)
    w[2] = 0  # an all-zero unit: no groups
    w[3] = 0
    w[3, 699] = 7  # a long gap at the start: fillers (2 at 8 bits)
    groups, steps, values = codegen.sparse_fc_encode(w, step_bits)
    nib = steps.tolist() if step_bits == 8 else [(b >> s) & 15 for b in steps.tolist() for s in (0, 4)]
    back, k = np.zeros_like(w, dtype=np.int32), 0
    for u in range(5):
        pos = 0
        for _ in range(4 * int(groups[u])):
            pos += nib[k]
            back[u, pos] += values[k]
            k += 1
    assert groups[2] == 0 and k == len(values)
    assert groups[3] == (1 if step_bits == 8 else 12)  # 699 = 2 * 255 + 189 = 46 * 15 + 9
    np.testing.assert_array_equal(back, w)


def test_int8_models_stay_unpacked(models: dict[str, Path], tmp_path: Path) -> None:
    gen = codegen.generate(models["tinyconv8"], tmp_path, "t")
    assert gen.weight_formats == ("op1 CONV_2D int8", "op3 FULLY_CONNECTED int8")


def test_unknown_backend_is_named(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="unknown backend 'fast'"):
        codegen.generate(models["tinyconv8"], tmp_path, "t", backend="fast")


def test_models_cover_the_kernel_paths(models: dict[str, Path], tmp_path: Path) -> None:
    ops = {name: codegen.generate(path, tmp_path / name, name).ops for name, path in models.items()}
    assert ops["tinyconv8"] == ("RESHAPE", "CONV_2D", "RESHAPE", "FULLY_CONNECTED")
    assert ops["tinyconv8_softmax"][-1] == "SOFTMAX"
    assert ops["depthwise"].count("DEPTHWISE_CONV_2D") == 2
    assert ops["mixed_convs"].count("CONV_2D") == 2
    from harness import tflite_info

    fc_scales = lambda p: [len(tflite_info.read(p).tensors[op.inputs[1]].scales)  # noqa: E731
                           for op in tflite_info.read(p).ops if op.name == "FULLY_CONNECTED"]
    assert fc_scales(models["tinyconv8_per_tensor_fc"]) == [1]
    assert fc_scales(models["tinyconv8"]) == [4]


def test_tinyconv_sizes(models: dict[str, Path], tmp_path: Path) -> None:
    gen = codegen.generate(models["tinyconv8"], tmp_path, "tinyconv-int8")
    assert gen.macs == 25 * 20 * 8 * 80 + 4000 * 4
    assert gen.input_shape == (1, 49, 40) and gen.output_shape == (1, 4)
    # conv output (4000) + the int16 expansion of the zero-point padded input (58 x 46)
    assert gen.arena_bytes == 4000 + 58 * 46 * 2
    # int16 conv weights + 16-byte channel constants + int8 fc weights + fc bias/multiplier/shift
    assert gen.weight_bytes == 640 * 2 + 8 * 16 + 16000 + 4 * 4 + 4 * 8
    general = codegen.generate(models["tinyconv8"], tmp_path / "general", "t", general_only=True)
    assert general.arena_bytes == 4000 + 58 * 46 + 80  # the im2col kernel: padded input + one patch
    header = gen.header.read_text()
    assert '#define KWS_MODEL_ID "tinyconv-int8"' in header
    assert "#define KWS_MODEL_INPUT_SIZE 1960" in header and "#define KWS_MODEL_OUTPUT_SIZE 4" in header


def test_cache_reuses_the_library(models: dict[str, Path]) -> None:
    a = codegen.build_native_library(models["tinyconv5"], "tinyconv5")
    mtime = a.stat().st_mtime_ns
    assert codegen.build_native_library(models["tinyconv5"], "tinyconv5") == a
    assert a.stat().st_mtime_ns == mtime
    assert codegen.build_native_library(models["tinyconv5"], "other-id") != a


def test_native_predict_rejects_wrong_shape(models: dict[str, Path]) -> None:
    so = codegen.build_native_library(models["tinyconv8"], "tinyconv8")
    with pytest.raises(HarnessError, match="1960 values per sample"):
        codegen.native_predict(so, np.zeros((2, 40, 49 - 1), dtype=np.int8))
    with pytest.raises(HarnessError, match="int8"):
        codegen.native_predict(so, np.zeros((2, 49, 40), dtype=np.float32))


def test_unsupported_op_is_named(tmp_path: Path) -> None:
    for name, build, op in (("avgpool", _build_avgpool, "AVERAGE_POOL_2D"), ("tanh", _build_tanh, "TANH")):
        path = _convert(name, build, (49, 40))
        with pytest.raises(HarnessError, match=f"{op} is not supported") as info:
            codegen.generate(path, tmp_path / name, name)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_float_model_is_refused(tmp_path: Path) -> None:
    path = _convert("float", _tinyconv(4), (49, 40), quantize=False)
    with pytest.raises(HarnessError, match="FLOAT32.*full-int8"):
        codegen.generate(path, tmp_path, "float")


def test_missing_or_corrupt_file(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="no such file"):
        codegen.build_native_library(tmp_path / "missing.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0" * 64)
    with pytest.raises(HarnessError, match="bad.tflite"):
        codegen.generate(bad, tmp_path / "out", "bad")


@pytest.mark.parametrize("softmax", [False, True])
def test_exported_tinyconv_is_bit_exact(inputs: np.ndarray, softmax: bool) -> None:
    """The real export path (PyTorch TinyConv -> harness.model.export) through the runtime, half its weights pruned."""
    torch = pytest.importorskip("torch")
    from harness.model import export
    from models.tinyconv import TinyConv

    torch.manual_seed(0)
    model = TinyConv()
    with torch.no_grad():  # unstructured pruning pattern: exact zeros in the kernels
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_((torch.rand_like(p) > 0.5).float())
    calib = np.random.default_rng(3).integers(-128, 128, (64, 49, 40)).astype(np.int8)
    path = export.export_tflite(model, calib, softmax=softmax)
    so = codegen.build_native_library(path, f"tinyconv-export-{softmax}")
    np.testing.assert_array_equal(codegen.native_predict(so, inputs), reference.predict(path, inputs))
