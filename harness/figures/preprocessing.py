"""The paper's Figures 1-5: one "yes" and one "no" clip seen in five preprocessing domains.

Time domain, frequency domain (magnitude spectrum), spectrogram (STFT), mel spectrogram and
MFCC, computed with scipy/numpy so they illustrate the textbook transforms; a sixth figure shows
the micro_speech front-end features (49x40 int8) that the network and the device actually consume.
The clips are picked from the data set deterministically (the clearest of the first test clips).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from harness.errors import HarnessError

HELP = "Figures 1-5: time, frequency, spectrogram, mel spectrogram and MFCC of a yes and a no clip"
SR = 16000
N_FFT = 512  # 32 ms
HOP = 160  # 10 ms
N_MELS = 40
N_MFCC = 13
FIGURES = (
    ("fig1_time_domain", "Figure 1: time domain"),
    ("fig2_frequency_domain", "Figure 2: frequency domain"),
    ("fig3_spectrogram", "Figure 3: spectrogram"),
    ("fig4_mel_spectrogram", "Figure 4: mel spectrogram"),
    ("fig5_mfcc", "Figure 5: MFCC"),
    ("fig5b_micro_features", "micro_speech front end (int8 network input)"),
)


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SR, fmin: float = 20.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular mel filters [n_mels, n_fft//2+1] (HTK mel scale)."""
    fmax = fmax or sr / 2
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, mid, hi = edges[i: i + 3]
        fb[i] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    return fb


def transforms(clip_int16: np.ndarray) -> dict[str, np.ndarray]:
    """All five domains of one clip: time, (freqs, magnitude dB), STFT dB, mel dB, MFCC."""
    from scipy.fft import dct
    from scipy.signal import stft

    x = clip_int16.astype(np.float64) / 32768.0
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / SR)
    f, t, z = stft(x, fs=SR, nperseg=N_FFT, noverlap=N_FFT - HOP, boundary=None)
    power = np.abs(z) ** 2
    mel = mel_filterbank() @ power
    log_mel = np.log(mel + 1e-10)
    mfcc = dct(log_mel, type=2, axis=0, norm="ortho")[:N_MFCC]
    return {
        "time": x,
        "freqs": freqs,
        "spectrum_db": 20 * np.log10(spectrum + 1e-9),
        "stft_f": f,
        "stft_t": t,
        "stft_db": 10 * np.log10(power + 1e-12),
        "mel_db": 10 * np.log10(mel + 1e-12),
        "mfcc": mfcc,
    }


def pick_clips(splits) -> dict[str, Path]:
    """For yes and no: among the first 20 test clips (sorted), the one with the clearest word."""
    from harness.data.audio import read_wav

    chosen = {}
    for word in ("yes", "no"):
        cands = sorted({s.path for name in ("test", "validation", "train") for s in splits.split(name) if s.word == word})[:20]
        if not cands:
            raise HarnessError(f"no {word!r} clip in {splits.root}")
        best, score = cands[0], -1.0
        for path in cands:
            try:
                x = read_wav(path).astype(np.float64)
            except HarnessError:
                continue
            frames = x[: x.size // 400 * 400].reshape(-1, 400)
            energy = (frames**2).mean(1) + 1e-9
            s = float(energy.max() / np.median(energy))
            if s > score:
                best, score = path, s
        chosen[word] = best
    return chosen


def _save(fig, path: Path) -> Path:
    from harness.cache import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return path


def draw(clips: dict[str, np.ndarray], out_dir: Path) -> list[Path]:
    """Write the six PNGs (each: yes on the left, no on the right) into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.data.features import features

    data = {w: transforms(c) for w, c in clips.items()}
    micro = {w: features(c) for w, c in clips.items()}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, title in FIGURES:
        fig, axes = plt.subplots(1, len(clips), figsize=(11, 3.6), dpi=110, squeeze=False)
        for ax, (word, d) in zip(axes[0], data.items()):
            if name == "fig1_time_domain":
                ax.plot(np.arange(d["time"].size) / SR, d["time"], linewidth=0.6)
                ax.set(xlabel="time (s)", ylabel="amplitude")
            elif name == "fig2_frequency_domain":
                ax.plot(d["freqs"], d["spectrum_db"], linewidth=0.6)
                ax.set(xlabel="frequency (Hz)", ylabel="magnitude (dB)", xlim=(0, SR / 2))
            elif name == "fig3_spectrogram":
                im = ax.pcolormesh(d["stft_t"], d["stft_f"], d["stft_db"], shading="auto", cmap="magma")
                ax.set(xlabel="time (s)", ylabel="frequency (Hz)")
                fig.colorbar(im, ax=ax, label="dB")
            elif name == "fig4_mel_spectrogram":
                im = ax.imshow(d["mel_db"], origin="lower", aspect="auto", cmap="magma",
                               extent=(0, 1, 0, N_MELS))
                ax.set(xlabel="time (s)", ylabel="mel band")
                fig.colorbar(im, ax=ax, label="dB")
            elif name == "fig5_mfcc":
                im = ax.imshow(d["mfcc"], origin="lower", aspect="auto", cmap="coolwarm", extent=(0, 1, 0, N_MFCC))
                ax.set(xlabel="time (s)", ylabel="coefficient")
                fig.colorbar(im, ax=ax)
            else:
                im = ax.imshow(micro[word].T, origin="lower", aspect="auto", cmap="viridis", extent=(0, 1, 0, 40),
                               vmin=-128, vmax=127)
                ax.set(xlabel="time (s)", ylabel="channel (125-7500 Hz)")
                fig.colorbar(im, ax=ax, label="int8")
            ax.set_title(f'"{word}"')
        fig.suptitle(title)
        fig.tight_layout()
        written.append(_save(fig, out_dir / f"{name}.png"))
        plt.close(fig)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.paths import results_dir

    parser.add_argument("--dataset", type=Path, help="data set directory (default: the synthetic set of --size)")
    parser.add_argument("--size", choices=("small", "paper"), default="paper",
                        help="synthetic set used when --dataset is omitted (default: paper)")
    parser.add_argument("--out", type=Path, default=results_dir() / "figures", help="output folder (default results/figures)")


def run(args: argparse.Namespace) -> int:
    from harness.data.audio import read_wav
    from harness.data.dataset import load_splits

    root = args.dataset
    if root is None:
        from harness.data.synth import default_dataset

        root = default_dataset(args.size)
    clips = {w: read_wav(p) for w, p in pick_clips(load_splits(root)).items()}
    for path in draw(clips, args.out):
        print(path)
    return 0
