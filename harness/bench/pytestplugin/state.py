"""What the plugin resolved for one pytest process, kept in the config stash.

Every other module of the plugin reads it through ``kws_state(config)``; the only I/O here is the
writability probe of a results folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

STASH_STATE = pytest.StashKey["KwsState"]()


LOCAL_KINDS = ("emu", "native")  # boards the harness starts itself, one per worker


@dataclass
class KwsState:
    """What the plugin resolved for this process."""

    devices: list[str]  # the full --device list
    device: str  # this process's board
    worker: str | None  # xdist worker id, None in the main process
    run_dir: Path
    budgets_path: Path
    backend: str = "aot"
    baseline: Path | None = None
    budgets: Any = None
    store: Any = None
    variant_ids: list[str] | None = None
    recorded: int = 0
    measured: dict = field(default_factory=dict)  # (variant, metric) -> last Row of this process
    notes: list[str] = field(default_factory=list)
    plan: dict = field(default_factory=dict)  # variant -> metric -> nodeid of the test that measures it
    stopped_early: str = ""  # why the session stopped before running every test (-x, --maxfail)


def kws_state(config: pytest.Config) -> KwsState:
    return config.stash[STASH_STATE]


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _writable_root(path: Path) -> bool:
    """True when ``path`` exists writable, or could be created under a writable ancestor.

    Tried, not only asked: root passes ``os.access`` everywhere, yet cannot create a folder under
    /proc or on a read-only mount, so a scratch folder is made in the nearest existing ancestor and
    removed at once (nothing is left behind)."""
    import tempfile

    p = path
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    if not (p.is_dir() and os.access(p, os.W_OK | os.X_OK)):
        return False
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".kws-probe-", dir=p))
    except OSError:
        return False
    return True
