"""The front end's fast routines against its reference pipeline, on the host build.

WHY: kws_frontend.c and kws_fft.c reorganise every stage for speed (window with packed multiplies
and an OR instead of a maximum, FFT stage 1 with the input shift fused into the scaling and the
zero padding skipped, the real split emitting only needed bins, the filterbank unrolled from a
generated term list, normalised PCAN and log, a multiply-and-saturate quantization). Each rewrite
must give TF's bits on every input, not only on the clips of test_frontend_c.py. These tests run
the portable build of the same algorithms against kws_frontend_ref.c (TF's stages as TF writes
them, which test_frontend_c.py holds against the TF op) on thousands of random and extreme frames;
tests/test_frontend_c_qemu.py does the same for the Cortex-M4 build (DSP instructions, asm, VSQRT).
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from harness.device import frontend_native

SR = 16000


@pytest.fixture(scope="module")
def lib():
    lib = frontend_native.load_library()
    vp = ctypes.c_void_p
    lib.kws_fe_ref_compute_u16.argtypes = [vp, ctypes.c_int, vp]
    lib.kws_fe_ref_compute_u16.restype = ctypes.c_int
    lib.kws_fft_energy.argtypes = [vp, ctypes.c_int, ctypes.c_int, ctypes.c_int, vp]
    lib.kws_fft_energy.restype = None
    lib.kws_fe_ref_spectrum.argtypes = [vp, ctypes.c_int, vp]
    lib.kws_fe_ref_spectrum.restype = None
    lib.kws_fe_filterbank.argtypes = [vp, vp]
    lib.kws_fe_filterbank.restype = None
    lib.kws_fe_ref_filterbank.argtypes = [vp, vp]
    lib.kws_fe_ref_filterbank.restype = None
    lib.kws_frontend_quantize.argtypes = [ctypes.c_uint16]
    lib.kws_frontend_quantize.restype = ctypes.c_int8
    return lib


def _random_clips(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Clips whose frames span the front end's range: noise at levels from 1 to clipping, full-range
    uniform, tones and chirps, full-scale squares and Nyquist patterns, sparse impulses with -32768,
    constants, silence with bursts (the noise estimate rises and falls), and mixtures."""
    t = np.arange(SR) / SR
    out = []
    for i in range(n):
        kind = i % 9
        level = 10 ** rng.uniform(0, 5.2)
        if kind == 0:
            a = rng.normal(0, level, SR)
        elif kind == 1:
            a = rng.integers(-32768, 32768, SR)
        elif kind == 2:
            f0, f1 = rng.uniform(20, 8000, 2)
            a = np.sin(2 * np.pi * (f0 * t + (f1 - f0) / 2 * t**2)) * level
        elif kind == 3:
            period = int(rng.integers(1, 64))
            a = np.where((np.arange(SR) // period) % 2 == 0, 32767, -32768)
        elif kind == 4:
            a = np.where(rng.random(SR) < 0.02, rng.choice([-32768, 32767, 1, -1, 12345], SR), 0)
        elif kind == 5:
            a = np.full(SR, rng.integers(-32768, 32768))
        elif kind == 6:
            a = rng.normal(0, level, SR) * (np.sin(2 * np.pi * rng.uniform(0.5, 8) * t) > 0.3)
        elif kind == 7:
            a = np.cumsum(rng.normal(0, level / 20, SR))
        else:
            a = rng.normal(0, level, SR) + np.sin(2 * np.pi * rng.uniform(50, 4000) * t) * 40000
        out.append(np.clip(a, -32768, 32767).astype(np.int16))
    return out


def test_fast_pipeline_equals_reference_on_random_clips(lib):
    rng = np.random.default_rng(8)
    fast = np.zeros((49, 40), np.uint16)
    ref = np.zeros((49, 40), np.uint16)
    clips = _random_clips(rng, 360)  # 17,640 frames
    for i, clip in enumerate(clips):
        assert lib.kws_frontend_compute_u16(clip, SR, fast.ctypes.data) == 0
        assert lib.kws_fe_ref_compute_u16(clip.ctypes.data, SR, ref.ctypes.data) == 0
        np.testing.assert_array_equal(fast, ref, err_msg=f"clip {i} (kind {i % 9})")
    # the clips reach the stages' edge cases: silent and full-scale frames, features at both ends
    assert sum(c.min() == -32768 for c in clips) > 50 and sum(np.all(c == 0) for c in clips) == 0


def test_fft_stage_equals_kissfft_at_every_shift(lib):
    """kws_fft_energy (stage 1 fused with the shift, zero padding skipped, split to energies) against
    kiss_fftr and TF's magnitudes, on windowed-looking frames including -32768 and int16 wrap-around."""
    rng = np.random.default_rng(9)
    frame = np.zeros(512, np.int16)
    fast = np.zeros(257, np.int32)
    ref = np.zeros(257, np.int32)
    lo, hi = 5, 241
    for n in range(3000):
        shift = n % 16
        kind = n % 4
        if kind == 0:
            v = rng.integers(-32768, 32768, 480)
        elif kind == 1:
            v = rng.integers(-(2 ** (15 - shift)), 2 ** (15 - shift), 480)  # as the window's shift leaves them
        elif kind == 2:
            v = np.where(np.arange(480) % 2 == 0, 32767, -32768) * (rng.random(480) < 0.9)
        else:
            v = np.where(rng.random(480) < 0.05, -32768, rng.integers(-300, 300, 480))
        frame[:480] = v
        lib.kws_fft_energy(frame.ctypes.data, shift, lo, hi, fast.ctypes.data)
        lib.kws_fe_ref_spectrum(frame.ctypes.data, shift, ref.ctypes.data)
        np.testing.assert_array_equal(fast[lo:hi], ref[lo:hi], err_msg=f"frame {n}, shift {shift}")


def test_unrolled_filterbank_equals_tf_loop(lib):
    rng = np.random.default_rng(10)
    energy = np.zeros(257, np.uint32)
    fast = np.zeros(41, np.uint64)
    ref = np.zeros(41, np.uint64)
    for n in range(2000):
        top = [2**31 + 1, 2**16, 2**32][n % 3]  # squared magnitudes reach 2^31; any uint32 must work
        energy[:] = rng.integers(0, top, 257, dtype=np.uint64).astype(np.uint32)
        if n % 10 == 0:
            energy[:] = 0xFFFFFFFF
        lib.kws_fe_filterbank(energy.ctypes.data, fast.ctypes.data)
        lib.kws_fe_ref_filterbank(energy.ctypes.data, ref.ctypes.data)
        np.testing.assert_array_equal(fast[1:], ref[1:], err_msg=f"vector {n}")


def test_quantization_on_every_uint16(lib):
    v = np.arange(65536, dtype=np.int64)
    expected = np.clip((v * 256 + 333) // 666 - 128, -128, 127)
    got = np.array([lib.kws_frontend_quantize(int(x)) for x in v])
    np.testing.assert_array_equal(got, expected)
