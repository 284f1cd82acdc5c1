"""The TFLM host reference: golden int8 scores, arena size, and clean errors on broken files."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from harness.errors import HarnessError

from harness.data import features

from harness.model import export
from harness.device import reference
from harness import tflite_info
from models.tinyconv import TinyConv


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    old = os.environ.get("KWS_CACHE_DIR")
    os.environ["KWS_CACHE_DIR"] = str(tmp_path_factory.mktemp("reference-cache"))
    try:
        torch.set_num_threads(1)
        torch.manual_seed(7)
        rng = np.random.default_rng(7)
        calib = rng.integers(-128, 128, size=(32, 49, 40)).astype(np.int8)
        yield export.export_tflite(TinyConv().eval(), calib)
    finally:
        if old is None:
            os.environ.pop("KWS_CACHE_DIR", None)
        else:
            os.environ["KWS_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    return np.random.default_rng(8).integers(-128, 128, size=(40, 49, 40)).astype(np.int8)


def test_predict_is_batch_of_invokes_and_deterministic(exported, inputs):
    ref = reference.Reference(exported)
    scores = reference.predict(exported, inputs)
    assert scores.dtype == np.int8 and scores.shape == (40, 4)
    assert np.array_equal(scores[5], ref.invoke(inputs[5]))
    assert np.array_equal(scores, ref.predict(inputs))
    assert len(np.unique(scores.argmax(1))) > 1  # not a constant output


@pytest.mark.filterwarnings("ignore::UserWarning")  # tf.lite.Interpreter deprecation notice
def test_equals_tflite_reference_kernels(exported, inputs):
    """TFLM's Python interpreter == tf.lite with BUILTIN_REF kernels, bit for bit (docs/ARCHITECTURE.md section 7)."""
    tf = export._quiet_tensorflow()
    interp = tf.lite.Interpreter(model_path=str(exported),
                                 experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    expected = []
    for x in inputs:
        interp.set_tensor(i, x[None])
        interp.invoke()
        expected.append(interp.get_tensor(o)[0])
    assert np.array_equal(reference.predict(exported, inputs), np.array(expected))


def test_accuracy(exported, inputs):
    pred = reference.predict(exported, inputs).argmax(1)
    labels = pred.copy()
    labels[::2] = (labels[::2] + 1) % 4  # every other label wrong
    assert reference.accuracy(exported, inputs, labels) == pytest.approx(0.5)
    with pytest.raises(HarnessError, match="labels"):
        reference.accuracy(exported, inputs, labels[:3])


def test_arena_size_is_captured(exported):
    used = reference.arena_bytes(exported)
    assert 4_000 < used < 64_000  # TinyConv: ~9.6 kB (25x20x8 int8 activations + bookkeeping)
    assert used >= 25 * 20 * 8  # at least the conv output lives in the arena


def test_parse_arena_total():
    text = "[RecordingMicroAllocator] Arena allocation total 9632 bytes\n[...] head 8000 bytes\n"
    assert reference.parse_arena_total(text) == 9632
    with pytest.raises(HarnessError, match="arena"):
        reference.parse_arena_total("nothing here")


def test_capture_c_output_catches_fd_writes():
    with reference.capture_c_output() as out:
        os.write(2, b"from C stderr\n")
        os.write(1, b"from C stdout\n")
    assert "from C stderr" in out.text and "from C stdout" in out.text


def test_too_small_arena_is_an_error_not_a_crash(exported):
    with pytest.raises(HarnessError, match="arena") as exc:
        reference.Reference(exported, arena_size=2048)
    assert str(exported) in str(exc.value)


@pytest.mark.parametrize("cut", [0, 7, 100, 0.5, -1])
def test_truncated_file_is_a_one_line_error(exported, tmp_path, cut):
    data = exported.read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (len(data) + cut if cut < 0 else cut)
    bad = tmp_path / "truncated.tflite"
    bad.write_bytes(data[:n])
    with pytest.raises(HarnessError) as exc:
        reference.predict(bad, np.zeros((1, 49, 40), np.int8))
    message = str(exc.value)
    assert str(bad) in message and "\n" not in message


def test_not_a_tflite_and_missing_file(exported, tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(HarnessError, match="not a .tflite"):
        reference.Reference(junk)
    with pytest.raises(HarnessError, match="cannot read"):
        reference.Reference(tmp_path / "missing.tflite")
    # right identifier, root table pointing past the end
    data = bytearray(exported.read_bytes())
    data[0:4] = (len(data) + 1000).to_bytes(4, "little")
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(bytes(data))
    with pytest.raises(HarnessError, match="broken.tflite"):
        reference.Reference(broken)


def test_wrong_input_is_an_error(exported):
    ref = reference.Reference(exported)
    with pytest.raises(HarnessError, match="int8"):
        ref.invoke(np.zeros((49, 40), np.float32))
    with pytest.raises(HarnessError, match="shape"):
        ref.invoke(np.zeros((40, 49, 2), np.int8))
    with pytest.raises(HarnessError, match="int8"):
        ref.predict(np.zeros((3, 49, 41), np.int8))


def test_tflite_info_summary(exported):
    s = tflite_info.read(exported).summary()
    assert s["ops"] == ["RESHAPE", "CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert s["input"]["zero_point"] == -128 and s["input"]["scale"] == pytest.approx(features.INPUT_SCALE)
    assert s["weight_bytes"] >= 8 * 80 + 4 * 4000  # int8 conv + fc weights (+ int32 biases)


@pytest.mark.parametrize("mutate, message", [
    (lambda m: setattr(m.subgraphs[0].operators[1], "inputs", [7, 999, 5]), "refers to tensor 999"),
    (lambda m: setattr(m.subgraphs[0].operators[0], "opcodeIndex", 42), "opcode 42"),
    (lambda m: setattr(m.subgraphs[0].tensors[3], "buffer", 10_000), "buffer 10000"),
])
def test_well_formed_flatbuffer_with_bad_indices_is_rejected(exported, tmp_path, mutate, message):
    """A parseable file whose indices point nowhere must fail in Python, before TFLM dereferences them."""
    import flatbuffers

    schema = tflite_info._schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(exported.read_bytes(), 0))
    mutate(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    bad = tmp_path / "bad_index.tflite"
    bad.write_bytes(bytes(builder.Output()))
    with pytest.raises(HarnessError, match=message):
        reference.Reference(bad)


def test_capture_c_output_catches_python_prints_too():
    with reference.capture_c_output() as out:
        print("python-level print")
    assert "python-level print" in out.text
