"""Offline synthetic Speech Commands: the same directory layout, spoken by espeak-ng, flite and festival
(and, opt-in, GnuSpeech: the engine of the held-out-engine check, ``data heldout``).

Why: the real v0.02 download is not reachable from CI machines, and a default that needs no data
lets ``make bench`` run anywhere. Why it is made hard on purpose: clean TTS words are separable to
100 %, which would hide every accuracy effect the benchmark exists to show (quantization, pruning).
So every clip gets a speaker drawn from engine x voice x variant x pitch x speed x vocal-tract length
x room, a random place in the 1 s window, a random level, a random microphone colouring, sometimes
clipping and, usually, noise at a random SNR.
Why three engines and the vocal-tract warp: a model trained on two engines' stock voices scored
0.755 on a third engine it had not heard ("no" 0.47). Resampling each speaker's speech by a
factor (formants and pitch move together, as between a child's and an adult's vocal tract) and
reverberating it in a per-speaker room make voices differ in ways no single engine's voice list
does; ``python -m harness data crossval`` measures the result by leaving one engine out.
Optional hard-negative words (yesterday, mess, snow, notice, ...) widen the
unknown class beyond Speech Commands' words.
``synth.json`` lists every speaker (engine, voice, variant, pitch, speed, warp, room); a clip's
speaker is the part of its file name before ``_nohash_``.
Speaker ids go in the file name before ``_nohash_`` so TF's hash rule keeps speakers disjoint
across splits. Confuser words (sound-alikes of yes/no) go to ``_confusers_/<word>/`` where the
split loader does not look; they measure false accepts only.

Difficulty was calibrated so float32 TinyConv lands in the paper's regime (measured: 0.895 test; see
``SETTINGS`` and the README).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.progress import progress_track

# The 35 Speech Commands v0.02 words; all but yes/no are "unknown" words.
SPEECH_COMMANDS_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four",
    "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right",
    "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)
KEYWORDS = ("yes", "no")
UNKNOWN_WORDS = tuple(w for w in SPEECH_COMMANDS_WORDS if w not in KEYWORDS)
# Sound-alikes of yes/no (the paper's live test used "finesse" and "elbow").
CONFUSER_WORDS = ("finesse", "elbow", "yet", "guess", "less", "know", "nose", "yeah", "note", "bless")
# Hard negatives: more sound-alikes of yes/no, spoken as extra unknown words (not Speech Commands
# words, none of them a confuser or a synonym of yes/no), to teach the unknown class the near misses
# of yes/no. Off by default (``hard_negatives=True``, ``python -m harness data synth
# --hard-negatives``): measured at paper size on two generator draws, each against the same draw
# without them, they cost 4 points of leave-one-engine-out accuracy and 2 of test accuracy (0.876,
# under the 0.88 floor) and moved confuser false accepts by -9 and +2 points: within the draw's spread.
HARD_NEGATIVE_WORDS = (
    "yesterday", "mess", "dress", "chess", "press", "yellow", "yell", "test", "west", "desk",
    "snow", "slow", "show", "toe", "though", "now", "new", "nod", "notice", "noble",
)

ENGINES = ("espeak-ng", "flite", "festival", "gnuspeech")
# The default set's engines. GnuSpeech is opt-in (``engines=``, ``data synth --engines``) and is the
# engine of ``data heldout``, the check on an engine the default generator never uses: measured in
# the default's place of festival/flite speakers it lowered leave-one-engine-out accuracy (README).
DEFAULT_ENGINES = ("espeak-ng", "flite", "festival")
ESPEAK_ACCENTS = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
                  "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
FLITE_VOICES = {"kal": 105.0, "kal16": 105.0, "awb": 110.0, "rms": 100.0, "slt": 170.0}  # f0 mean, Hz
# Debian's festival voices (festvox-kallpc16k, festvox-kdlpc16k, festvox-us-slt-hts): f0 mean, Hz;
# None: the HTS voice ignores festival's intonation targets (its pitch moves with the warp only).
# Tried and not kept (leave-one-engine-out, README "Cross-engine findings"): Debian's Czech and
# Finnish voices reading the English words (accented speakers): 0.842 -> 0.804; a British /@U/ for
# /ow/ in half of the flite and English festival speakers (espeak-ng's British "no" was taken for
# unknown): 0.822, no gain (flite's "yes", which it does not touch, moved by 0.10 between the two
# draws, so differences this size are noise).
FESTIVAL_VOICES = {"kal_diphone": 105.0, "ked_diphone": 105.0, "cmu_us_slt_arctic_hts": None}
# Below ~65 Hz with a long duration stretch, the diphone voices' falling contour runs out of pitch
# marks and festival exits ("Target pitchmarks end before end of target segment timings"; measured:
# "no" at 62 Hz x1.3 fails, 66 Hz x1.75 speaks), so a speaker's target f0 is at least this.
FESTIVAL_MIN_F0 = 70.0
# GnuSpeech: an articulatory synthesizer (a tube model of the vocal tract; npm package
# @echogarden/gnuspeech-wasm, run by node with gnuspeech/speak.mjs). Its own voices are the base of
# each speaker, whose tract length, glottal pulse, breathiness and tract radii are drawn per speaker
# (the ``gnuspeech_*`` settings), so the warp is done inside the tube model, not by resampling. It says
# "no" as /n@U/, like espeak-ng's British accents, which the other engines do not (see the README).
# node loads it from GNUSPEECH_DIR/node_modules (``make setup`` runs ``npm ci`` there).
GNUSPEECH_VOICES = {"male": 17.5, "female": 15.0, "large_child": 12.5, "small_child": 10.0}  # tract cm
GNUSPEECH_DIR = Path(__file__).with_name("gnuspeech")
APT_HINT = ("apt-get install espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts nodejs npm"
            f" && npm ci --prefix {GNUSPEECH_DIR}")

# Everything that changes the generated set; hashed into the cache key with this file's source.
SETTINGS = {
    "sizes": {
        # speakers per split (drawn until TF's hash rule has filled each quota, so the split sizes
        # come out as planned), keyword repetitions per speaker, clips per unknown word, per
        # confuser word, background file length (s). paper: 1590/200/206 speakers x 2 reps x yes+no
        # = 6,360 / 800 / 824 keywords -> ~10,558 / 1,328 / 1,368 clips with silence and unknown.
        "small": {"speakers": {"train": 80, "validation": 10, "test": 10}, "reps": 1, "unknown_per_word": 5,
                  "confuser_per_word": 3, "background_s": 8},
        "paper": {"speakers": {"train": 1590, "validation": 200, "test": 206}, "reps": 2, "unknown_per_word": 110,
                  "confuser_per_word": 40, "background_s": 60},
        # a test-only set (testing_list.txt names every clip): 100 speakers x 2 x yes/no, 20 clips per
        # unknown word, 20 per confuser word; made by ``data heldout`` with one engine
        "heldout": {"speakers": {"train": 80, "validation": 10, "test": 10}, "reps": 2, "unknown_per_word": 20,
                    "confuser_per_word": 20, "background_s": 8},
    },
    # share of speakers per engine (drawn in this order)
    # (of the engines chosen; the default's three: 40 / 30 / 30 %)
    "engine_weights": {"espeak-ng": 0.4, "flite": 0.3, "festival": 0.3, "gnuspeech": 0.3},
    "espeak_pitch": [10, 90],
    "espeak_speed": [110, 230],
    "flite_f0_scale": [0.7, 1.5],
    "flite_stretch": [0.75, 1.4],
    "festival_f0_scale": [0.7, 1.6],
    "festival_stretch": [0.75, 1.4],
    # GnuSpeech: tempo (1: the voice's own rate), pitch offset (semitones), tract length factor on
    # the base voice's, glottal pulse rise / fall (% of the period), breathiness (%), radius factors
    "gnuspeech_tempo": [0.7, 1.35],
    "gnuspeech_pitch": [-8.0, 4.0],
    "gnuspeech_tract": [0.88, 1.12],
    "gnuspeech_pulse_tp": [30.0, 50.0],
    "gnuspeech_pulse_tn": [16.0, 40.0],
    "gnuspeech_breathiness": [0.3, 4.0],
    "gnuspeech_radius": [0.9, 1.1],
    # per-speaker vocal-tract length: speech is resampled by this factor (1.2: formants and pitch
    # 20 % up); the engine's speed is divided by it so words keep their length
    "warp": [0.84, 1.22],
    # per-speaker room: probability of reverberation, RT60 (s), direct-to-reverberant ratio (dB)
    "room_probability": 0.5,
    "rt60_s": [0.1, 0.6],
    "drr_db": [0.0, 15.0],
    "rep_pitch_jitter": 5,
    "rep_speed_jitter": 0.07,
    "peak_dbfs": [-32.0, -1.0],
    "colour_probability": 0.6,
    "resonance_probability": 0.25,  # small-loudspeaker / cheap-microphone peak
    "clip_probability": 0.05,  # driven into (soft or hard) clipping
    "clip_drive_db": [3.0, 15.0],
    "noise_probability": 0.65,
    "snr_db": [10.0, 40.0],
    "noise_exponent": [0.0, 2.0],  # 0 white, 1 pink, 2 brown
    "hum_probability": 0.2,
    "background_rms": 0.15,
}
SIZES = tuple(SETTINGS["sizes"])
SR = 16000


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker identity; ``id`` is the hash key that decides its split."""

    engine: str  # one of ENGINES
    voice: str  # espeak accent, flite voice, festival voice or GnuSpeech base voice
    variant: str  # espeak variant, GnuSpeech voice settings ("key=value,..."), "" for the others
    pitch: float  # espeak 0-99, flite/festival f0 mean in Hz (0: the voice's own), GnuSpeech semitones
    speed: float  # espeak words/min, flite/festival duration stretch, or GnuSpeech tempo
    warp: float = 1.0  # vocal-tract length factor (resampling; GnuSpeech: 1, its tract is in ``variant``)
    rt60: float = 0.0  # room reverberation time, s (0: no room)
    drr: float = 0.0  # direct-to-reverberant ratio, dB

    @property
    def id(self) -> str:
        key = (f"{self.engine}|{self.voice}|{self.variant}|{self.pitch:.1f}|{self.speed:.3f}"
               f"|{self.warp:.3f}|{self.rt60:.2f}|{self.drr:.1f}")
        return hashlib.sha1(key.encode()).hexdigest()[:8]

    def to_dict(self) -> dict:
        return {"engine": self.engine, "voice": self.voice, "variant": self.variant, "pitch": self.pitch,
                "speed": self.speed, "warp": self.warp, "rt60": self.rt60, "drr": self.drr}


