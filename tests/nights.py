"""Five synthetic nights in a results folder, for the history, report and browser tests.

Two nights are real suite runs on the emulated board (fp32 only, the small synthetic set, the
budgets and device-memory/time/accuracy tests; both together took 36 s on a warm cache on the
2-core development machine, 3 min when it was busy; a cold cache adds the small set's baseline):

- night 1: budgets.toml as it is, ``--device-samples 8``;
- night 2: a budgets file with ``device_network_max`` lowered from 8M to 4M and ``--device-samples 16``
  (the deliberate change a team makes between two nights).

Five real runs would cost five minutes of ``make test`` for the same information, so nights 3-5
are copies of night 2 (five real runs would measure identical numbers: QEMU counts instructions),
and two things no real night can produce on demand are injected into the copies' CSV rows:

- a slow drift: ``flash`` grows by 1 % per night from night 1 to night 5 (nights 1 and 2 too);
- a step: ``device_network`` jumps by 8 % from night 4 on (as a slower kernel would).

A partial run (night 3.5: ``finished`` removed from its metadata, ``device_network`` halved, flash
missing) sits between nights 3 and 4 to show that partial runs are marked and never compared.
Run times are set to 02:17 UTC on consecutive days.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DRIFT = 0.01
STEP = 0.08
STEP_NIGHT = 4


@dataclass
class Nights:
    root: Path  # the results folder (holds runs/)
    runs: list[Path]  # nights 1..5 (complete), oldest first
    partial: Path
    junit: Path  # the JUnit XML pytest wrote for night 2


def _suite(results: Path, budgets: Path, samples: int, dataset: Path, junit: Path) -> Path:
    before = set((results / "runs").glob("*")) if (results / "runs").is_dir() else set()
    cmd = [sys.executable, "-m", "pytest", "suites/test_device.py", "suites/test_model_budgets.py",
           "-p", "no:cacheprovider", "-q", "--variants", "fp32", "--device", "emu", "--dataset", str(dataset),
           "--device-samples", str(samples), "--budgets", str(budgets), "--results-dir", str(results),
           "-k", "memory or network_time or accuracy_and or model_budgets", f"--junitxml={junit}"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=dict(os.environ), timeout=900)
    new = sorted(set((results / "runs").glob("*")) - before)
    assert r.returncode == 0 and len(new) == 1, f"suite run failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}"
    return new[0]


def _rewrite(run: Path, fn) -> None:
    """Apply fn(row dict) -> row dict | None to every row of the run's CSV files."""
    for f in run.glob("measurements*.csv"):
        with open(f, newline="") as fh:
            rows = list(csv.DictReader(fh))
            fields = list(rows[0].keys()) if rows else []
        kept = [x for x in (fn(dict(r)) for r in rows) if x is not None]
        with open(f, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
            w.writeheader()
            w.writerows(kept)


def _scale(metric: str, factor: float):
    def fn(r: dict) -> dict:
        if r["metric"] == metric:
            r["value"] = repr(float(r["value"]) * factor)
        return r
    return fn


def _set_time(run: Path, day: int, partial: bool = False) -> Path:
    meta_path = run / "metadata.json"
    meta = json.loads(meta_path.read_text())
    stamp = f"2026-11-{day:02d}T02:17:00"
    meta["started"] = stamp + ".000000Z"
    meta["finished"] = f"2026-11-{day:02d}T02:18:05.000000Z"
    if partial:
        meta.pop("finished")
        meta.pop("exitstatus", None)
    meta_path.write_text(json.dumps(meta, indent=2))
    sha = meta.get("git", {}).get("sha", "unknown")
    target = run.parent / f"202611{day:02d}T0217{'30' if partial else '00'}Z-{sha}"
    run.rename(target)
    return target


def make_nights(root: Path, dataset: Path) -> Nights:
    root.mkdir(parents=True, exist_ok=True)
    budgets = REPO / "budgets.toml"
    changed = root / "budgets-night2.toml"
    text = budgets.read_text()
    assert 'device_network_max = "8M"' in text, "budgets.toml changed: update the injected budget change"
    changed.write_text(text.replace('device_network_max = "8M"', 'device_network_max = "4M"'))
    junit1, junit2 = root / "junit-night1.xml", root / "junit-night2.xml"
    night1 = _suite(root, budgets, 8, dataset, junit1)
    night2 = _suite(root, changed, 16, dataset, junit2)
    runs = [night1, night2]
    for _ in range(3):
        copy = root / "runs" / f"copy-{len(runs)}"
        shutil.copytree(night2, copy)
        runs.append(copy)
    partial = root / "runs" / "copy-partial"
    shutil.copytree(night2, partial)
    for i, run in enumerate(runs):
        _rewrite(run, _scale("flash", (1 + DRIFT) ** i))
        if i + 1 >= STEP_NIGHT:
            _rewrite(run, _scale("device_network", 1 + STEP))
    _rewrite(partial, lambda r: None if r["metric"] == "flash" else _scale("device_network", 0.5)(r))
    runs = [_set_time(run, i + 1) for i, run in enumerate(runs)]
    partial = _set_time(partial, 3, partial=True)
    return Nights(root, runs, partial, junit2)
