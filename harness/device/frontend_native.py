"""The firmware's C audio front end (firmware/lib/kws_frontend), compiled for the host.

WHY: the device computes its own 49x40 features from raw audio, and those must equal what
the host front end (TF audio_microfrontend, harness/data/features.py) fed the model in training.
Running the very same C sources on the host through ctypes checks that bit for bit on as
many clips as we like, without a board or QEMU. The shared library is built with the host C
compiler (``$CC`` or gcc) and cached under the artifact cache, keyed by the hash of the C
sources and the flags, so an edit to the C code rebuilds it and nothing else does.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from harness.cache import artifact_dir, content_hash
from harness.errors import HarnessError
from harness.paths import FIRMWARE_DIR

SOURCE_DIR = FIRMWARE_DIR / "lib" / "kws_frontend"
RUNTIME_SOURCES = ("kws_frontend.c", "kws_fft.c", "kws_frontend_tables.c", "kws_log_lut.c", "kws_frontend_ref.c")
TABLEGEN_SOURCE = "tools/kws_frontend_tablegen.c"
GENERATED = ("kws_frontend_tables.c", "kws_frontend_tables.h")
CFLAGS = ("-std=c99", "-O2", "-fPIC", "-shared", "-Wall", "-Wextra")

SAMPLES = 16000
FRAMES = 49
CHANNELS = 40

# Return codes of kws_frontend_compute*() (kws_frontend.h).
OK = 0
ERR_NULL = -1
ERR_LENGTH = -2


def _compiler() -> str:
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise HarnessError(f"C compiler not found: {cc!r} (set CC or install gcc) for {SOURCE_DIR}")
    return cc


def _sources_key() -> str:
    files = sorted(p for p in SOURCE_DIR.rglob("*") if p.suffix in (".c", ".h"))
    if not files:
        raise HarnessError(f"no C sources for the front end in {SOURCE_DIR}")
    return content_hash([p.relative_to(SOURCE_DIR).as_posix() for p in files], files, CFLAGS)


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["(no output)"])[0]
        raise HarnessError(f"{what} failed ({' '.join(cmd[:2])} ...): {first}")


def build_library() -> Path:
    """Compile the front end into a cached shared library and return its path."""
    out = artifact_dir("frontend_native", _sources_key()) / "libkws_frontend.so"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tmp_lib = Path(tmp) / out.name
        cmd = [_compiler(), *CFLAGS, "-I", str(SOURCE_DIR), "-o", str(tmp_lib)]
        cmd += [str(SOURCE_DIR / s) for s in RUNTIME_SOURCES]
        _run(cmd, f"compiling the C front end in {SOURCE_DIR}")
        os.replace(tmp_lib, out)
    return out


@lru_cache(maxsize=1)
def load_library() -> ctypes.CDLL:
    """The compiled front end with its C signatures declared (loaded once per process)."""
    lib = ctypes.CDLL(str(build_library()))
    i16p = np.ctypeslib.ndpointer(np.int16, flags="C_CONTIGUOUS")
    lib.kws_frontend_compute.argtypes = [i16p, ctypes.c_int, ctypes.c_void_p]
    lib.kws_frontend_compute.restype = ctypes.c_int
    lib.kws_frontend_compute_u16.argtypes = [i16p, ctypes.c_int, ctypes.c_void_p]
    lib.kws_frontend_compute_u16.restype = ctypes.c_int
    lib.kws_frontend_reset.argtypes = []
    lib.kws_frontend_reset.restype = None
    lib.kws_frontend_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.kws_frontend_frame.restype = None
    return lib


def _as_clip(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio)
    if a.ndim != 1 or a.shape[0] != SAMPLES:
        raise HarnessError(f"C front end: expected 1-D audio of {SAMPLES} samples, got shape {a.shape}")
    if a.dtype != np.int16:
        if not np.issubdtype(a.dtype, np.integer) or a.min() < -32768 or a.max() > 32767:
            raise HarnessError(f"C front end: audio must be int16 PCM, got {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int16)


def _compute(function: str, audio: np.ndarray, dtype: type) -> np.ndarray:
    """Run one of the C front end's whole-clip entry points into a (49, 40) array of ``dtype``."""
    clip = _as_clip(audio)
    out = np.zeros((FRAMES, CHANNELS), dtype=dtype)
    rc = getattr(load_library(), function)(clip, clip.shape[0], out.ctypes.data)
    if rc != OK:
        raise HarnessError(f"C front end: {function} returned {rc}")
    return out


def frontend_c(audio_int16: np.ndarray) -> np.ndarray:
    """1 s of 16 kHz int16 audio -> uint16 (49, 40), like ``features.frontend`` (TF op)."""
    return _compute("kws_frontend_compute_u16", audio_int16, np.uint16)


def features_c(audio: np.ndarray) -> np.ndarray:
    """1 s of 16 kHz int16 audio -> int8 (49, 40), as the firmware feeds the model."""
    return _compute("kws_frontend_compute", audio, np.int8)


def generate_tables(out_dir: Path) -> list[Path]:
    """Build and run the table generator into ``out_dir``; returns the generated files.

    The committed kws_frontend_tables.{c,h} must equal this output (a test checks it), so a
    change of settings goes through the generator rather than hand edits.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    exe = out_dir / "kws_frontend_tablegen"
    _run([_compiler(), "-std=c99", "-O1", "-DKWS_FRONTEND_TABLEGEN", str(SOURCE_DIR / TABLEGEN_SOURCE),
          "-lm", "-o", str(exe)], f"compiling the front-end table generator {TABLEGEN_SOURCE}")
    _run([str(exe), str(out_dir)], f"running the front-end table generator in {out_dir}")
    return [out_dir / name for name in GENERATED]