def _festival_voice_dirs() -> list[Path]:
    return [p for base in ("/usr/share/festival/voices", "/usr/local/share/festival/voices")
            for p in Path(base).glob("*/*") if p.is_dir()]


def check_engines(engines: tuple[str, ...] = DEFAULT_ENGINES) -> None:
    """HarnessError naming the missing engine(s) or voice(s) and the command that installs them."""
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise HarnessError(f"unknown text-to-speech engine(s) {', '.join(unknown) or '(none given)'} "
                           f"(choose from {', '.join(ENGINES)})")
    missing = [e for e in engines if e != "gnuspeech" and shutil.which(e) is None]
    if "gnuspeech" in engines and shutil.which("node") is None:
        missing.append("node (for gnuspeech)")
    elif "gnuspeech" in engines and not (GNUSPEECH_DIR / "node_modules" / "@echogarden" / "gnuspeech-wasm").is_dir():
        missing.append(f"gnuspeech (npm package not installed in {GNUSPEECH_DIR})")
    if not missing and "festival" in engines:
        have = {p.name for p in _festival_voice_dirs()}
        missing = [f"festival voice {v}" for v in FESTIVAL_VOICES if v not in have]
    if missing:
        raise HarnessError(f"text-to-speech engine(s) not found: {', '.join(missing)}; install with `{APT_HINT}`")


