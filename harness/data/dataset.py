"""Speech Commands split, exactly as TensorFlow's speech_commands ``input_data.py`` makes it.

Why a copy of TF's rules rather than our own: the paper's numbers (10,556 / 1,333 / 1,368) come
from them, and the real board must be tested on the same clips the host was. The rules:
- a clip's split comes from the SHA-1 of its file name without ``_nohash_...`` (so one speaker's
  clips stay in one split), or from ``validation_list.txt`` / ``testing_list.txt`` when present;
- the keywords (yes, no) are taken whole; silence and unknown are each ``ceil(33 %)`` of the
  split's keyword count; unknown clips are drawn from the other words by a seeded shuffle.
Nothing here reads audio: a split is a list of file references, cheap to build and to hash.

``holdout_engine`` (synthetic sets only) makes the cross-engine split: training and validation
keep the hash rule but drop every clip of that text-to-speech engine, and the test split is all
of that engine's clips, so the test measures speech from an engine the model never heard.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.data.hashsplit import (MAX_NUM_WAVS_PER_CLASS, TESTING_PERCENTAGE, VALIDATION_PERCENTAGE,
                                    speaker_of, which_set)

CLASSES = ("silence", "unknown", "yes", "no")
KEYWORDS = ("yes", "no")
SILENCE_LABEL = "silence"
UNKNOWN_LABEL = "unknown"
BACKGROUND_DIR = "_background_noise_"
CONFUSER_DIR = "_confusers_"
TF_RANDOM_SEED = 59185  # input_data.RANDOM_SEED
SILENCE_PERCENTAGE = 33.0
UNKNOWN_PERCENTAGE = 33.0
SPLITS = ("train", "validation", "test")
_TF_SET = {"training": "train", "validation": "validation", "testing": "test"}


@dataclass(frozen=True)
class Sample:
    """One clip reference. ``path`` is None for silence (made from background noise)."""

    path: Path | None
    label: str  # one of CLASSES
    word: str  # folder name ("yes", "marvin", "_silence_", "finesse"...)
    speaker: str  # file name before _nohash_ (TF's hash key)

    @property
    def label_index(self) -> int:
        return CLASSES.index(self.label)


@dataclass
class Splits:
    """The three splits of one data set plus what the features step needs besides clips."""

    root: Path
    train: list[Sample]
    validation: list[Sample]
    test: list[Sample]
    confusers: list[Sample] = field(default_factory=list)
    background: list[np.ndarray] = field(default_factory=list)  # int16 at 16 kHz
    background_names: list[str] = field(default_factory=list)
    fingerprint: str = ""
    seed: int = TF_RANDOM_SEED
    holdout_engine: str | None = None

    def split(self, name: str) -> list[Sample]:
        if name == "confusers":
            return self.confusers
        if name not in SPLITS:
            raise HarnessError(f"unknown split name {name!r} (expected one of {', '.join(SPLITS)}, confusers)")
        return getattr(self, name)

    def counts(self) -> dict:
        """{split: {class: n, ..., "total": n}} plus the confuser count."""
        out: dict = {}
        for name in SPLITS:
            samples = getattr(self, name)
            per = {c: 0 for c in CLASSES}
            for s in samples:
                per[s.label] += 1
            per["total"] = len(samples)
            out[name] = per
        out["confusers"] = {"total": len(self.confusers)}
        return out




def _read_list(root: Path, name: str) -> set[str] | None:
    path = root / name
    if not path.is_file():
        return None
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines() if line.strip()}


def _check_layout(root: Path) -> list[Path]:
    """All ``<word>/*.wav`` files, or HarnessError saying what is wrong with the directory."""
    if not root.exists():
        raise HarnessError(f"data set directory not found: {root}")
    if not root.is_dir():
        raise HarnessError(f"data set path is not a directory: {root}")
    if not any(root.iterdir()):
        raise HarnessError(f"data set directory is empty: {root}")
    wavs = sorted(p for p in root.glob("*/*.wav") if p.parent.name != BACKGROUND_DIR)
    if not wavs:
        raise HarnessError(
            f"no <word>/*.wav files in {root}: expected the Speech Commands layout (yes/, no/, ..., _background_noise_/)"
        )
    missing = [k for k in KEYWORDS if not any(p.parent.name.lower() == k for p in wavs)]
    if missing:
        raise HarnessError(f"keyword folder(s) {', '.join(k + '/' for k in missing)} missing or without wav files in {root}")
    return wavs


def _load_background(root: Path) -> tuple[list[np.ndarray], list[str]]:
    from harness.data.audio import read_wav

    arrays, names = [], []
    bg_dir = root / BACKGROUND_DIR
    for path in sorted(bg_dir.glob("*.wav")) if bg_dir.is_dir() else []:
        try:
            audio = read_wav(path)
        except HarnessError as exc:
            import warnings

            warnings.warn(f"skipping background file: {exc}", stacklevel=2)
            continue
        if audio.shape[0] >= 16000:
            arrays.append(audio)
            names.append(path.name)
    return arrays, names


