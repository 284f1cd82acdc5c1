"""The real runtime on the emulated board: a TinyConv int8 .tflite compiled by harness/device/codegen.py,
built for the Cortex-M4F, run in QEMU, compared bit for bit with the TFLM reference kernels.

The .tflite comes from random TinyConv weights (what is tested is the firmware path, not a
trained model); export and build are cached, so only the first session pays TensorFlow's import.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.device import emulator, firmware
from harness.device.link import Board

pytestmark = [pytest.mark.device, pytest.mark.slow]

N_SAMPLES = 64  # the default sample of the issue for the emulated board


def spectrogram_like(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(n, 7, 5))
    smooth = np.kron(coarse, np.ones((7, 8)))[:, :49, :40] + 0.3 * rng.normal(size=(n, 49, 40))
    return np.clip(smooth * 60 - 20, -128, 127).astype(np.int8)


@pytest.fixture(scope="module")
def tflite():
    import torch

    from harness.model import export
    from models.tinyconv import TinyConv

    torch.set_num_threads(1)
    torch.manual_seed(0)
    return export.export_tflite(TinyConv().eval(), spectrogram_like(64, seed=1))


@pytest.fixture(scope="module")
def build(tflite):
    return firmware.build(tflite, env="emu_m4", model_id="tinyconv-random")


def test_device_scores_equal_the_tflm_reference(tflite, build):
    from harness.device import reference

    x = spectrogram_like(N_SAMPLES, seed=2)
    expected = reference.predict(tflite, x)
    with emulator.start(build) as emu, Board(emu.url, expect_build_hash=build.build_hash) as b:
        info = b.verify()
        assert info.model_id == "tinyconv-random" and info.arena_bytes == build.generated["arena_bytes"]
        got = np.array([b.infer_features(xi).scores for xi in x], dtype=np.int8)
        bench = b.bench(3, 1)
    assert (got == expected).all(), f"{int((got != expected).any(axis=1).sum())} of {N_SAMPLES} differ"
    assert build.generated["macs"] == 336_000
    per_mac = bench.mean / build.generated["macs"]
    assert 0.5 < per_mac < 50, per_mac  # instructions per MAC of a plain C int8 kernel on an M4


def test_model_bytes_are_split_out_of_the_elf(build):
    s = build.sizes
    weights = build.generated["weight_bytes"]
    assert weights <= s.model_rodata <= weights + 1024  # the weights plus small per-layer tables
    assert s.model_text > 0 and s.model_ram >= build.generated["arena_bytes"]
    assert s.model_flash < s.flash


def test_tflm_backend_model_sources(tflite, tmp_path):
    """The tflm backend (real board only) gets the flatbuffer as a C array; it must compile for the
    M4 and hold the .tflite byte for byte (the TFLM build itself needs the registry)."""
    import re
    import subprocess

    info = firmware._write_tflm_model(tflite, tmp_path, "tinyconv-random")
    src = (tmp_path / "kws_model_tflite.c").read_text()
    body = src[src.index("kws_model_tflite[] = {") :]
    data = bytes(int(v) for v in re.findall(r"\d+", body[body.index("{") : body.index("}")]))
    assert data == tflite.read_bytes() and info["tflite_bytes"] == len(data)
    from harness.device import reference

    assert info["arena_bytes"] >= reference.arena_bytes(tflite)
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-c", "-Wall", "-Werror",
                    "-I", str(firmware.FIRMWARE_DIR / "lib" / "kws_runtime"), "-I", str(tmp_path),
                    str(tmp_path / "kws_model_tflite.c"), "-o", str(tmp_path / "m.o")], check=True)


def test_ref_backend_on_the_emulated_board(tflite, build, capsys):
    """--backend ref: same generator, TFLM-reference-style kernels, bit-exact, and slower than aot."""
    import json

    from harness import cli
    from harness.device import reference

    ref = firmware.build(tflite, env="emu_m4", backend="ref", model_id="tinyconv-random")
    assert ref.build_hash != build.build_hash and ref.generated["backend"] == "ref"
    x = spectrogram_like(8, seed=3)
    with emulator.start(ref) as emu, Board(emu.url, expect_build_hash=ref.build_hash) as b:
        info = b.verify()
        assert info.backend == "ref" and info.weights == "op1 CONV_2D int8; op3 FULLY_CONNECTED int8"
        got = np.array([b.infer_features(xi).scores for xi in x], dtype=np.int8)
    np.testing.assert_array_equal(got, reference.predict(tflite, x))
    assert cli.main(["device", "bench", "--tflite", str(tflite), "--variant", "tinyconv-random", "-n", "1", "-w", "0",
                     "--vs-ref", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hello"]["backend"] == "aot" and out["ref_mean"] > out["mean"] > 0
    assert out["speedup_vs_ref"] == pytest.approx(out["ref_mean"] / out["mean"])