def espeak_variants() -> list[str]:
    """Voice variants that this espeak-ng installation has (the ``+name`` suffixes)."""
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=False).stdout
    names = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[4].startswith("!v/"):
            names.append(parts[4][3:])
    return sorted(set(names)) or ["m1", "m3", "f1", "f3"]


def make_speakers(quota: dict[str, int], rng: np.random.Generator, variants: list[str],
                  engines: tuple[str, ...] = DEFAULT_ENGINES) -> list[Speaker]:
    """Distinct speaker identities, drawn until each split (by TF's hash rule) has its quota."""
    from harness.data.hashsplit import which_set

    s = SETTINGS
    names = {"train": "training", "validation": "validation", "test": "testing"}
    left = {names[k]: v for k, v in quota.items()}
    speakers: dict[str, Speaker] = {}
    engines = [e for e in s["engine_weights"] if e in engines]
    weights = np.asarray([s["engine_weights"][e] for e in engines], dtype=float)
    while any(left.values()):
        engine = engines[int(rng.choice(len(engines), p=weights / weights.sum()))]
        warp = round(float(np.exp(rng.uniform(*np.log(s["warp"])))), 3)
        if rng.random() < s["room_probability"]:
            room = (round(float(rng.uniform(*s["rt60_s"])), 2), round(float(rng.uniform(*s["drr_db"])), 1))
        else:
            room = (0.0, 0.0)
        if engine == "gnuspeech":
            spk = _gnuspeech_speaker(rng, room)
        elif engine == "flite":
            voice = str(rng.choice(list(FLITE_VOICES)))
            f0 = FLITE_VOICES[voice] * rng.uniform(*s["flite_f0_scale"]) / warp
            stretch = rng.uniform(*s["flite_stretch"]) * warp
            spk = Speaker("flite", voice, "", round(f0, 1), round(float(stretch), 3), warp, *room)
        elif engine == "festival":
            voice = str(rng.choice(list(FESTIVAL_VOICES)))
            base = FESTIVAL_VOICES[voice]
            f0 = 0.0 if base is None else round(max(FESTIVAL_MIN_F0, base * rng.uniform(*s["festival_f0_scale"]) / warp), 1)
            stretch = rng.uniform(*s["festival_stretch"]) * warp
            spk = Speaker("festival", voice, "", f0, round(float(stretch), 3), warp, *room)
        else:
            speed = int(rng.integers(*s["espeak_speed"]) / warp)
            spk = Speaker("espeak-ng", str(rng.choice(ESPEAK_ACCENTS)), str(rng.choice(variants)),
                          float(rng.integers(*s["espeak_pitch"])), float(speed), warp, *room)
        split = which_set(f"{spk.id}_nohash_0.wav")
        if spk.id not in speakers and left[split] > 0:
            speakers[spk.id] = spk
            left[split] -= 1
    return list(speakers.values())


