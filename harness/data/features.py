"""micro_speech features: TF's audio_microfrontend (49x40 uint16) and the int8 form the device eats.

Why this front end: it is what TFLM's micro_speech runs on the board, so host training, the
.tflite reference and the firmware all see the same numbers. Why int8 everywhere: the models train
on ``dequantize(quantize(frontend(x)))``, so float and int8 paths get identical information and
the exported input tensor is exactly (INPUT_SCALE, INPUT_ZERO_POINT).

Why precomputed augmented copies: recomputing TF-style augmentation (time shift, background mixing)
every epoch dominated training time on a 2-core machine. We compute K augmented copies of the
training split once (cached by content hash) and cycle through them, one per epoch.
TensorFlow is imported lazily: importing it costs seconds.
"""

from __future__ import annotations

import io
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.data.audio import CLIP_SAMPLES, SAMPLE_RATE, fit_clip, read_wav, to_int16
from harness.errors import HarnessError

FEATURE_SHAPE = (49, 40)
# micro_speech: value = ((v * 256) + 333) // 666 - 128 (666 = round(25.6 * 26)).
VALUE_SCALE = 256
VALUE_DIV = 666
INPUT_SCALE = VALUE_DIV / VALUE_SCALE * 10.0 / 256.0  # float feature units per int8 step
INPUT_ZERO_POINT = -128

# audio_microfrontend arguments as micro_speech / speech_commands `--preprocess=micro` use them
# (the op's defaults for everything not named by micro_speech, spelt out so they are hashed).
FRONTEND_SETTINGS = {
    "sample_rate": SAMPLE_RATE, "window_size": 30, "window_step": 20, "num_channels": 40,
    "upper_band_limit": 7500.0, "lower_band_limit": 125.0, "smoothing_bits": 10,
    "even_smoothing": 0.025, "odd_smoothing": 0.06, "min_signal_remaining": 0.05,
    "enable_pcan": True, "pcan_strength": 0.95, "pcan_offset": 80.0, "gain_bits": 21,
    "enable_log": True, "scale_shift": 6, "left_context": 0, "right_context": 0,
    "frame_stride": 1, "zero_padding": False, "out_scale": 1,
}
# TF speech_commands training defaults.
AUGMENT = {"time_shift_ms": 100.0, "background_frequency": 0.8, "background_volume": 0.1, "silence_volume": 1.0}
DEFAULT_COPIES = 8
PROCESSES = 2
_IN_PROCESS_BELOW = 1500  # clips; spawning workers (each importing TF) costs more below this
_CHUNK = 256


# ---- the front end -------------------------------------------------------------------------------

_BATCH_FN = None


def _batch_fn():
    """A compiled tf.function mapping [N, 16000] int16 -> [N, 49, 40] uint16 (~0.5 ms a clip)."""
    global _BATCH_FN
    if _BATCH_FN is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf
        from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op as op

        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialized by someone else in this process
            pass

        def one(audio):
            return op.audio_microfrontend(audio, out_type=tf.uint16, **FRONTEND_SETTINGS)

        @tf.function(input_signature=[tf.TensorSpec([None, CLIP_SAMPLES], tf.int16)])
        def batch(x):
            return tf.map_fn(one, x, fn_output_signature=tf.TensorSpec(FEATURE_SHAPE, tf.uint16),
                             parallel_iterations=1)

        _BATCH_FN = batch
    return _BATCH_FN


def frontend_batch(audio_int16: np.ndarray) -> np.ndarray:
    """[N, 16000] int16 -> [N, 49, 40] uint16 micro frontend outputs (fresh state per clip)."""
    audio_int16 = np.asarray(audio_int16, dtype=np.int16)
    if audio_int16.ndim != 2 or audio_int16.shape[1] != CLIP_SAMPLES:
        raise HarnessError(f"frontend_batch expects [N, {CLIP_SAMPLES}] int16 audio, got shape {audio_int16.shape}")
    if audio_int16.shape[0] == 0:
        return np.zeros((0, *FEATURE_SHAPE), np.uint16)
    return _batch_fn()(audio_int16).numpy()


def frontend(audio_int16: np.ndarray) -> np.ndarray:
    """One clip (padded/truncated to 1 s) -> (49, 40) uint16, TF audio_microfrontend."""
    return frontend_batch(fit_clip(np.asarray(audio_int16).reshape(-1))[None])[0]


