"""``python -m harness perf`` on one model: the row it measures is consistent with itself and with
the board's own counts, the table renders, and bad input is one error line.

The model is TinyConv with random weights (the firmware path is what is measured, as in
test_emulator_model.py, whose cached build this shares); no timed assertions.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from harness import cli
from harness.device import frontend_native
from harness.commands import perf

needs_arm = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm")


@pytest.fixture(scope="module")
def tflite():
    import torch

    from harness.model import export
    from models.tinyconv import TinyConv
    from tests.test_emulator_model import spectrogram_like

    torch.set_num_threads(1)
    torch.manual_seed(0)
    return export.export_tflite(TinyConv().eval(), spectrogram_like(64, seed=1))


def _clip() -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(16000) / 16000
    burst = np.sin(2 * np.pi * 300 * t * (1 + t)) * (np.abs(t - 0.5) < 0.2)
    return np.clip(burst * 9000 + rng.normal(0, 300, 16000), -32768, 32767).astype(np.int16)


@pytest.mark.slow
@needs_arm
def test_perf_row_on_the_emulated_board(tflite):
    clip = _clip()
    feats = frontend_native.features_c(clip)
    row = perf.measure(tflite, clip, feats, model_id="tinyconv-random")
    assert row["macs"] > 0
    assert row["instructions_per_mac"] == pytest.approx(row["network_instructions"] / row["macs"])
    assert row["network_cycles_low"] <= row["network_cycles_est"] <= row["network_cycles_high"]
    # a Cortex-M4 retires at most one instruction per cycle
    assert row["network_cycles_low"] >= 0.9 * row["network_instructions"]
    assert row["network_ms_est"] == pytest.approx(row["network_cycles_est"] / 64e3, rel=1e-3)
    assert 0 < row["model_rodata"] < row["flash"]
    assert row["frontend_instructions"] > 0 and row["frontend_cycles_est"] >= row["frontend_instructions"] * 0.9
    stages = row["frontend_stages"]
    assert {"window", "fft", "filterbank", "noise reduction", "pcan", "log"} <= set(stages)
    assert stages["fft"]["instructions"] == max(v["instructions"] for v in stages.values())
    ratio = row["aot_vs_ref"]
    assert ratio == perf.NO_REF or (isinstance(ratio, float) and ratio > 0)
    headers, body = perf.table_rows([row])
    assert len(body[0]) == len(headers) and body[0][0] == "tinyconv-random"


def test_perf_rejects_an_unknown_variant(capsys):
    assert cli.main(["perf", "--variants", "fp33"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fp33" in err[0]


def test_perf_rejects_a_missing_tflite(tmp_path, capsys):
    assert cli.main(["perf", "--tflite", str(tmp_path / "nope.tflite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.tflite" in err[0]