def _fingerprint(root: Path, files: list[Path], seed: int) -> str:
    """Hash of the file list with sizes and mtimes (cheap; content changes move mtime)."""
    h = hashlib.sha256(f"seed={seed}|sil={SILENCE_PERCENTAGE}|unk={UNKNOWN_PERCENTAGE}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def speaker_engines(root: Path | str) -> dict[str, str]:
    """{speaker id: engine} from a synthetic set's ``synth.json``; HarnessError if it has none."""
    import json

    meta_path = Path(root) / "synth.json"
    try:
        meta = json.loads(meta_path.read_text())
        return {k: v["engine"] for k, v in meta["speakers"].items()}
    except FileNotFoundError:
        raise HarnessError(f"{root} has no synth.json: splitting by engine needs a synthetic set "
                           "(python -m harness data synth)") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise HarnessError(f"{meta_path} has no speaker table (engine per speaker): "
                           f"{type(exc).__name__}; regenerate the set with python -m harness data synth") from None


def load_splits(dataset_dir: Path | str | None = None, seed: int = TF_RANDOM_SEED,
                holdout_engine: str | None = None) -> Splits:
    """Split a Speech Commands directory (None -> the synthetic default) into train/validation/test.

    ``holdout_engine``: train and validate without that engine's clips, test on all of them.
    """
    if dataset_dir is None:
        from harness.data.synth import default_dataset

        dataset_dir = default_dataset("paper")
    root = Path(dataset_dir).expanduser().resolve()
    wavs = _check_layout(root)
    engine_of: dict[str, str] = {}
    if holdout_engine is not None:
        engine_of = speaker_engines(root)
        engines = sorted(set(engine_of.values()))
        if holdout_engine not in engines:
            raise HarnessError(f"no engine {holdout_engine!r} in {root} (engines: {', '.join(engines)})")
        if len(engines) < 2:
            raise HarnessError(f"{root} has only the engine {holdout_engine}; nothing would be left to train on")
    val_list = _read_list(root, "validation_list.txt")
    test_list = _read_list(root, "testing_list.txt")
    use_lists = val_list is not None or test_list is not None

    keyword_index: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    unknown_index: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    skipped_empty = 0
    for path in wavs:
        if path.stat().st_size == 0:
            skipped_empty += 1
            continue
        word = path.parent.name.lower()
        rel = f"{path.parent.name}/{path.name}"
        if use_lists:
            split = "validation" if rel in (val_list or ()) else "test" if rel in (test_list or ()) else "train"
        else:
            split = _TF_SET[which_set(path.name)]
        if holdout_engine is not None:
            held = engine_of.get(speaker_of(path.name)) == holdout_engine
            if held:
                split = "test"
            elif split == "test":
                continue  # the other engines' test speakers are in no split
        if word in KEYWORDS:
            keyword_index[split].append(Sample(path, word, word, speaker_of(path.name)))
        else:
            unknown_index[split].append(Sample(path, UNKNOWN_LABEL, word, speaker_of(path.name)))
    if skipped_empty:
        import warnings

        warnings.warn(f"skipped {skipped_empty} empty wav file(s) in {root}", stacklevel=2)

    rng = random.Random(seed)
    result: dict[str, list[Sample]] = {}
    for split in SPLITS:
        samples = list(keyword_index[split])
        n = len(samples)
        silence_n = int(math.ceil(n * SILENCE_PERCENTAGE / 100))
        samples += [Sample(None, SILENCE_LABEL, "_silence_", "_silence_")] * silence_n
        pool = list(unknown_index[split])
        rng.shuffle(pool)
        unknown_n = int(math.ceil(n * UNKNOWN_PERCENTAGE / 100))
        samples += pool[:unknown_n]
        rng.shuffle(samples)
        result[split] = samples

    confusers = [
        Sample(p, UNKNOWN_LABEL, p.parent.name.lower(), speaker_of(p.name))
        for p in sorted((root / CONFUSER_DIR).glob("*/*.wav"))
        if p.stat().st_size > 0 and (holdout_engine is None or engine_of.get(speaker_of(p.name)) == holdout_engine)
    ]
    background, bg_names = _load_background(root)
    if holdout_engine is not None and "babble.wav" in bg_names:  # babble is made of every engine's speech
        k = bg_names.index("babble.wav")
        del background[k], bg_names[k]
    used = sorted({s.path for split in result.values() for s in split if s.path is not None} | {s.path for s in confusers})
    extra = [root / BACKGROUND_DIR / n for n in bg_names]
    extra += [p for p in (root / "validation_list.txt", root / "testing_list.txt") if p.is_file()]
    return Splits(
        root=root,
        train=result["train"],
        validation=result["validation"],
        test=result["test"],
        confusers=confusers,
        background=background,
        background_names=bg_names,
        fingerprint=_fingerprint(root, used + extra, seed) + (f"-holdout-{holdout_engine}" if holdout_engine else ""),
        seed=seed,
        holdout_engine=holdout_engine,
    )
