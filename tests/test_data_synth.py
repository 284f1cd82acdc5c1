"""The synthetic generator: Speech Commands layout, speaker identities, confusers, background, cache."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf

from harness.data import audio, dataset, synth
from harness.errors import HarnessError


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


def test_speakers_are_many_and_from_every_engine(small_dataset):
    jobs = synth.plan("small", 0)
    speakers = {j.speaker.id: j.speaker for j in jobs}
    assert len(speakers) == sum(synth.SETTINGS["sizes"]["small"]["speakers"].values())
    assert {s.engine for s in speakers.values()} == set(synth.DEFAULT_ENGINES) == {"espeak-ng", "flite", "festival"}
    assert len({(s.engine, s.voice, s.variant) for s in speakers.values()}) > 30
    assert {s.voice for s in speakers.values() if s.engine == "festival"} == set(synth.FESTIVAL_VOICES)
    gnu = {j.speaker.id: j.speaker for j in synth.plan("small", 0, engines=("gnuspeech",))}.values()
    assert len({s.variant for s in gnu}) == len(gnu)  # every GnuSpeech speaker has its own tract
    warps = [s.warp for s in speakers.values()]
    assert synth.SETTINGS["warp"][0] <= min(warps) < 0.95 and 1.08 < max(warps) <= synth.SETTINGS["warp"][1]
    assert 0.3 < np.mean([s.rt60 > 0 for s in speakers.values()]) < 0.9
    on_disk = {dataset.speaker_of(p.name) for p in (small_dataset / "yes").glob("*.wav")}
    assert on_disk == set(speakers)


def test_synth_json_names_engine_and_voice_of_every_clip(small_dataset):
    table = json.loads((small_dataset / "synth.json").read_text())["speakers"]
    clips = [p for p in small_dataset.glob("*/*.wav") if p.parent.name != "_background_noise_"]
    clips += list((small_dataset / "_confusers_").glob("*/*.wav"))
    assert clips and all(dataset.speaker_of(p.name) in table for p in clips)
    by_id = {j.speaker.id: j.speaker for j in synth.plan("small", 0)}
    for sid, row in table.items():
        assert row == by_id[sid].to_dict()
    assert dataset.speaker_engines(small_dataset) == {k: v["engine"] for k, v in table.items()}


def test_each_engine_speaks(tmp_path):
    """One clip per engine through the real renderer: audible, 1 s, and different per engine."""
    jobs = synth.plan("small", 0, engines=synth.ENGINES)
    per_engine = {}
    for i, job in enumerate(jobs):
        if job.speaker.engine not in per_engine and job.word == "yes":
            per_engine[job.speaker.engine] = (i, job)
    (tmp_path / "pre").mkdir()
    clips = {}
    for engine, (i, job) in per_engine.items():
        synth._render(job, str(tmp_path / "out"), str(tmp_path))  # festival/gnuspeech without a batch: one call
        clips[engine] = audio.read_wav(tmp_path / "out" / job.rel_path)
    assert set(clips) == set(synth.ENGINES)
    for x in clips.values():
        assert x.shape == (16000,) and np.abs(x).max() > 300


@pytest.mark.parametrize("engine", ["espeak-ng", "flite", "festival", "gnuspeech"])
def test_engines_say_the_word_asked(engine, tmp_path):
    """Each voice says the word it is given: "seven" lasts longer than "no" (a festival call that
    passed the word unevaluated once said "w" for every word)."""
    voices = {"espeak-ng": [("en-us", "m3", 50.0, 160.0)],
              "flite": [(v, "", f0, 1.0) for v, f0 in synth.FLITE_VOICES.items() if v != "awb"][:2],
              "festival": [(v, "", f0 or 0.0, 1.0) for v, f0 in synth.FESTIVAL_VOICES.items()],
              "gnuspeech": [(v, "breathiness=1.0", -4.0, 1.0) for v in synth.GNUSPEECH_VOICES]}[engine]
    for voice, variant, pitch, speed in voices:
        spk = synth.Speaker(engine, voice, variant, pitch, speed)
        lengths = {}
        # GnuSpeech's "seven" is short (weak fricatives, trimmed): two words for it
        for word in ("no", "seven eight" if engine == "gnuspeech" else "seven"):
            x, rate = synth._tts(word, spk, np.random.default_rng(0), str(tmp_path))
            lengths[word] = len(synth._trim(x)) / rate
        assert min(lengths.values()) > 0.15 and lengths.pop("no") * 1.3 < max(lengths.values()), (voice, lengths)


def test_warp_moves_formants_and_shortens():
    rate = 22050
    t = np.arange(rate // 2) / rate
    tone = np.sin(2 * np.pi * 1000 * t)
    for factor in (0.85, 1.2):
        y = synth.warp(tone, rate, factor)
        assert abs(len(y) - 8000 / factor) < 0.01 * 8000
        spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
        peak = np.fft.rfftfreq(len(y), 1 / 16000)[np.argmax(spec)]
        assert abs(peak - 1000 * factor) < 15


def test_room_response_decays_at_its_rt60():
    rng = np.random.default_rng(0)
    for rt60, drr in ((0.2, 10.0), (0.7, 0.0)):
        h = synth.room_response(rt60, drr, rng)
        assert h[0] == 1.0 and len(h) >= int(rt60 * 16000)
        tail = h[1:]
        assert abs(10 * np.log10(1.0 / np.sum(tail**2)) - drr) < 0.01
        e = np.cumsum(tail[::-1] ** 2)[::-1]  # Schroeder backward integral
        k = int(rt60 / 2 * 16000)
        assert -45 < 10 * np.log10(e[k] / e[0]) < -20  # ~-30 dB at half the RT60


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

    def fake_generate(out, size, seed, progress, hard_negatives=False, engines=None):
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


def test_hard_negatives_are_unknown_words_and_never_confusers():
    """The optional sound-alikes are new unknown words: not Speech Commands words, not confusers."""
    hard = set(synth.HARD_NEGATIVE_WORDS)
    assert hard and not hard & set(synth.CONFUSER_WORDS) and not hard & set(synth.SPEECH_COMMANDS_WORDS)
    with_hn = {j.word for j in synth.plan("small", 0, hard_negatives=True)}
    without = {j.word for j in synth.plan("small", 0)}
    assert hard <= with_hn and not hard & without  # off by default
    assert with_hn - hard == without


def test_synth_command_writes_hard_negatives_as_unknown(tmp_path):
    """``data synth --hard-negatives``: the extra words are folders the loader labels unknown."""
    import subprocess
    import sys

    out = tmp_path / "hn"
    proc = subprocess.run([sys.executable, "-m", "harness", "data", "synth", "--size", "small", "--hard-negatives",
                           "--out", str(out), "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert json.loads((out / "synth.json").read_text())["hard_negatives"] == list(synth.HARD_NEGATIVE_WORDS)
    splits = dataset.load_splits(out)
    unknown = {s.word for name in dataset.SPLITS for s in splits.split(name) if s.label == "unknown"}
    assert unknown & set(synth.HARD_NEGATIVE_WORDS)
    assert not {s.word for s in splits.confusers} & set(synth.HARD_NEGATIVE_WORDS)
    assert splits.counts()["train"]["unknown"] == math.ceil(splits.counts()["train"]["yes"] * 2 * dataset.UNKNOWN_PERCENTAGE / 100)


def test_gnuspeech_tract_length_moves_formants(tmp_path):
    """The per-speaker voice file reaches the tube model: a 12 cm tract raises the spectral centroid
    of "no" over an 18 cm one (measured 226 vs 189 Hz); the same settings give the same bytes (the
    clock-seeded random intonation is off)."""
    def centroid(tract: float) -> tuple[float, bytes]:
        spk = synth.Speaker("gnuspeech", "male", f"vocal_tract_length={tract}", -4.0, 1.0)
        x, rate = synth._tts("no", spk, np.random.default_rng(0), str(tmp_path))
        power = np.abs(np.fft.rfft(x)) ** 2
        return float((power * np.fft.rfftfreq(x.size, 1 / rate)).sum() / power.sum()), x.tobytes()

    short, a = centroid(12.0)
    long, _ = centroid(18.0)
    assert short > 1.1 * long, (short, long)
    assert centroid(12.0)[1] == a


def test_gnuspeech_error_is_one_line(tmp_path):
    spk = synth.Speaker("gnuspeech", "male", "no_such_setting=1", -4.0, 1.0)
    with pytest.raises(HarnessError, match="gnuspeech failed: gnuspeech: unknown GnuSpeech setting no_such_setting"):
        synth._tts("yes", spk, np.random.default_rng(0), str(tmp_path))


def test_low_festival_voices_speak_at_the_f0_floor(tmp_path):
    """A diphone speaker at the f0 floor, jittered down and stretched to the plan's longest, still
    speaks (at 62 Hz x1.62 festival exited: the generator's floor keeps every speaker above it)."""
    low = synth.FESTIVAL_MIN_F0 * 0.96
    longest = synth.SETTINGS["festival_stretch"][1] * synth.SETTINGS["warp"][1]
    for voice in ("kal_diphone", "ked_diphone"):
        spk = synth.Speaker("festival", voice, "", low, longest)
        synth._run_festival(voice, synth._festival_lines("no", spk, low, longest, str(tmp_path / "no.wav")), str(tmp_path))
        assert (tmp_path / "no.wav").stat().st_size > 10_000
    speakers = {j.speaker for j in synth.plan("small", 0)}
    assert min(s.pitch for s in speakers if s.engine == "festival" and s.pitch > 0) >= synth.FESTIVAL_MIN_F0
