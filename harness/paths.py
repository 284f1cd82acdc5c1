"""Where things live: the repository, the artifact cache, the results store."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_DIR = REPO_ROOT / "firmware"


def cache_dir() -> Path:
    """Root of the content-addressed artifact cache (``KWS_CACHE_DIR`` or ``<repo>/.cache``)."""
    path = Path(os.environ.get("KWS_CACHE_DIR", REPO_ROOT / ".cache")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    """Default results store (``KWS_RESULTS_DIR`` or ``<repo>/results``)."""
    return Path(os.environ.get("KWS_RESULTS_DIR", REPO_ROOT / "results")).expanduser()
