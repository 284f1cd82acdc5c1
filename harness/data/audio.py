"""Wav I/O at the one rate everything downstream assumes: 16 kHz mono int16.

Speech Commands clips are 16 kHz, but users drop in recordings at other rates; resampling here
(polyphase, scipy) means the front end and the firmware never see anything but 16 kHz. A file
that cannot be decoded raises HarnessError naming it, so callers can skip it and count it
instead of crashing mid-epoch.
"""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

from harness.errors import HarnessError

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # one second, as in Speech Commands


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16 with clipping (no wrap-around on overload)."""
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def resample(x: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling of float audio from ``rate`` to ``target`` Hz."""
    if rate == target:
        return x
    from scipy.signal import resample_poly

    g = gcd(int(rate), int(target))
    return resample_poly(x, target // g, rate // g)


def read_wav(path: Path | str) -> np.ndarray:
    """Read a wav file as int16 mono at 16 kHz; HarnessError if it is empty or undecodable."""
    import soundfile as sf

    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise HarnessError(f"wav file not found: {path}") from None
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HarnessError(f"corrupt or unreadable wav file: {path} ({reason})") from None
    if data.shape[0] == 0:
        raise HarnessError(f"empty wav file (no samples): {path}")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate != SAMPLE_RATE:
        mono = resample(mono.astype(np.float64), rate)
    return to_int16(mono)


def write_wav(path: Path | str, audio_int16: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """Write int16 mono PCM (the Speech Commands format)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio_int16, dtype=np.int16), rate, subtype="PCM_16")
    return path


def fit_clip(audio_int16: np.ndarray, n: int = CLIP_SAMPLES) -> np.ndarray:
    """Pad with zeros or truncate to exactly ``n`` samples (TF decode_wav desired_samples)."""
    audio_int16 = np.asarray(audio_int16, dtype=np.int16)
    if audio_int16.shape[0] >= n:
        return audio_int16[:n]
    return np.pad(audio_int16, (0, n - audio_int16.shape[0]))