def quantize(frontend_u16: np.ndarray) -> np.ndarray:
    """micro_speech's rule: ``((v*256 + 333) // 666) - 128`` clamped to int8."""
    v = np.asarray(frontend_u16).astype(np.int64)
    return np.clip((v * VALUE_SCALE + VALUE_DIV // 2) // VALUE_DIV - 128, -128, 127).astype(np.int8)


def dequantize(q_int8: np.ndarray) -> np.ndarray:
    """int8 features -> float32 ``(q + 128) * INPUT_SCALE`` (what the float models train on)."""
    return ((np.asarray(q_int8).astype(np.float32) - INPUT_ZERO_POINT) * np.float32(INPUT_SCALE)).astype(np.float32)


def features(audio_int16: np.ndarray) -> np.ndarray:
    """One clip -> (49, 40) int8, the device's input."""
    return quantize(frontend(audio_int16))


# ---- clip assembly (TF speech_commands get_data) -------------------------------------------------

def _background_slice(background: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    bg = background[int(rng.integers(len(background)))]
    off = int(rng.integers(0, bg.shape[0] - CLIP_SAMPLES + 1))
    return bg[off: off + CLIP_SAMPLES].astype(np.float32) / 32768.0


def assemble(audio: np.ndarray | None, label: str, background: Sequence[np.ndarray],
             rng: np.random.Generator, augment: bool) -> np.ndarray:
    """One 1 s int16 clip as TF builds it: shift and background for training; silence = noise only.

    Silence (``audio`` None) is background at volume uniform(0, 1) in every split, as in TF.
    """
    fg = np.zeros(CLIP_SAMPLES, np.float32) if audio is None else fit_clip(audio).astype(np.float32) / 32768.0
    if augment and audio is not None:
        max_shift = int(AUGMENT["time_shift_ms"] * SAMPLE_RATE / 1000)
        shift = int(rng.integers(-max_shift, max_shift + 1))
        if shift > 0:
            fg = np.concatenate([np.zeros(shift, np.float32), fg[:-shift]])
        elif shift < 0:
            fg = np.concatenate([fg[-shift:], np.zeros(-shift, np.float32)])
    if background and (augment or label == "silence"):
        bg = _background_slice(background, rng)
        if label == "silence":
            volume = rng.uniform(0, AUGMENT["silence_volume"])
        elif rng.uniform(0, 1) < AUGMENT["background_frequency"]:
            volume = rng.uniform(0, AUGMENT["background_volume"])
        else:
            volume = 0.0
        fg = np.clip(fg + bg * np.float32(volume), -1.0, 1.0)
    return to_int16(fg)


_WORKER_BACKGROUND: list[np.ndarray] = []


def _init_worker(background: list[np.ndarray]) -> None:
    global _WORKER_BACKGROUND
    _WORKER_BACKGROUND = background
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _chunk(args: tuple) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Worker: features of K copies of each item -> (indices, int8 [n, K, 49, 40], errors)."""
    items, copies, augment, seed, stream = args
    idx, audios, errors = [], [], []
    for i, path, label in items:
        rng = np.random.default_rng([seed, stream, i])
        try:
            audio = None if path is None else read_wav(path)
        except HarnessError as exc:
            errors.append((str(path), str(exc)))
            continue
        idx.append(i)
        audios.extend(assemble(audio, label, _WORKER_BACKGROUND, rng, augment) for _ in range(copies))
    if not audios:
        return np.zeros(0, np.int64), np.zeros((0, copies, *FEATURE_SHAPE), np.int8), errors
    x = quantize(frontend_batch(np.stack(audios)))
    return np.asarray(idx, np.int64), x.reshape(len(idx), copies, *FEATURE_SHAPE), errors


def compute(samples: Sequence, background: Sequence[np.ndarray], *, copies: int = 1, augment: bool = False,
            seed: int = 0, stream: int = 0, processes: int = PROCESSES, progress: bool = True,
            description: str = "features") -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Features for ``samples`` -> (x int8 [K, M, 49, 40], y int64 [M], skipped [(path, reason)]).

    Unreadable clips are skipped (M <= len(samples)) and reported, never fatal. Results do not
    depend on ``processes``: every clip's randomness comes from (seed, stream, index).
    """
    from harness.data.dataset import CLASSES
    from harness.progress import progress_track

    items = [(i, None if s.path is None else str(s.path), s.label) for i, s in enumerate(samples)]
    chunks = [(items[k: k + _CHUNK], copies, augment, seed, stream) for k in range(0, len(items), _CHUNK)]
    background = list(background)
    results = []
    if processes <= 1 or len(items) * copies < _IN_PROCESS_BELOW:
        _init_worker(background)
        for c in progress_track(chunks, len(chunks), description, enabled=progress):
            results.append(_chunk(c))
    else:
        from harness.workers import pool as worker_pool

        # fork is cheap and never re-imports the caller's __main__; it is only safe while this
        # process has not loaded TensorFlow (its thread pools do not survive a fork).
        method = "spawn" if "tensorflow" in sys.modules else "fork"
        with worker_pool(processes, method, initializer=_init_worker, initargs=(background,)) as pool:
            for r in progress_track(pool.imap_unordered(_chunk, chunks), len(chunks), description, enabled=progress):
                results.append(r)
    idx = np.concatenate([r[0] for r in results]) if results else np.zeros(0, np.int64)
    x = np.concatenate([r[1] for r in results]) if results else np.zeros((0, copies, *FEATURE_SHAPE), np.int8)
    order = np.argsort(idx, kind="stable")
    idx, x = idx[order], x[order]
    y = np.asarray([CLASSES.index(samples[i].label) for i in idx], np.int64)
    skipped = [e for r in results for e in r[2]]
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3)), y, skipped


def _warn_skipped(skipped: list[tuple[str, str]], where: str) -> None:
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable wav file(s) in {where}; first: {skipped[0][1]}", stacklevel=3)


# ---- cached entry points ---------------------------------------------------------------------------

_STREAMS = {"train": 1, "validation": 2, "test": 3, "confusers": 4}


def _key(splits, *parts) -> str:
    from harness.data import audio, dataset
    from harness.cache import content_hash

    return content_hash(splits.fingerprint, FRONTEND_SETTINGS, AUGMENT, *parts,
                        Path(__file__).read_bytes(), Path(audio.__file__).read_bytes(),
                        Path(dataset.__file__).read_bytes())


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    from harness.cache import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def split_features(splits, name: str, seed: int = 0, progress: bool = True,
                   processes: int = PROCESSES) -> tuple[np.ndarray, np.ndarray]:
    """Un-augmented int8 features of one split ('train'|'validation'|'test'|'confusers'), cached.

    Returns (x int8 [N, 49, 40], y int64 [N]); clips that cannot be read are skipped with a warning.
    """
    from harness.cache import artifact_dir

    samples = splits.split(name)
    path = artifact_dir("features", _key(splits, "split", name, seed)) / f"{name}.npz"
    if path.is_file():
        with np.load(path) as z:
            return z["x"], z["y"]
    x, y, skipped = compute(samples, splits.background, seed=seed, stream=_STREAMS[name], processes=processes,
                            progress=progress, description=f"features {name}")
    _warn_skipped(skipped, f"{name} split of {splits.root}")
    _save_npz(path, x=x[0], y=y)
    return x[0], y


def augmented_copies(splits, copies: int = DEFAULT_COPIES, seed: int = 0, progress: bool = True,
                     processes: int = PROCESSES) -> tuple[np.ndarray, np.ndarray]:
    """K TF-style augmented copies of the training split: (x int8 [K, N, 49, 40] memory-mapped, y [N])."""
    from harness.cache import artifact_dir

    d = artifact_dir("features", _key(splits, "augmented", copies, seed))
    xp, yp = d / "x.npy", d / "y.npy"
    if xp.is_file() and yp.is_file():
        return np.load(xp, mmap_mode="r"), np.load(yp)
    x, y, skipped = compute(splits.train, splits.background, copies=copies, augment=True, seed=seed,
                            stream=_STREAMS["train"] + 100, processes=processes, progress=progress,
                            description=f"augmented x{copies}")
    _warn_skipped(skipped, f"train split of {splits.root}")
    for path, arr in ((yp, y), (xp, x)):  # x last: its presence marks the artifact complete
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, arr)
        os.replace(tmp, path)
    return np.load(xp, mmap_mode="r"), y


def train_epochs(splits, epochs: int, seed: int = 0, copies: int = DEFAULT_COPIES,
                 progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Augmented training features for ``epochs`` epochs: (x int8 [K, N, 49, 40], y int64 [N]).

    K = min(copies, epochs) cached copies; epoch e trains on ``x[e % K]`` (what ``train.fit`` does).
    """
    if epochs < 1:
        raise HarnessError(f"epochs must be at least 1, got {epochs}")
    return augmented_copies(splits, copies=min(copies, epochs), seed=seed, progress=progress)
