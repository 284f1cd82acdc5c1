"""On the board (emulated by default): memory from the ELF, on-device timing, accuracy, exactness.

Timings are in the board's own timer unit from HELLO (instructions in QEMU with -icount, cycles on a
Nano 33 BLE Sense), recorded with that unit and never relabelled as milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.data import features
from harness.device import reference

BENCH_N, BENCH_WARMUP = 10, 2  # timed inferences and warm-ups per BENCH

# Board timer units that are times (ratio to host latency is a plain factor).
_SECONDS_PER_UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3}


def _size(sizes: Any, *names: str) -> int | None:
    for name in names:
        value = sizes.get(name) if isinstance(sizes, dict) else getattr(sizes, name, None)
        if value is not None:
            return int(value)
    return None


@pytest.mark.kws_metrics("flash", "ram")
def test_device_memory(variant_id: str, firmware_build: Any, record: Any) -> None:
    """Flash (text + rodata + data) and RAM (data + bss) of the firmware ELF."""
    sizes = getattr(firmware_build, "sizes", {})
    flash = _size(sizes, "flash", "flash_bytes")
    ram = _size(sizes, "ram", "ram_bytes")
    assert flash is not None and ram is not None, f"{variant_id}: build gives no flash/RAM sizes ({sizes})"
    record(variant_id, "flash", flash, "B")
    record(variant_id, "ram", ram, "B")
    model = _size(sizes, "model_flash", "model", "model_bytes")
    if model is not None:
        record(variant_id, "flash_model", model, "B")
    rodata = _size(sizes, "model_rodata")
    if rodata:  # weights and tables as stored (packed / sparse, see HELLO's weights=)
        record(variant_id, "model_rodata", rodata, "B")
    record.assert_budgets()


@pytest.mark.kws_metrics("device_network")
def test_device_network_time(variant_id: str, board: Any, device_samples: tuple[np.ndarray, np.ndarray],
                             host_latency_ms: float, record: Any) -> None:
    """BENCH: N timed inferences after W warm-ups, timed on the device; plus device/host ratio."""
    unit = board.info.timer_unit
    board.infer_features(device_samples[0][0])  # BENCH runs on the last features sent
    bench = board.bench(BENCH_N, BENCH_WARMUP)
    record(variant_id, "device_network", bench.mean, unit)
    record(variant_id, "device_network_best", bench.min, unit, passed=None)
    record(variant_id, "device_network_worst", bench.max, unit, passed=None)
    if unit in _SECONDS_PER_UNIT:
        ratio, runit = bench.mean * _SECONDS_PER_UNIT[unit] * 1e3 / host_latency_ms, "x"
    elif unit == "cycles" and board.info.clock_hz:
        ratio, runit = bench.mean / board.info.clock_hz * 1e3 / host_latency_ms, "x"
    else:  # instructions: no time on the emulator; count them at one per cycle of the board's clock
        clock = board.info.clock_hz or 64_000_000
        ratio, runit = bench.mean / clock * 1e3 / host_latency_ms, f"x ({unit} at {clock / 1e6:g} MHz)"
    record(variant_id, "device_host_ratio", ratio, runit)
    assert bench.min <= bench.mean <= bench.max
    record.assert_budgets()


@pytest.mark.kws_metrics("device_preprocessing", "device_postprocessing", "device_total", "audio_exact_fraction")
def test_device_audio_pipeline(variant_id: str, board: Any, audio_clips: list[tuple[np.ndarray, int]],
                               tflite_path: Path, record: Any) -> None:
    """INFER_AUDIO: preprocessing (front end), network and postprocessing time on 1 s clips, and the
    whole audio path (device front end + network) bit-exact with the host (TF front end + TFLM)."""
    assert audio_clips, "no keyword clips with audio in the test split"
    unit = board.info.timer_unit
    runs = [board.infer_audio(pcm) for pcm, _ in audio_clips]
    pre = float(np.mean([r.preprocessing for r in runs]))
    net = float(np.mean([r.network for r in runs]))
    post = float(np.mean([r.postprocessing for r in runs]))
    record(variant_id, "device_preprocessing", pre, unit)
    record(variant_id, "device_audio_network", net, unit, passed=None)
    record(variant_id, "device_postprocessing", post, unit)
    record(variant_id, "device_total", pre + net + post, unit)
    correct = sum(int(r.label == label) for r, (_, label) in zip(runs, audio_clips))
    record(variant_id, "device_audio_correct", correct / len(runs), "", passed=None)
    host_x = np.stack([features.features(pcm) for pcm, _ in audio_clips])
    expected = reference.predict(tflite_path, host_x).astype(np.int64)
    got = np.array([r.scores for r in runs], dtype=np.int64)
    same = float((got == expected).all(axis=1).mean())
    record(variant_id, "audio_exact_fraction", same, "", passed=same == 1.0)
    assert same == 1.0, (f"{variant_id}: audio path on the device differs from host front end + TFLM "
                         f"(device {got.tolist()} vs host {expected.tolist()})")
    record.assert_budgets()


def test_device_cycle_estimate(variant_id: str, board: Any, board_spec: Any, firmware_build: Any,
                               device_samples: tuple[np.ndarray, np.ndarray],
                               audio_clips: list[tuple[np.ndarray, int]], record: Any) -> None:
    """Emulated board only: estimated Cortex-M4 cycles (and ms at the Nano's 64 MHz) of the network
    and the front end, from QEMU's execution log weighted with the TRM's cycle counts
    (harness/device/cycles.py; cached by build hash, so only a new build pays the traced run)."""
    import pytest

    from harness.device import cycles

    if board.info.timer_unit != "instructions" or getattr(board_spec, "env", None) != "emu_m4":
        pytest.skip("cycle estimate from QEMU's log: emulated board only (a real board reports cycles)")
    est = cycles.trace_firmware(firmware_build, device_samples[0][0], audio_clips[0][0] if audio_clips else None)
    for name, metric in (("network", "device_network"), ("preprocessing", "device_preprocessing")):
        if name in est:
            record(variant_id, f"{metric}_cycles_est", est[name]["cycles_est"], "cycles", passed=None)
            record(variant_id, f"{metric}_ms_est", est[name]["ms_est"], "ms @64 MHz", passed=None)
    net = est["network"]
    # the traced window and the firmware's own timer count the same code (timer resolution 40)
    assert abs(net["instructions"] - net["board_instructions"]) <= max(200, net["board_instructions"] // 100), net
    assert net["cycles_low"] <= net["cycles_est"] <= net["cycles_high"]


@pytest.mark.kws_metrics("device_accuracy", "exact_fraction", "exact")
def test_device_accuracy_and_exactness(variant_id: str, board: Any, tflite_path: Path,
                                       device_samples: tuple[np.ndarray, np.ndarray], record: Any) -> None:
    """Device scores on --device-samples test inputs vs the TFLM reference: accuracy and bit-exactness."""
    x, y = device_samples
    expected = reference.predict(tflite_path, x)
    got = np.array([board.infer_features(xi).scores for xi in x], dtype=np.int64)
    assert got.shape == expected.shape, f"{variant_id}: board returned {got.shape} scores, reference {expected.shape}"
    same = (got == expected.astype(np.int64)).all(axis=1)
    record(variant_id, "device_accuracy", float((got.argmax(1) == y).mean()), "")
    record(variant_id, "exact_fraction", float(same.mean()), "")
    row = record(variant_id, "exact", float(same.all()), "bool")  # the budget key `exact` decides
    if row.passed is False:
        first = int(np.flatnonzero(~same)[0])
        record.failures.append(
            f"{variant_id}: {int((~same).sum())}/{len(same)} inputs differ from the TFLM reference "
            f"(first: input {first}, device {got[first].tolist()} vs reference {expected[first].tolist()})")
    record.assert_budgets()
