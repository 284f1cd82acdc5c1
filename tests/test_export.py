"""Export to int8 .tflite: ops, input quantization, shapes of pruned models, sub-8-bit grids, cache.

Random TinyConv weights and spectrogram-like random int8 features: what is tested is the export,
not a trained model. Converter calls cost ~1 s each after TensorFlow's ~4 s import, so the
exported files are shared through module-scoped fixtures.
"""

from __future__ import annotations

import os
import time
import types

import numpy as np
import pytest
import torch

from harness.errors import HarnessError

from harness.data import features

from harness.bench import pipeline
from harness.model import export
from harness.device import reference
from harness import tflite_info
from models.tinyconv import TinyConv


def spectrogram_like(n: int, seed: int) -> np.ndarray:
    """Smooth random int8 [n, 49, 40] fields (low-resolution noise upsampled), like log-mel features."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(n, 7, 5))
    smooth = np.kron(coarse, np.ones((7, 8)))[:, :49, :40] + 0.3 * rng.normal(size=(n, 49, 40))
    return np.clip(smooth * 60 - 20, -128, 127).astype(np.int8)


def random_tinyconv(seed: int, channels: int = 8) -> TinyConv:
    torch.manual_seed(seed)
    return TinyConv(channels=channels).eval()


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    old = os.environ.get("KWS_CACHE_DIR")
    os.environ["KWS_CACHE_DIR"] = str(tmp_path_factory.mktemp("export-cache"))
    torch.set_num_threads(1)
    yield
    if old is None:
        os.environ.pop("KWS_CACHE_DIR", None)
    else:
        os.environ["KWS_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def calib() -> np.ndarray:
    return spectrogram_like(48, seed=1)


@pytest.fixture(scope="module")
def model() -> TinyConv:
    return random_tinyconv(0)


@pytest.fixture(scope="module")
def exported(model, calib):
    return export.export_tflite(model, calib)


def test_ops_and_input_quantization(exported):
    m = tflite_info.read(exported)
    assert set(m.op_names) == {"RESHAPE", "CONV_2D", "FULLY_CONNECTED"}
    assert m.input.dtype == "INT8" and m.input.shape == (1, 49, 40)
    assert m.input.scales == [float(np.float32(features.INPUT_SCALE))]
    assert m.input.zero_points == [features.INPUT_ZERO_POINT] == [-128]
    assert m.output.dtype == "INT8" and m.output.shape == (1, 4)
    assert 15_000 < m.size < 25_000  # ~16.7 kB of int8 weights plus the flatbuffer


def test_weights_are_the_pytorch_weights(exported, model):
    """int8 weights * per-channel scale give back the PyTorch weights, in TFLite's layout."""
    m = tflite_info.read(exported)
    conv_op = next(op for op in m.ops if op.name == "CONV_2D")
    fc_op = next(op for op in m.ops if op.name == "FULLY_CONNECTED")
    w = m.tensors[conv_op.inputs[1]]
    assert w.shape == (8, 10, 8, 1)  # [O, H, W, I]
    deq = w.data.astype(np.float32) * np.asarray(w.scales, np.float32)[:, None, None, None]
    expected = model.conv.weight.detach().numpy().transpose(0, 2, 3, 1)
    assert np.abs(deq - expected).max() <= max(w.scales) / 2 + 1e-7
    fw = m.tensors[fc_op.inputs[1]]
    assert fw.shape == (4, 4000)
    fdeq = fw.data.astype(np.float32) * np.asarray(fw.scales, np.float32).reshape(-1, 1)
    assert np.abs(fdeq - model.fc.weight.detach().numpy()).max() <= max(fw.scales) / 2 + 1e-7
    assert conv_op.options["strideW"] == conv_op.options["strideH"] == 2
    assert conv_op.options["fusedActivationFunction"] == 1  # RELU


def test_tflm_agrees_with_pytorch(exported, model):
    x = spectrogram_like(200, seed=2)
    ref = reference.Reference(exported)
    q = ref.predict(x)
    with torch.no_grad():
        expected = model(torch.from_numpy(features.dequantize(x).astype(np.float32))).numpy()
    agree = float(np.mean(q.argmax(1) == expected.argmax(1)))
    assert agree >= 0.95, f"TFLM argmax agrees with PyTorch on {agree:.1%} only"
    inside = (q > -128) & (q < 127)  # saturated scores are clipped by design
    assert inside.mean() > 0.9
    err = np.abs(ref.dequantize(q) - expected)[inside]
    assert err.max() <= 4 * ref.output_scale, f"int8 scores off by {err.max() / ref.output_scale:.1f} LSB"


def test_structured_pruned_model_exports_smaller_shapes(calib):
    path = export.export_tflite(random_tinyconv(3, channels=5), calib)
    m = tflite_info.read(path)
    conv_op = next(op for op in m.ops if op.name == "CONV_2D")
    fc_op = next(op for op in m.ops if op.name == "FULLY_CONNECTED")
    assert m.tensors[conv_op.inputs[1]].shape == (5, 10, 8, 1)
    assert m.tensors[conv_op.outputs[0]].shape == (1, 25, 20, 5)
    assert m.tensors[fc_op.inputs[1]].shape == (4, 2500)
    assert reference.predict(path, calib[:3]).shape == (3, 4)


