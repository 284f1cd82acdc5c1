"""The synthetic generator: Speech Commands layout, speaker identities, confusers, background, cache."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from harness.data import audio, dataset, synth


def test_layout_and_clip_format(small_dataset):
    folders = {p.name for p in small_dataset.iterdir() if p.is_dir()}
    assert set(synth.SPEECH_COMMANDS_WORDS) <= folders
    assert len(synth.UNKNOWN_WORDS) == 33
    confusers = {p.name for p in (small_dataset / "_confusers_").iterdir()}
    assert {"finesse", "elbow", "yet", "guess", "less", "know", "nose"} <= confusers
    bg = sorted(p.stem for p in (small_dataset / "_background_noise_").glob("*.wav"))
    assert {"white_noise", "pink_noise", "brown_noise", "babble"} <= set(bg)
    meta = json.loads((small_dataset / "synth.json").read_text())
    assert meta["size"] == "small" and meta["settings_hash"] == synth.settings_hash()
    clips = sorted((small_dataset / "yes").glob("*.wav"))[:5]
    for p in clips:
        info = sf.info(str(p))
        assert info.samplerate == 16000 and info.channels == 1 and info.frames == 16000 and info.subtype == "PCM_16"
        assert "_nohash_" in p.name
    x = [audio.read_wav(p) for p in clips]
    assert all(np.abs(c).max() > 300 for c in x)  # not silent
    assert len({c.tobytes() for c in x}) == len(x)


def test_speakers_are_many_and_from_both_engines(small_dataset):
    jobs = synth.plan("small", 0)
    speakers = {j.speaker.id: j.speaker for j in jobs}
    assert len(speakers) == sum(synth.SETTINGS["sizes"]["small"]["speakers"].values())
    assert {s.engine for s in speakers.values()} == {"espeak-ng", "flite"}
    assert len({(s.engine, s.voice, s.variant) for s in speakers.values()}) > 30
    on_disk = {dataset.speaker_of(p.name) for p in (small_dataset / "yes").glob("*.wav")}
    assert on_disk == set(speakers)


def test_plan_is_deterministic_and_seeded():
    a, b, c = synth.plan("small", 0), synth.plan("small", 0), synth.plan("small", 1)
    assert a == b
    assert [j.rel_path for j in a] != [j.rel_path for j in c]
    assert len({j.rel_path for j in a}) == len(a)  # no file written twice


def test_degrade_places_word_in_one_second(monkeypatch):
    rng = np.random.default_rng(0)
    noisy = [synth.degrade(np.sin(np.arange(6000) / 5.0), rng) for _ in range(50)]
    assert max(np.abs(n).max() for n in noisy) <= 0.99  # loud words plus noise are scaled, not clipped
    monkeypatch.setitem(synth.SETTINGS, "noise_probability", 0.0)
    word = np.sin(np.arange(6000) / 5.0)
    onsets = []
    for _ in range(30):
        out = synth.degrade(word, rng)
        assert out.shape == (16000,)
        onsets.append(int(np.argmax(np.abs(out) > 0.5 * np.abs(out).max())))
    assert max(onsets) - min(onsets) > 4000  # random time placement


def test_noise_generators_have_the_right_slope():
    rng = np.random.default_rng(0)
    f = np.fft.rfftfreq(1 << 15, 1 / 16000)
    band = lambda x, lo, hi: np.mean(np.abs(np.fft.rfft(x))[(f > lo) & (f < hi)] ** 2)
    white, brown = synth.coloured_noise(1 << 15, 0.0, rng), synth.coloured_noise(1 << 15, 2.0, rng)
    assert 0.7 < band(white, 100, 200) / band(white, 4000, 4100) < 1.4
    assert band(brown, 100, 200) / band(brown, 4000, 4100) > 100


def test_default_dataset_is_cached(small_dataset):
    assert synth.default_dataset("small", progress=False) == small_dataset
    assert small_dataset.parent.name == "datasets" and small_dataset.name.startswith("synth-small-")


def test_speaker_quotas_fix_the_split_sizes(small_splits):
    quota = synth.SETTINGS["sizes"]["small"]["speakers"]
    reps = synth.SETTINGS["sizes"]["small"]["reps"]
    counts = small_splits.counts()
    for name in dataset.SPLITS:
        assert counts[name]["yes"] == counts[name]["no"] == quota[name] * reps


def test_concurrent_default_dataset_generates_once(tmp_path, monkeypatch):
    import threading
    import time

    monkeypatch.setenv("KWS_CACHE_DIR", str(tmp_path))
    calls = []

    def fake_generate(out, size, seed, progress):
        calls.append(out)
        time.sleep(0.3)
        (out / "synth.json").write_text("{}")
        return out

    monkeypatch.setattr(synth, "generate", fake_generate)
    results = []
    threads = [threading.Thread(target=lambda: results.append(synth.default_dataset("small", progress=False)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1 and (results[0] / "synth.json").is_file()
    assert not [p for p in results[0].parent.iterdir() if p.name.startswith(".synth-small") and p.is_dir()]