def _gnuspeech_speaker(rng: np.random.Generator, room: tuple[float, float]) -> Speaker:
    """A GnuSpeech speaker: a base voice with its own tract, glottis and breath (``variant``)."""
    s = SETTINGS
    voice = str(rng.choice(list(GNUSPEECH_VOICES)))
    tp = rng.uniform(*s["gnuspeech_pulse_tp"])  # drawn first: the held-out set's speakers stay as measured
    params = {
        "vocal_tract_length": round(GNUSPEECH_VOICES[voice] * rng.uniform(*s["gnuspeech_tract"]), 2),
        "glottal_pulse_tp": round(tp, 1),
        "glottal_pulse_tn_min": round(rng.uniform(*s["gnuspeech_pulse_tn"]), 1),
        "breathiness": round(float(np.exp(rng.uniform(*np.log(s["gnuspeech_breathiness"])))), 2),
        "global_radius_coef": round(rng.uniform(*s["gnuspeech_radius"]), 3),
        "global_nose_radius_coef": round(rng.uniform(*s["gnuspeech_radius"]), 3),
    }
    params["glottal_pulse_tn_max"] = params["glottal_pulse_tn_min"]
    variant = ",".join(f"{k}={v}" for k, v in params.items())
    return Speaker("gnuspeech", voice, variant, round(float(rng.uniform(*s["gnuspeech_pitch"])), 1),
                   round(float(rng.uniform(*s["gnuspeech_tempo"])), 3), 1.0, *room)


def _gnuspeech_job(word: str, spk: Speaker, pitch: float, speed: float, path: str) -> dict:
    params = {k: float(v) for k, v in (kv.split("=") for kv in spk.variant.split(",") if kv)}
    return {"text": word, "out": path, "voice": spk.voice, "params": params,
            "pitch_offset": round(pitch, 2), "tempo": round(speed, 3)}


def _run_gnuspeech(jobs: list[dict], tmp: str) -> None:
    script = os.path.join(tmp, f"gnuspeech-{os.getpid()}.json")
    Path(script).write_text(json.dumps(jobs))
    proc = subprocess.run(["node", str(GNUSPEECH_DIR / "speak.mjs"), script], capture_output=True, check=False)
    if proc.returncode != 0:
        raise HarnessError(f"gnuspeech failed: {_last_error(proc.stderr)}")


@dataclass(frozen=True)
class Job:
    word: str
    rel_path: str
    speaker: Speaker
    seed: int


def _jitter(spk: Speaker, rng: np.random.Generator) -> tuple[float, float]:
    """This repetition's (pitch, speed): the speaker's values with a small random change."""
    s = SETTINGS
    if spk.engine == "espeak-ng":
        pitch = float(np.clip(spk.pitch + rng.integers(-s["rep_pitch_jitter"], s["rep_pitch_jitter"] + 1), 0, 99))
        return pitch, float(int(spk.speed * (1 + rng.uniform(-1, 1) * s["rep_speed_jitter"])))
    if spk.engine == "gnuspeech":  # semitones; tempo is a rate
        return spk.pitch + rng.uniform(-0.7, 0.7), spk.speed * (1 + rng.uniform(-1, 1) * s["rep_speed_jitter"])
    f0 = spk.pitch * (1 + rng.uniform(-1, 1) * 0.04)
    return f0, spk.speed * (1 + rng.uniform(-1, 1) * s["rep_speed_jitter"])