def _on_grid(model: TinyConv, levels: np.ndarray, seed: int) -> TinyConv:
    """Put every output channel's weights on ``levels * s_c`` (a per-channel b-bit grid)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for layer in (model.conv, model.fc):
            w = layer.weight.detach().numpy()
            flat = w.reshape(w.shape[0], -1)
            for c in range(flat.shape[0]):
                s = np.abs(flat[c]).max() / np.abs(levels).max()
                flat[c] = rng.choice(levels, size=flat.shape[1]) * s
            layer.weight.copy_(torch.from_numpy(flat.reshape(w.shape)))
    return model


def _distinct_per_channel(path) -> list[int]:
    m = tflite_info.read(path)
    counts = []
    for op in m.ops:
        if op.name in ("CONV_2D", "FULLY_CONNECTED"):
            w = m.tensors[op.inputs[1]].data
            counts += [len(np.unique(row)) for row in w.reshape(w.shape[0], -1)]
    return counts


def test_float_weights_have_many_levels(exported):
    """The grid tests below could fail: an unconstrained model uses far more than 16 levels."""
    assert min(_distinct_per_channel(exported)) > 16


@pytest.mark.parametrize("name, levels, limit", [
    ("sym-4", np.arange(-7, 8), 16),
    ("asym-2", np.array([-1, 0, 1, 2]), 4),  # (k - z) for k in 0..3, z = 1
])
def test_sub8bit_grid_survives_export(name, levels, limit, calib):
    path = export.export_tflite(_on_grid(random_tinyconv(4), levels.astype(np.float32), seed=5), calib)
    counts = _distinct_per_channel(path)
    assert max(counts) <= limit, f"{name}: up to {max(counts)} int8 values per output channel"
    assert min(counts) >= limit - 1  # the grid's levels are really used, not collapsed


def test_second_export_is_a_cache_hit(model, calib, exported, tmp_path, monkeypatch):
    def no_conversion(*args, **kwargs):
        raise AssertionError("converter called on a cache hit")

    monkeypatch.setattr(export, "_convert", no_conversion)
    t0 = time.perf_counter()
    again = export.export_tflite(model, calib)
    assert again == exported and time.perf_counter() - t0 < 1.0
    copy = export.export_tflite(model, calib, out=tmp_path / "sub" / "m.tflite")
    assert copy.read_bytes() == exported.read_bytes()


def test_corrupt_cached_export_is_rebuilt(model, calib, exported, caplog):
    good = exported.read_bytes()
    exported.write_bytes(good[: len(good) // 2])
    with caplog.at_level("WARNING"):
        path = export.export_tflite(model, calib)
    assert path == exported and tflite_info.read(path).size > 15_000
    assert "rebuilding cached export" in caplog.text


def test_softmax_option(model, calib):
    m = export.verify(export.export_tflite(model, calib, softmax=True), softmax=True)
    assert m.op_names[-1] == "SOFTMAX"
    assert m.output.scales == [1 / 256] and m.output.zero_points == [-128]


def test_verify_rejects_other_input_quantization(exported):
    m = tflite_info.read(exported)
    m.input.scales = [0.1]
    with pytest.raises(HarnessError, match="input quantization"):
        export.verify(m)


def test_bad_inputs_are_one_line_errors(model):
    with pytest.raises(HarnessError, match="TinyConv") as exc:
        export.export_tflite(torch.nn.Sequential(torch.nn.Linear(2, 2)), spectrogram_like(2, 0))
    assert "\n" not in str(exc.value)
    with pytest.raises(HarnessError, match="int8"):
        export.export_tflite(model, np.zeros((2, 49, 40), np.float32))
    with pytest.raises(HarnessError, match="int8"):
        export.export_tflite(model, np.zeros((2, 40, 49), np.int8))


def test_variant_tflite_uses_plain_model_and_training_split(model, calib, exported, monkeypatch):
    from harness.model import variants

    calls = {}

    def fake_context(dataset_dir=None, progress=False):
        calls["dataset"] = dataset_dir
        return types.SimpleNamespace(x_train=calib)

    def fake_make(variant_id, dataset_dir=None, progress=False, context=None):
        calls["id"] = variant_id
        return types.SimpleNamespace(plain_model=lambda: model)

    monkeypatch.setattr(variants, "load_context", fake_context)
    monkeypatch.setattr(variants, "make", fake_make)
    assert pipeline.variant_tflite("fp32", dataset_dir="/data/sc") == exported  # same weights + data: cache hit
    assert calls == {"dataset": "/data/sc", "id": "fp32"}
    assert len(export.calibration_features(np.zeros((1000, 49, 40), np.int8))) == export.CALIBRATION_SAMPLES


def test_cli_inspects_a_tflite(exported, tmp_path, capsys):
    import json

    from harness import cli

    assert cli.main(["export", str(exported), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ops"] == ["RESHAPE", "CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert info["input"]["zero_point"] == -128 and 4_000 < info["arena_bytes"] < 64_000
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(exported.read_bytes()[:1000])
    assert cli.main(["export", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(bad) in err and err.count("\n") == 1
