"""Export a TinyConv to a full-integer int8 .tflite: the interchange format the device side consumes.

How: a Keras mirror of the PyTorch model with the weights copied in (conv [O,I,H,W] -> [H,W,I,O];
TinyConv flattens NHWC, so the dense kernel is ``fc.weight.T``), converted by the TFLite converter
with a representative data set of dequantized features, int8 in and int8 out, TFLITE_BUILTINS_INT8.

Why the converter and not a hand-written flatbuffer: the converter's per-channel weight
quantization, bias scaling and operator versions are exactly what TFLM and every TFLite tool
expect, so our .tflite is the same file the paper's TensorFlow flow would produce and the
reference interpreter has no reason to disagree with it. A hand-written flatbuffer would re-derive
all of that and could only ever be checked against... the converter. The cost is a lazy (~4 s)
TensorFlow import, paid once per new artifact thanks to the cache.

Choices that the device side relies on:
- The input tensor is quantized with exactly ``(features.INPUT_SCALE, features.INPUT_ZERO_POINT)``,
  so the device's int8 features feed the model with no requantization. The calibration data get one
  extra sample holding the values 0 and 255 * INPUT_SCALE (the full int8 feature range), which makes
  the converter pick exactly those parameters; they are verified after conversion.
- No SOFTMAX by default: the output is the int8-quantized logits, as the paper's model (and the
  PyTorch TinyConv) outputs logits. Softmax is monotonic, so the argmax (the class) is the same,
  while an int8 softmax (scale 1/256) saturates and creates ties between confident classes.
  ``softmax=True`` appends it, micro_speech style.
- Sub-8-bit weights stay on their grid: per-channel int8 quantization maps each distinct float value
  of an output channel to one int8 value, so a b-bit channel keeps at most 2^b distinct values.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from harness import tflite_info
from harness.cache import artifact_dir, atomic_write_bytes, atomic_write_json, content_hash, source_hash
from harness.errors import HarnessError

log = logging.getLogger(__name__)

INPUT_HW = (49, 40)
EXPECTED_OPS = {"RESHAPE", "CONV_2D", "FULLY_CONNECTED"}
CALIBRATION_SAMPLES = 400  # training samples used to calibrate a variant's activations
_FORMAT = "tflite-export-v1"  # bump to invalidate every cached export


def _features() -> Any:
    from harness.data import features

    return features


def _tf_versions() -> str:
    out = []
    for dist in ("tensorflow-cpu", "tensorflow", "keras"):
        try:
            out.append(f"{dist}={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ",".join(out)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _check_model(model: nn.Module) -> tuple[int, int]:
    """(channels, classes) of a TinyConv-shaped model; HarnessError if Keras could not mirror it."""
    conv, fc, pad = getattr(model, "conv", None), getattr(model, "fc", None), getattr(model, "pad", None)
    name = type(model).__name__
    if not isinstance(conv, nn.Conv2d) or not isinstance(fc, nn.Linear) or not isinstance(pad, nn.ZeroPad2d):
        raise HarnessError(f"export: expects a TinyConv (pad, conv, fc), got {name}; "
                           "export a variant's plain_model(), not its wrapped host model")
    kh, kw = conv.kernel_size
    sh, sw = conv.stride
    if conv.in_channels != 1 or conv.groups != 1 or conv.dilation != (1, 1) or conv.padding not in ((0, 0), "valid"):
        raise HarnessError(f"export: {name}.conv must be a plain 1-input-channel conv, got {conv}")
    top, bottom = _same_padding(INPUT_HW[0], kh, sh)
    left, right = _same_padding(INPUT_HW[1], kw, sw)
    if tuple(pad.padding) != (left, right, top, bottom):
        raise HarnessError(f"export: {name}.pad is {tuple(pad.padding)}, Keras 'same' padding needs "
                           f"{(left, right, top, bottom)} for a {kh}x{kw} stride-{sh}x{sw} conv on 49x40")
    out_h, out_w = -(-INPUT_HW[0] // sh), -(-INPUT_HW[1] // sw)
    if fc.in_features != out_h * out_w * conv.out_channels:
        raise HarnessError(f"export: {name}.fc takes {fc.in_features} inputs, the conv gives "
                           f"{out_h}x{out_w}x{conv.out_channels}")
    return conv.out_channels, fc.out_features


def _check_calibration(calib_x_int8: np.ndarray) -> np.ndarray:
    x = np.asarray(calib_x_int8)
    if x.dtype != np.int8 or x.ndim != 3 or x.shape[1:] != INPUT_HW or len(x) == 0:
        raise HarnessError(f"export: calibration features must be int8 [N, 49, 40] with N >= 1, got {x.dtype} {x.shape}")
    return np.ascontiguousarray(x)


def _representative(calib_x_int8: np.ndarray) -> np.ndarray:
    """Dequantized calibration features plus one sample spanning the full input range."""
    f = _features()
    x = f.dequantize(calib_x_int8).astype(np.float32)
    extremes = x[:1].copy()
    extremes[0, 0, 0] = np.float32(f.dequantize(np.array([-128], dtype=np.int8))[0])
    extremes[0, 0, 1] = np.float32(f.dequantize(np.array([127], dtype=np.int8))[0])
    return np.concatenate([x, extremes])


def _quiet_tensorflow() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    from harness.capture import capture_c_output

    try:
        with capture_c_output():
            import tensorflow as tf
    except ImportError as exc:
        raise HarnessError(f"export needs TensorFlow (pip install tensorflow-cpu==2.21.0): {exc}") from None
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    return tf


def _keras_mirror(model: nn.Module, channels: int, classes: int, softmax: bool) -> Any:
    import keras

    conv_w = model.conv.weight.detach().cpu().numpy()  # [O, I, H, W]
    conv_b = (model.conv.bias.detach().cpu().numpy() if model.conv.bias is not None
              else np.zeros(channels, np.float32))
    inp = keras.Input(shape=INPUT_HW, batch_size=1, name="features")
    x = keras.layers.Reshape((*INPUT_HW, 1))(inp)
    conv = keras.layers.Conv2D(channels, tuple(model.conv.kernel_size), strides=tuple(model.conv.stride),
                               padding="same", activation="relu", name="conv")
    x = keras.layers.Flatten()(conv(x))
    fc = keras.layers.Dense(classes, name="fc")
    out = fc(x)
    if softmax:
        out = keras.layers.Softmax(name="softmax")(out)
    mirror = keras.Model(inp, out)
    conv.set_weights([conv_w.transpose(2, 3, 1, 0), conv_b])
    fc_b = model.fc.bias.detach().cpu().numpy() if model.fc.bias is not None else np.zeros(classes, np.float32)
    fc.set_weights([model.fc.weight.detach().cpu().numpy().T, fc_b])
    return mirror


def _check_mirror(model: nn.Module, mirror: Any, x: np.ndarray, softmax: bool) -> None:
    """The Keras mirror must compute what the PyTorch model computes (catches a layout slip)."""
    import torch

    sample = x[:16]
    with torch.no_grad():
        expected = model(torch.from_numpy(sample)).numpy()
        if softmax:
            expected = torch.softmax(torch.from_numpy(expected), dim=1).numpy()
    got = np.concatenate([mirror(sample[i:i + 1], training=False).numpy() for i in range(len(sample))])
    tol = 1e-4 * max(1.0, float(np.abs(expected).max()))
    if not np.allclose(got, expected, atol=tol, rtol=1e-4):
        raise HarnessError(f"export: Keras mirror differs from the PyTorch model by "
                           f"{float(np.abs(got - expected).max()):.3g} (layout mismatch)")


def _convert(model: nn.Module, calib: np.ndarray, channels: int, classes: int, softmax: bool) -> bytes:
    tf = _quiet_tensorflow()
    rep = _representative(calib)
    mirror = _keras_mirror(model, channels, classes, softmax)
    _check_mirror(model, mirror, rep, softmax)

    def representative_dataset():
        for i in range(len(rep)):
            yield [rep[i:i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(mirror)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    from harness.capture import capture_c_output

    with capture_c_output() as out, warnings.catch_warnings():
        # "Statistics for quantized inputs were expected": the input range comes from the
        # representative data on purpose (and is verified afterwards).
        warnings.simplefilter("ignore", UserWarning)
        try:
            data = converter.convert()
            error = None
        except Exception as exc:  # the converter raises many types; report them the same way
            error = exc
    if error is not None:
        tail = " | ".join(line.strip() for line in out.text.splitlines() if "error" in line.lower())[-300:]
        raise HarnessError(f"export: TFLite converter failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
                           f"{' | ' + tail if tail else ''}")
    return bytes(data)


def verify(path_or_model: Path | tflite_info.TfliteModel, softmax: bool | None = None) -> tflite_info.TfliteModel:
    """Check an exported file is what the device expects; returns the parsed model.

    int8 input [1, 49, 40] with exactly (INPUT_SCALE, INPUT_ZERO_POINT), int8 output, and only
    RESHAPE / CONV_2D / FULLY_CONNECTED (+ SOFTMAX when ``softmax`` allows it).
    """
    m = path_or_model if isinstance(path_or_model, tflite_info.TfliteModel) else tflite_info.read(path_or_model)
    where = m.path or "exported model"
    f = _features()
    t = m.input
    if t.dtype != "INT8" or tuple(t.shape) != (1, *INPUT_HW):
        raise HarnessError(f"{where}: input is {t.dtype} {t.shape}, expected INT8 (1, 49, 40)")
    if len(t.scales) != 1 or np.float32(t.scales[0]) != np.float32(f.INPUT_SCALE) or t.zero_points != [f.INPUT_ZERO_POINT]:
        raise HarnessError(f"{where}: input quantization is scale {t.scales} zero point {t.zero_points}, "
                           f"the device features need ({f.INPUT_SCALE!r}, {f.INPUT_ZERO_POINT})")
    if m.output.dtype != "INT8":
        raise HarnessError(f"{where}: output is {m.output.dtype}, expected INT8")
    allowed = EXPECTED_OPS | ({"SOFTMAX"} if softmax is not False else set())
    unexpected = set(m.op_names) - allowed
    if unexpected or (softmax and "SOFTMAX" not in m.op_names):
        raise HarnessError(f"{where}: unexpected ops {m.op_names} (allowed {sorted(allowed)})")
    return m


def export_key(model: nn.Module, calib_x_int8: np.ndarray, softmax: bool = False) -> str:
    """Cache key: weights + calibration data + input quantization + this code + the converter's version."""
    import sys

    f = _features()
    return content_hash(_FORMAT, model, np.asarray(calib_x_int8), bool(softmax), [f.INPUT_SCALE, f.INPUT_ZERO_POINT],
                        source_hash(sys.modules[__name__], tflite_info), _tf_versions())