def _festival_lines(word: str, spk: Speaker, pitch: float, speed: float, path: str) -> list[str]:
    """Scheme that speaks ``word`` with this speaker's duration stretch (and f0 for diphone voices)."""
    lines = [f"(Parameter.set 'Duration_Stretch {speed:.3f})"]
    if spk.pitch > 0:
        lines.append(f"(set! int_lr_params '((target_f0_mean {pitch:.1f}) (target_f0_std {pitch * 0.14:.1f}) "
                     "(model_f0_mean 170) (model_f0_std 34)))")
    lines.append(f'(kws_say "{word}" "{path}")')
    return lines


# ``Utterance`` does not evaluate its arguments (``(Utterance Text w)`` would say "w"): build the call.
_FESTIVAL_PRELUDE = ("(define (kws_say w f) (let ((u (eval (list 'Utterance 'Text w)))) "
                     "(utt.synth u) (utt.save.wave u f 'riff)))")


def _run_festival(voice: str, body: list[str], tmp: str) -> None:
    script = os.path.join(tmp, "batch.scm")
    Path(script).write_text("\n".join([f"(voice_{voice})", _FESTIVAL_PRELUDE, *body]) + "\n")
    proc = subprocess.run(["festival", "-b", script], capture_output=True, check=False)
    if proc.returncode != 0:
        raise HarnessError(f"festival ({voice}) failed with exit code {proc.returncode}: {_last_error(proc.stderr)}")


def _last_error(stderr: bytes) -> str:
    """The last line of a tool's stderr that is not part of an EST warning banner (festival prints
    harmless multi-line warnings before the line that says why it stopped)."""
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("-=-=") and not ln.startswith("Target pitchmarks")
             and not ln.startswith("Expect a truncated")]
    return lines[-1][:200] if lines else "(no message)"


def _tts(word: str, spk: Speaker, rng: np.random.Generator, tmp: str, ready: str | None = None) -> tuple[np.ndarray, int]:
    """Speak one word (with a small per-repetition jitter) and return float audio and its rate.

    ``ready``: a wav this job's batch already wrote (festival and node start slowly, so the
    generator speaks festival and GnuSpeech words in batches; the jitter is drawn here all the same).
    """
    import soundfile as sf

    pitch, speed = _jitter(spk, rng)
    path = os.path.join(tmp, "w.wav")
    if spk.engine in BATCHED and ready and os.path.exists(ready):
        path = ready
    elif spk.engine == "festival":
        _run_festival(spk.voice, _festival_lines(word, spk, pitch, speed, path), tmp)
    elif spk.engine == "gnuspeech":
        _run_gnuspeech([_gnuspeech_job(word, spk, pitch, speed, os.path.abspath(path))], tmp)
    else:
        if spk.engine == "espeak-ng":
            cmd = ["espeak-ng", "-v", f"{spk.voice}+{spk.variant}", "-p", str(int(pitch)), "-s", str(int(speed)),
                   "-w", path, word]
        else:
            cmd = ["flite", "-voice", spk.voice, "--setf", f"int_f0_target_mean={pitch:.1f}",
                   "--setf", f"duration_stretch={speed:.3f}", "-t", word, "-o", path]
        proc = subprocess.run(cmd, capture_output=True, check=False)
        if proc.returncode != 0:
            raise HarnessError(f"{spk.engine} failed on {word!r}: {proc.stderr.decode(errors='replace').strip()[:200]}")
    if not os.path.exists(path):
        raise HarnessError(f"{spk.engine} ({spk.voice}) wrote no audio for {word!r}")
    data, rate = sf.read(path, dtype="float64", always_2d=True)
    os.unlink(path)
    return data[:, 0], rate


BATCHED = ("festival", "gnuspeech")  # engines spoken in batches before rendering


def _speak_batch(args: tuple[list[tuple[int, "Job"]], str]) -> int:
    """Worker: speak a batch of one festival voice's (or of GnuSpeech) jobs into ``<tmp>/pre/<index>.wav``."""
    batch, tmp = args
    scratch = os.path.join(tmp, f"batch-{os.getpid()}")
    os.makedirs(scratch, exist_ok=True)
    jittered = [(index, job, *_jitter(job.speaker, np.random.default_rng(job.seed))) for index, job in batch]
    if batch[0][1].speaker.engine == "gnuspeech":
        _run_gnuspeech([_gnuspeech_job(job.word, job.speaker, pitch, speed, _batched_path(tmp, index))
                        for index, job, pitch, speed in jittered], scratch)
    else:
        body = []
        for index, job, pitch, speed in jittered:
            body += _festival_lines(job.word, job.speaker, pitch, speed, _batched_path(tmp, index))
        _run_festival(batch[0][1].speaker.voice, body, scratch)
    return len(batch)


def _batched_path(tmp: str, index: int) -> str:
    return os.path.join(tmp, "pre", f"{index}.wav")


