"""``python -m harness plots preprocessing`` writes the paper's Figures 1-5 for a yes and a no clip."""

from __future__ import annotations

import numpy as np

from harness.figures import preprocessing as fp
from harness.cli import main


def test_transforms_are_consistent():
    t = np.arange(16000) / 16000
    clip = (0.3 * np.sin(2 * np.pi * 1000 * t) * 32767).astype(np.int16)
    d = fp.transforms(clip)
    assert abs(d["freqs"][np.argmax(d["spectrum_db"])] - 1000) <= 1
    assert d["stft_f"][np.argmax(d["stft_db"].mean(1))] == 1000
    assert d["mel_db"].shape[0] == fp.N_MELS and d["mfcc"].shape[0] == fp.N_MFCC
    fb = fp.mel_filterbank()
    centres = np.argmax(fb, axis=1)
    assert np.all(np.diff(centres) >= 0) and fb.max() <= 1.0


def test_cli_writes_six_pngs(small_dataset, tmp_path, capsys):
    assert main(["plots", "preprocessing", "--dataset", str(small_dataset), "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == sorted(f"{n}.png" for n, _ in fp.FIGURES)
    for p in tmp_path.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    assert str(tmp_path) in capsys.readouterr().out
