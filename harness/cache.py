"""Content-addressed cache: every artifact is keyed by the hash of everything it was made from.

A rerun that changed nothing finds its artifact and rebuilds nothing. Writes are atomic
(temp file + rename), so a crash never leaves a half-written artifact that looks valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from harness.paths import cache_dir


def _feed(h: "hashlib._Hash", obj: Any) -> None:
    if isinstance(obj, Path):
        h.update(b"path:")
        if obj.is_file():
            h.update(file_hash(obj).encode())
        else:
            h.update(str(obj).encode())
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        h.update(b"bytes:")
        h.update(bytes(obj))
    elif isinstance(obj, np.ndarray):
        h.update(f"nd:{obj.dtype}:{obj.shape}:".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif hasattr(obj, "state_dict"):  # torch modules: hash the weights
        for name, tensor in obj.state_dict().items():
            h.update(name.encode())
            _feed(h, tensor.detach().cpu().numpy())
    elif isinstance(obj, (list, tuple)):
        h.update(b"seq:")
        for item in obj:
            _feed(h, item)
    else:
        h.update(json.dumps(obj, sort_keys=True, default=str).encode())


def content_hash(*parts: Any, length: int = 16) -> str:
    """Stable hex digest of JSON-able values, bytes, numpy arrays, torch modules and files."""
    h = hashlib.sha256()
    for part in parts:
        _feed(h, part)
        h.update(b"|")
    return h.hexdigest()[:length]


def file_hash(path: Path, length: int = 16) -> str:
    """SHA-256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def source_hash(*modules: Any) -> str:
    """Hash of Python modules' source files, so a code change invalidates what that code made."""
    return content_hash(*[Path(m.__file__) for m in modules])


def artifact_dir(kind: str, key: str) -> Path:
    """Directory for one cached artifact: ``<cache>/<kind>/<key>/`` (created)."""
    path = cache_dir() / kind / key
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