def warp(x: np.ndarray, rate: int, factor: float) -> np.ndarray:
    """Vocal-tract length change: play ``x`` ``factor`` times faster, at 16 kHz.

    Formants and pitch move up by ``factor`` (a shorter tract), the word gets shorter by it.
    The virtual rate is rounded to 50 Hz so the polyphase filter stays small.
    """
    from harness.data.audio import resample

    virtual = int(round(rate * factor / 50.0)) * 50
    return resample(x, virtual, SR)


def room_response(rt60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response at 16 kHz: direct sound, sparse early reflections, and
    an exponentially decaying, progressively darker noise tail (RT60 ``rt60`` s) at ``drr_db``."""
    from scipy.signal import butter, lfilter

    n = max(int(rt60 * SR * 1.2), 256)
    t = np.arange(n) / SR
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    b, a = butter(1, rng.uniform(2500, 7000), btype="lowpass", fs=SR)
    tail = lfilter(b, a, tail)
    for _ in range(int(rng.integers(3, 9))):  # early reflections within 3-40 ms
        k = int(rng.uniform(0.003, 0.04) * SR)
        if k < n:
            tail[k] += rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.9) * np.exp(-6.9 * k / SR / rt60)
    tail[0] = 0.0
    tail *= 1.0 / (np.sqrt(np.sum(tail**2)) + 1e-12) * 10 ** (-drr_db / 20)
    tail[0] = 1.0
    return tail


def _trim(x: np.ndarray, rel: float = 0.02) -> np.ndarray:
    """Drop leading/trailing near-silence (TTS pads words with silence)."""
    if x.size == 0:
        return x
    env = np.abs(x)
    idx = np.nonzero(env > rel * env.max())[0]
    return x[max(idx[0] - 80, 0): idx[-1] + 80] if idx.size else x


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a 1/f**exponent power spectrum (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    spec *= f ** (-exponent / 2)
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def hum(n: int, rng: np.random.Generator, mains: float | None = None) -> np.ndarray:
    """Unit-RMS mains hum with harmonics (50 or 60 Hz)."""
    mains = mains or float(rng.choice([50.0, 60.0]))
    t = np.arange(n) / SR
    x = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 8))
    return x / np.sqrt(np.mean(x**2))


def degrade(word_audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Place a 16 kHz word in a 1 s clip at a random time, level, colouring, clipping and SNR (float)."""
    from scipy.signal import butter, iirpeak, lfilter

    s = SETTINGS
    x = _trim(word_audio)[:SR]
    if rng.random() < s["colour_probability"]:
        if rng.random() < 0.5:
            b, a = butter(1, rng.uniform(100, 600), btype="highpass", fs=SR)
        else:
            b, a = butter(1, rng.uniform(2000, 7000), btype="lowpass", fs=SR)
        x = lfilter(b, a, x)
    if rng.random() < s["resonance_probability"]:
        b, a = iirpeak(rng.uniform(300, 4000), rng.uniform(1.0, 5.0), fs=SR)
        x = x + rng.uniform(0.5, 2.0) * lfilter(b, a, x)
    if rng.random() < s["clip_probability"]:
        drive = 10 ** (rng.uniform(*s["clip_drive_db"]) / 20)
        y = x / (np.max(np.abs(x)) + 1e-12) * drive
        x = np.tanh(y) if rng.random() < 0.5 else np.clip(y, -1.0, 1.0)
    peak = np.max(np.abs(x)) + 1e-12
    x = x / peak * 10 ** (rng.uniform(*s["peak_dbfs"]) / 20)
    speech_rms = np.sqrt(np.mean(x**2)) + 1e-12
    out = np.zeros(SR)
    off = int(rng.integers(0, SR - x.size + 1))
    out[off: off + x.size] = x
    if rng.random() < s["noise_probability"]:
        noise = coloured_noise(SR, rng.uniform(*s["noise_exponent"]), rng)
        if rng.random() < s["hum_probability"]:
            noise = noise + hum(SR, rng) * rng.uniform(0.5, 2.0)
            noise /= np.sqrt(np.mean(noise**2))
        snr = rng.uniform(*s["snr_db"])
        out += noise * speech_rms / 10 ** (snr / 20)
    peak = np.max(np.abs(out))
    return out * (0.99 / peak) if peak > 0.99 else out  # never clip the mix: scale it down instead


def _render(job: Job, out_dir: str, tmp_dir: str, index: int = -1) -> str:
    """Worker: synthesize, warp, reverberate, degrade and write one clip. Returns its relative path."""
    from scipy.signal import fftconvolve

    from harness.data.audio import to_int16, write_wav

    rng = np.random.default_rng(job.seed)
    scratch = os.path.join(tmp_dir, str(os.getpid()))
    os.makedirs(scratch, exist_ok=True)
    audio, rate = _tts(job.word, job.speaker, rng, scratch, _batched_path(tmp_dir, index) if index >= 0 else None)
    spk = job.speaker
    audio = warp(_trim(audio), rate, spk.warp)
    if spk.rt60 > 0:
        audio = fftconvolve(audio, room_response(spk.rt60, spk.drr, rng))
    write_wav(Path(out_dir) / job.rel_path, to_int16(degrade(audio, rng)))
    return job.rel_path


def _render_star(args: tuple[Job, str, str, int]) -> str:
    return _render(*args)


def plan(size: str, seed: int, hard_negatives: bool = False, engines: tuple[str, ...] = DEFAULT_ENGINES) -> list[Job]:
    """Every clip to write, deterministic for (size, seed, hard_negatives, engines)."""
    if size not in SETTINGS["sizes"]:
        raise HarnessError(f"unknown synthetic data set size {size!r} (choose from {', '.join(SIZES)})")
    cfg = SETTINGS["sizes"][size]
    rng = np.random.default_rng(seed)
    speakers = make_speakers(cfg["speakers"], rng, espeak_variants() if "espeak-ng" in engines else [], engines)
    jobs: list[Job] = []
    counts: dict[tuple[str, str], int] = {}

    def add(folder: str, word: str, spk: Speaker) -> None:
        n = counts.get((folder, spk.id), 0)
        counts[(folder, spk.id)] = n + 1
        jobs.append(Job(word, f"{folder}/{spk.id}_nohash_{n}.wav", spk, int(rng.integers(2**63 - 1))))

    for spk in speakers:
        for word in KEYWORDS:
            for _ in range(cfg["reps"]):
                add(word, word, spk)
    for word in UNKNOWN_WORDS:
        for i in rng.choice(len(speakers), cfg["unknown_per_word"], replace=True):
            add(word, word, speakers[int(i)])
    for word in HARD_NEGATIVE_WORDS if hard_negatives else ():
        for i in rng.choice(len(speakers), cfg["unknown_per_word"], replace=True):
            add(word, word, speakers[int(i)])
    for word in CONFUSER_WORDS:
        for i in rng.choice(len(speakers), cfg["confuser_per_word"], replace=False):
            add(f"_confusers_/{word}", word, speakers[int(i)])
    return jobs


def _write_background(out: Path, seconds: int, rng: np.random.Generator, babble_sources: list[Path]) -> None:
    """``_background_noise_/``: stationary noises plus babble mixed from generated speech."""
    from harness.data.audio import read_wav, to_int16, write_wav

    n = seconds * SR
    rms = SETTINGS["background_rms"]
    noises = {
        "white_noise": coloured_noise(n, 0.0, rng),
        "pink_noise": coloured_noise(n, 1.0, rng),
        "brown_noise": coloured_noise(n, 2.0, rng),
        "mains_hum": hum(n, rng) + 0.3 * coloured_noise(n, 1.0, rng),
    }
    # running tap: band-limited noise with a slow, irregular loudness
    from scipy.signal import butter, lfilter

    b, a = butter(2, [800, 5000], btype="bandpass", fs=SR)
    tap = lfilter(b, a, rng.standard_normal(n)) * (1 + 0.5 * np.sin(2 * np.pi * 0.3 * np.arange(n) / SR))
    noises["running_tap"] = tap
    babble = np.zeros(n)
    if babble_sources:
        for _ in range(max(8, seconds * 6)):
            clip = read_wav(babble_sources[int(rng.integers(len(babble_sources)))]).astype(np.float64) / 32768
            off = int(rng.integers(0, n - clip.size))
            babble[off: off + clip.size] += clip / (np.sqrt(np.mean(clip**2)) + 1e-9)
        noises["babble"] = babble
    for name, x in noises.items():
        x = x / (np.sqrt(np.mean(x**2)) + 1e-12) * rms
        write_wav(out / "_background_noise_" / f"{name}.wav", to_int16(x))


def generate(out_dir: Path | str, size: str = "small", seed: int = 0, processes: int = 2,
             progress: bool = True, hard_negatives: bool = False, engines: tuple[str, ...] | None = None) -> Path:
    """Write a synthetic Speech Commands data set into ``out_dir`` (created). Returns the path.

    ``hard_negatives``: also speak ``HARD_NEGATIVE_WORDS`` as unknown words (see there).
    ``engines``: the text-to-speech engines (default ``DEFAULT_ENGINES``).
    """
    engines = tuple(engines or DEFAULT_ENGINES)
    check_engines(engines)
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and any(p.suffix == ".wav" for p in out.glob("*/*.wav")):
        raise HarnessError(f"output directory already holds wav files: {out} (choose an empty folder)")
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan(size, seed, hard_negatives, engines)
    scratch = tempfile.mkdtemp(prefix="kws-synth-")
    os.makedirs(os.path.join(scratch, "pre"))
    args = [(job, str(out), scratch, i) for i, job in enumerate(jobs)]
    by_voice: dict[str, list[tuple[int, Job]]] = {}
    for i, job in enumerate(jobs):
        if job.speaker.engine == "festival":
            by_voice.setdefault(job.speaker.voice, []).append((i, job))
        elif job.speaker.engine == "gnuspeech":
            by_voice.setdefault("gnuspeech", []).append((i, job))
    batches = [(items[k: k + 200], scratch) for items in by_voice.values() for k in range(0, len(items), 200)]
    try:
        if processes <= 1 or len(jobs) < 50:
            for b in batches:
                _speak_batch(b)
            for a in progress_track(args, total=len(args), description=f"synth {size}", enabled=progress):
                _render_star(a)
        else:
            from harness.workers import pool as worker_pool

            # fork: workers need only numpy/scipy/subprocess, and fork never re-imports __main__
            with worker_pool(processes, "fork" if "tensorflow" not in sys.modules else "spawn") as pool:
                for _ in pool.imap_unordered(_speak_batch, batches):
                    pass
                it = pool.imap_unordered(_render_star, args, chunksize=16)
                for _ in progress_track(it, total=len(args), description=f"synth {size}", enabled=progress):
                    pass
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rng = np.random.default_rng(seed + 1)
    unknown_clips = [out / j.rel_path for j in jobs if j.word in UNKNOWN_WORDS]
    chosen = [unknown_clips[int(i)] for i in rng.choice(len(unknown_clips), min(200, len(unknown_clips)), replace=False)]
    _write_background(out, SETTINGS["sizes"][size]["background_s"], rng, chosen)
    if size == "heldout":  # every word clip is a test clip
        words = sorted(j.rel_path for j in jobs if not j.rel_path.startswith("_confusers_/"))
        (out / "testing_list.txt").write_text("".join(f"{w}\n" for w in words))
    speakers = {j.speaker.id: j.speaker.to_dict() for j in jobs}
    meta = {"generator": "harness.data.synth", "size": size, "seed": seed, "clips": len(jobs),
            "hard_negatives": list(HARD_NEGATIVE_WORDS) if hard_negatives else [],
            "engines": sorted({s["engine"] for s in speakers.values()}),
            "speakers": dict(sorted(speakers.items())), "settings": SETTINGS, "settings_hash": settings_hash()}
    (out / "synth.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out


def settings_hash() -> str:
    """Hash of the generator's settings and source (changing either makes a new cached set)."""
    from harness.cache import content_hash

    from harness.data import audio

    return content_hash(SETTINGS, Path(__file__).read_bytes(), Path(audio.__file__).read_bytes(),
                        *(p.read_bytes() for p in sorted(GNUSPEECH_DIR.glob("*.*")) if p.is_file()))


def default_dataset(size: str = "paper", seed: int = 0, progress: bool = True, hard_negatives: bool = False,
                    engines: tuple[str, ...] | None = None) -> Path:
    """The synthetic set of ``size`` (and ``engines``), generated once into the cache and reused afterwards."""
    from harness.cache import content_hash
    from harness.paths import cache_dir

    if size not in SETTINGS["sizes"]:
        raise HarnessError(f"unknown synthetic data set size {size!r} (choose from {', '.join(SIZES)})")
    engines = tuple(engines or DEFAULT_ENGINES)
    parts = [settings_hash(), seed, size] + (["hard-negatives"] if hard_negatives else [])
    parts += [] if engines == DEFAULT_ENGINES else [list(engines)]
    key = content_hash(*parts)
    final = cache_dir() / "datasets" / f"synth-{size}-{key}"
    if (final / "synth.json").is_file():
        return final
    check_engines(engines)
    final.parent.mkdir(parents=True, exist_ok=True)
    import fcntl

    # One generator per set: concurrent callers (pytest-xdist workers, parallel jobs) wait here.
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "synth.json").is_file():
            return final
        partial = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            generate(partial, size=size, seed=seed, progress=progress, hard_negatives=hard_negatives, engines=engines)
            os.replace(partial, final)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return final


if __name__ == "__main__":  # pragma: no cover
    sys.exit(print(default_dataset(sys.argv[1] if len(sys.argv) > 1 else "small")))
