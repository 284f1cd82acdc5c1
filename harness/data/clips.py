"""What loading does to a data set's clips, counted from the wav headers (no audio decoded).

Why: ``audio.read_wav`` resamples to 16 kHz and downmixes to mono, and ``audio.fit_clip`` crops
to one second, silently, so a folder of 44.1 kHz stereo recordings trains and benchmarks "fine"
on audio that is not what the user gave. These counts say how many clips were converted and how,
next to the unreadable ones that are skipped, in ``data split``, the run's metadata and report.md.
(A module of its own so that audio.py and dataset.py, whose source keys the cached data set and
features, stay as they are.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from harness.data import audio, dataset


def check_layout(root: Path | str) -> list[Path]:
    """The ``<word>/*.wav`` files of a Speech Commands folder, or a HarnessError saying what is
    wrong with it (not a folder, empty, no keyword folders): cheap, no audio read."""
    return dataset._check_layout(Path(root).expanduser().resolve())


@dataclass
class ClipCounts:
    """How many clips loading converts (a clip can count in several kinds) or cannot read."""

    clips: int = 0
    converted: int = 0  # clips changed in any way below
    resampled: int = 0  # not 16 kHz: resampled (polyphase) to 16 kHz
    downmixed: int = 0  # more than one channel: averaged to mono
    cropped: int = 0  # longer than 1 s (after resampling): the rest is cut off
    unreadable: int = 0  # cannot be decoded: skipped by the features step
    examples: dict[str, str] = field(default_factory=dict)  # kind -> the first such file

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        """One line: 'N of M clips converted on load (a resampled, b downmixed, c cropped), u unreadable'."""
        parts = [f"{n} {k}" for k, n in (("resampled to 16 kHz", self.resampled), ("downmixed to mono", self.downmixed),
                                            ("cropped to 1 s", self.cropped)) if n]
        line = f"{self.converted} of {self.clips} clips converted on load" + (f" ({', '.join(parts)})" if parts else "")
        if self.unreadable:
            line += f", {self.unreadable} unreadable (skipped; first: {self.examples.get('unreadable', '?')})"
        return line


def count(paths: Iterable[Path]) -> ClipCounts:
    """Read each wav header and count what ``audio.read_wav`` + ``audio.fit_clip`` will do to it."""
    import soundfile as sf

    out = ClipCounts()
    for path in paths:
        out.clips += 1
        try:
            info = sf.info(str(path))
        except Exception:  # soundfile raises LibsndfileError / RuntimeError: read_wav will skip it
            out.unreadable += 1
            out.examples.setdefault("unreadable", str(path))
            continue
        kinds = []
        if info.samplerate != audio.SAMPLE_RATE:
            kinds.append("resampled")
        if info.channels > 1:
            kinds.append("downmixed")
        frames = info.frames if info.samplerate == audio.SAMPLE_RATE else \
            math.ceil(info.frames * audio.SAMPLE_RATE / max(info.samplerate, 1))
        if frames > audio.CLIP_SAMPLES:
            kinds.append("cropped")
        for k in kinds:
            setattr(out, k, getattr(out, k) + 1)
            out.examples.setdefault(k, str(path))
        out.converted += bool(kinds)
    return out


def count_splits(splits: "dataset.Splits") -> ClipCounts:
    """Counts over every clip the splits and the confuser set use (silence has no file)."""
    paths = sorted({s.path for name in (*dataset.SPLITS, "confusers") for s in splits.split(name) if s.path is not None})
    return count(paths)
