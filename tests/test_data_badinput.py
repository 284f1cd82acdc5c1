"""Bad input for the data path: each case gets a one-line HarnessError naming the path."""

from __future__ import annotations

import uuid
import warnings

import numpy as np
import pytest

from harness.data import audio, dataset, features, synth
from harness.cli import main
from harness.errors import HarnessError


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_missing_directory(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(HarnessError) as exc:
        dataset.load_splits(missing)
    assert str(missing) in _one_line(exc) and "not found" in str(exc.value)


def test_empty_directory(tmp_path):
    with pytest.raises(HarnessError) as exc:
        dataset.load_splits(tmp_path)
    assert str(tmp_path) in _one_line(exc) and "empty" in str(exc.value)


def test_wrong_layout_flat_wavs(tmp_path):
    for i in range(3):
        (tmp_path / f"clip{i}.wav").write_bytes(b"x")
    with pytest.raises(HarnessError) as exc:
        dataset.load_splits(tmp_path)
    assert str(tmp_path) in _one_line(exc) and "layout" in str(exc.value)


def test_wrong_layout_missing_keyword(tmp_path):
    (tmp_path / "yes").mkdir()
    (tmp_path / "yes" / "a_nohash_0.wav").write_bytes(b"x")
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a_nohash_0.wav").write_bytes(b"x")
    with pytest.raises(HarnessError) as exc:
        dataset.load_splits(tmp_path)
    assert "no/" in _one_line(exc) and str(tmp_path) in str(exc.value)


def test_file_instead_of_directory(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("hi")
    with pytest.raises(HarnessError, match="not a directory"):
        dataset.load_splits(f)


def test_cli_missing_directory_exits_nonzero_with_one_line(tmp_path, capsys):
    assert main(["data", "split", str(tmp_path / "nope"), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(tmp_path / "nope") in err and "\n" not in err


def test_corrupt_wav_raises_naming_path(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(HarnessError) as exc:
        audio.read_wav(bad)
    assert str(bad) in _one_line(exc) and "corrupt" in str(exc.value)


def test_empty_wav_raises(tmp_path):
    empty = tmp_path / "empty.wav"
    audio.write_wav(empty, np.zeros(0, np.int16))
    with pytest.raises(HarnessError, match="empty wav"):
        audio.read_wav(empty)


def test_8khz_wav_is_resampled_to_16khz(tmp_path):
    import soundfile as sf

    t = np.arange(8000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    path = tmp_path / "tone8k.wav"
    sf.write(str(path), tone, 8000, subtype="PCM_16")
    x = audio.read_wav(path)
    assert x.dtype == np.int16 and x.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64)))
    assert abs(np.argmax(spectrum) - 440) <= 1  # bin width is 1 Hz at 16000 samples / 16 kHz
    assert 0.4 * 32767 < np.abs(x).max() < 0.6 * 32767


def test_stereo_wav_is_mixed_to_mono(tmp_path):
    import soundfile as sf

    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([np.full(100, 1000), np.full(100, 3000)], 1).astype(np.int16), 16000)
    assert np.all(audio.read_wav(path) == 2000)


def test_corrupt_clip_in_split_is_skipped_with_counted_warning(small_splits, tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_CACHE_DIR", str(tmp_path / "cache"))  # keep the shared cache clean
    good = [s for s in small_splits.validation if s.path is not None][:6]
    victims = [tmp_path / "yes" / f"bad{i}_nohash_0.wav" for i in range(2)]
    for v in victims:
        v.parent.mkdir(exist_ok=True)
        v.write_bytes(b"not a wav at all")
    bad = [dataset.Sample(v, "yes", "yes", v.stem) for v in victims]
    splits = dataset.Splits(root=tmp_path, train=[], validation=good[:3] + bad + good[3:], test=[],
                            background=small_splits.background, fingerprint=f"corrupt-{uuid.uuid4().hex}")  # never a cache hit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, y = features.split_features(splits, "validation", progress=False, processes=1)
    assert len(x) == len(y) == len(good)
    assert list(y) == [s.label_index for s in good]
    msgs = [str(w.message) for w in caught if "unreadable" in str(w.message)]
    assert len(msgs) == 1 and msgs[0].startswith("skipped 2 unreadable wav file(s)") and str(victims[0]) in msgs[0]


def test_missing_tts_engine_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: neither engine is found
    with pytest.raises(HarnessError) as exc:
        synth.generate(tmp_path / "out", size="small", progress=False)
    msg = _one_line(exc)
    assert "espeak-ng" in msg and "flite" in msg and "festival" in msg
    assert "apt-get install espeak-ng flite festival festvox-kallpc16k" in msg


def test_missing_node_for_gnuspeech_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HarnessError) as exc:
        synth.generate(tmp_path / "out", size="small", engines=("gnuspeech",), progress=False)
    msg = _one_line(exc)
    assert "node (for gnuspeech)" in msg and "npm ci --prefix" in msg and "espeak-ng not" not in msg


def test_festival_failure_names_the_error_line_not_the_warning_banner(tmp_path, monkeypatch):
    """festival prints multi-line EST warnings first; the one-line error keeps the line that says why."""
    fake = tmp_path / "festival"
    fake.write_text("#!/bin/sh\necho '-=-=-=-=-=- EST Warning -=-=-=-=-=-' >&2\n"
                    "echo 'Target pitchmarks end before end of target segment timings (0.0 vs 0.9).' >&2\n"
                    "echo 'SIOD ERROR: out of storage' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    with pytest.raises(HarnessError, match=r"^festival \(kal_diphone\) failed with exit code 3: SIOD ERROR: out of storage$"):
        synth._run_festival("kal_diphone", ["(kws_say \"yes\" \"x.wav\")"], str(tmp_path))


def test_unknown_synth_size():
    with pytest.raises(HarnessError, match="size"):
        synth.plan("huge", 0)


def test_synth_refuses_non_empty_output(small_dataset):
    with pytest.raises(HarnessError, match="already holds wav files"):
        synth.generate(small_dataset, size="small", progress=False)


def _dataset_with_odd_clips(root):
    """A Speech Commands-layout folder with one clean clip and one of each conversion."""
    import soundfile as sf

    for word in ("yes", "no", "cat"):
        (root / word).mkdir(parents=True)
    tone = (0.3 * np.sin(np.arange(16000) / 5) * 32767).astype(np.int16)
    sf.write(str(root / "yes" / "a_nohash_0.wav"), tone, 16000)  # as Speech Commands: untouched
    sf.write(str(root / "yes" / "b_nohash_0.wav"), tone[:8000], 8000)  # 8 kHz, 1 s: resampled only
    sf.write(str(root / "no" / "c_nohash_0.wav"), np.stack([tone, tone], 1), 16000)  # stereo: downmixed
    sf.write(str(root / "no" / "d_nohash_0.wav"), np.concatenate([tone, tone]), 16000)  # 2 s: cropped
    sf.write(str(root / "cat" / "e_nohash_0.wav"), np.stack([np.tile(tone, 3)] * 2, 1), 44100)  # all three
    (root / "cat" / "f_nohash_0.wav").write_bytes(b"RIFF0000WAVEjunk")  # unreadable


def test_converted_clips_are_counted_like_skipped_ones(tmp_path):
    from harness.data import clips

    _dataset_with_odd_clips(tmp_path / "sc")
    files = sorted((tmp_path / "sc").glob("*/*.wav"))
    c = clips.count(files)
    assert (c.clips, c.converted, c.resampled, c.downmixed, c.cropped, c.unreadable) == (6, 4, 2, 2, 2, 1)
    assert c.examples["cropped"].endswith("e_nohash_0.wav") and c.examples["unreadable"].endswith("f_nohash_0.wav")
    assert c.summary().startswith("4 of 6 clips converted on load (2 resampled to 16 kHz, 2 downmixed to mono, "
                                  "2 cropped to 1 s), 1 unreadable (skipped; first: ")
    # what the header says is what read_wav + fit_clip do
    assert audio.read_wav(tmp_path / "sc" / "no" / "d_nohash_0.wav").shape[0] == 32000
    assert audio.read_wav(tmp_path / "sc" / "cat" / "e_nohash_0.wav").shape[0] == 48000 * 16000 // 44100 + 1


def test_data_split_reports_converted_clips(tmp_path, capsys):
    import json

    _dataset_with_odd_clips(tmp_path / "sc")
    assert main(["data", "split", str(tmp_path / "sc"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["clips_on_load"]
    assert got["clips"] >= 1 and set(got) >= {"resampled", "downmixed", "cropped", "unreadable", "converted"}


def test_layout_check_names_a_folder_that_is_no_data_set(tmp_path):
    from harness.data import clips

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("x")
    with pytest.raises(HarnessError, match="no <word>/[*].wav files in") as exc:
        clips.check_layout(tmp_path)
    _one_line(exc)


@pytest.mark.parametrize("value,message", [("nan", "must be a finite number > 0"), ("-1", "must be a finite number > 0"),
                                           ("0", "must be a finite number > 0"), ("fast", "'fast' is not a number")])
def test_train_rejects_a_bad_learning_rate_in_one_line(value, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", f"--lr={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --lr: {message}" in err and "Traceback" not in err