def export_tflite(model: nn.Module, calib_x_int8: np.ndarray, out: Path | str | None = None,
                  softmax: bool = False) -> Path:
    """Full-int8 .tflite of a TinyConv (cached by content hash); returns its path (``out`` if given).

    ``calib_x_int8``: int8 features [N, 49, 40] for activation calibration (training data).
    ``softmax``: append a SOFTMAX op (default False: the output is the int8 logits).
    """
    channels, classes = _check_model(model)
    calib = _check_calibration(calib_x_int8)
    key = export_key(model, calib, softmax)
    folder = artifact_dir("tflite", key)
    path = folder / "model.tflite"
    cached = None
    if path.is_file():
        try:
            cached = verify(path, softmax)
        except HarnessError as exc:
            log.warning("rebuilding cached export %s: %s", path, exc)
    if cached is None:
        was_training = model.training
        try:
            data = _convert(model.eval(), calib, channels, classes, softmax)
        finally:
            model.train(was_training)
        parsed = verify(tflite_info.parse_bytes(data, where=f"export of {type(model).__name__}"), softmax)
        atomic_write_bytes(path, data)
        parsed.path = path
        meta = parsed.summary()
        meta.pop("tensors")
        meta.update(channels=channels, classes=classes, softmax=softmax, calibration_samples=len(calib),
                    converter=_tf_versions())
        atomic_write_json(folder / "meta.json", meta)
    if out is None:
        return path
    out = Path(out)
    try:
        atomic_write_bytes(out, path.read_bytes())
    except OSError as exc:
        raise HarnessError(f"export: cannot write {out}: {exc.strerror or exc}") from None
    return out


def calibration_features(x_train_int8: np.ndarray, n: int = CALIBRATION_SAMPLES, seed: int = 0) -> np.ndarray:
    """A fixed random subset of the training features (same data -> same subset -> same cache key)."""
    x = np.asarray(x_train_int8)
    if len(x) <= n:
        return x
    idx = np.sort(np.random.default_rng(seed).choice(len(x), size=n, replace=False))
    return x[idx]
