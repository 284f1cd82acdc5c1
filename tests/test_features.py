"""micro_speech front end, the int8 rule of the contract, TF-style augmentation, caching."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data import audio, features
from harness.errors import HarnessError


def _tone(freq: float = 1000.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(16000) / 16000
    return audio.to_int16(amp * np.sin(2 * np.pi * freq * t))


def test_frontend_shape_dtype_and_response():
    f = features.frontend(_tone())
    assert f.shape == (49, 40) and f.dtype == np.uint16
    quiet = features.frontend(np.zeros(16000, np.int16))
    assert f.mean() > quiet.mean() + 50  # a loud tone lights up its band; silence stays low
    low, high = features.frontend(_tone(300)), features.frontend(_tone(4000))
    assert np.argmax(low[-10:].mean(0)) < np.argmax(high[-10:].mean(0))  # mel channels rise with pitch


def test_frontend_pads_short_clips_and_batch_matches_single():
    x = _tone()
    assert np.array_equal(features.frontend(x[:12000]), features.frontend(np.concatenate([x[:12000], np.zeros(4000, np.int16)])))
    batch = features.frontend_batch(np.stack([x, x[::-1].copy()]))
    assert np.array_equal(batch[0], features.frontend(x)) and np.array_equal(batch[1], features.frontend(x[::-1]))
    with pytest.raises(HarnessError, match="frontend_batch"):
        features.frontend_batch(np.zeros((2, 100), np.int16))


def test_frontend_equals_tf_speech_commands_micro_preprocessing():
    """speech_commands --preprocess=micro: float out * 10/256; ours dequantizes to within half a step."""
    import tensorflow as tf
    from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op as op

    x = _tone(700, 0.2)
    ref = op.audio_microfrontend(tf.constant(x), sample_rate=16000, window_size=30, window_step=20,
                                 num_channels=40, out_scale=1, out_type=tf.float32).numpy() * (10.0 / 256.0)
    assert np.array_equal(features.frontend(x), op.audio_microfrontend(
        tf.constant(x), sample_rate=16000, window_size=30, window_step=20, num_channels=40,
        out_scale=1, out_type=tf.uint16).numpy())
    deq = features.dequantize(features.features(x))
    ok = ref < 127.4 * features.INPUT_SCALE + 1  # outside the clamp
    assert np.all(np.abs(deq - ref)[ok] <= features.INPUT_SCALE / 2 + 1e-4)


def test_quantize_rule_of_the_contract():
    v = np.array([0, 1, 2, 332, 333, 665, 666, 1000, 65535], np.uint16)
    q = features.quantize(v)
    assert q.dtype == np.int8
    expected = np.clip((v.astype(np.int64) * 256 + 333) // 666 - 128, -128, 127)
    assert np.array_equal(q, expected)
    assert list(q[:3]) == [-128, -128, -127] and q[3] == 0 and q[4] == 0 and q[-1] == 127
    rng = np.random.default_rng(0)
    r = rng.integers(0, 700, 1000).astype(np.uint16)
    assert np.array_equal(features.quantize(r), np.clip((r.astype(np.int64) * 256 + 333) // 666 - 128, -128, 127))


def test_dequantize_scale_and_zero_point():
    assert features.INPUT_ZERO_POINT == -128
    assert features.INPUT_SCALE == pytest.approx(666 / 256 * 10 / 256)
    q = np.array([-128, -127, 0, 127], np.int8)
    d = features.dequantize(q)
    assert d.dtype == np.float32
    assert np.allclose(d, (q.astype(np.float64) + 128) * features.INPUT_SCALE)
    assert d[0] == 0.0


def test_assemble_follows_tf_augmentation():
    rng = np.random.default_rng(0)
    word = np.zeros(16000, np.int16)
    word[7000:9000] = 10000
    bg = [audio.to_int16(0.5 * np.random.default_rng(1).standard_normal(40000).clip(-1, 1))]
    clean = features.assemble(word, "yes", bg, rng, augment=False)
    assert np.array_equal(clean, word)  # evaluation clips: no shift, no background
    shifted = [np.nonzero(features.assemble(word, "yes", [], rng, augment=True))[0][0] - 7000 for _ in range(200)]
    assert max(np.abs(shifted)) <= 1600 and len(set(shifted)) > 50  # up to 100 ms either way
    noisy = [features.assemble(word, "yes", bg, rng, augment=True) for _ in range(300)]
    with_bg = np.mean([np.any(n[:6000] != 0) for n in noisy])
    assert 0.7 < with_bg < 0.9  # background_frequency 0.8
    assert max(np.abs(n[:5000].astype(float)).max() for n in noisy) < 0.1 * 0.5 * 32768 * 1.05  # volume <= 0.1
    silence = [features.assemble(None, "silence", bg, rng, augment=False) for _ in range(50)]
    levels = [np.abs(s.astype(float)).mean() for s in silence]
    assert min(levels) < 0.2 * max(levels)  # volume uniform(0, 1)


def test_split_features_cached(small_splits, monkeypatch):
    x1, y1 = features.split_features(small_splits, "validation", progress=False, processes=1)
    assert x1.dtype == np.int8 and x1.shape == (len(small_splits.validation), 49, 40)
    assert list(y1) == [s.label_index for s in small_splits.validation]

    def boom(*a, **k):
        raise AssertionError("recomputed instead of using the cache")

    monkeypatch.setattr(features, "compute", boom)
    x2, y2 = features.split_features(small_splits, "validation", progress=False, processes=1)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)


def test_augmented_copies_shape_determinism_and_cache(small_splits, monkeypatch):
    x, y = features.train_epochs(small_splits, epochs=3, seed=5, copies=8)
    n = len(small_splits.train)
    assert x.shape == (3, n, 49, 40) and x.dtype == np.int8 and y.shape == (n,)
    assert not np.array_equal(x[0], x[1])  # each epoch sees a different augmentation
    clean, _ = features.split_features(small_splits, "train", progress=False, processes=1)
    assert not np.array_equal(x[0], clean)
    monkeypatch.setattr(features, "compute", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    x2, y2 = features.train_epochs(small_splits, epochs=3, seed=5, copies=8)
    assert np.array_equal(np.asarray(x), np.asarray(x2)) and np.array_equal(y, y2)
    with pytest.raises(HarnessError):
        features.train_epochs(small_splits, epochs=0)


def test_compute_same_result_in_chunks_and_silence_has_energy(small_splits):
    samples = small_splits.train[:40]
    a, ya, _ = features.compute(samples, small_splits.background, copies=2, augment=True, seed=3, processes=1, progress=False)
    old = features._CHUNK
    try:
        features._CHUNK = 7
        b, yb, _ = features.compute(samples, small_splits.background, copies=2, augment=True, seed=3, processes=1, progress=False)
    finally:
        features._CHUNK = old
    assert np.array_equal(a, b) and np.array_equal(ya, yb)
    sil = [i for i, s in enumerate(samples) if s.label == "silence"]
    assert sil and all(a[0, i].astype(int).sum() > -128 * 49 * 40 for i in sil)
