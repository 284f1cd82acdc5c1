"""The results store: one folder per run, every measurement appended the moment it is made.

Why append-as-you-go: a benchmark run on a board takes minutes to hours; a crash, a dead board or
Ctrl-C must keep everything already measured. Each row is written with one ``write`` on a file
opened for appending, then flushed and fsynced, so a row is either fully on disk or absent.

Layout of a run (``<results>/runs/<UTC time>-<git short sha>/``)::

    measurements.csv          rows written by the main pytest process (or the CLI)
    measurements-gw0.csv      rows of pytest-xdist worker gw0 (one file per process: no interleaving)
    metadata.json             git sha, dirty flag, tool versions, data set, budgets (atomic write);
                              ``finished`` and ``exitstatus`` once the session ended (absent: partial run)
    devices/<label>.json      identity of each board used (its HELLO fields), written by its worker,
                              and "link": requests, retries, reconnects (totals and by variant)
    plan.json                 {variant: {metric: test}}: what the selected tests were to measure
    outcomes.jsonl            one line per benchmark test that failed or was skipped, with its message
    findings[-gwN].jsonl      the paper's findings on this data: reproduced or not, with the numbers

CSV columns: variant, metric, value, unit, limit, pass, test_id, timestamp, then where the row was
measured: device (the worker's --device), place, exporter, exporter_host (labgrid farm) and board_serial
(USB serial number, or emulator id); empty when unknown (older runs lack these columns and still load).
``pass`` is ``true``/``false`` or empty when no budget applies.

Metric names used by the suites (units in brackets): accuracy, accuracy_<class>, tflite_accuracy
[fraction]; params, nonzero_params, flops [count]; flash_estimate, ram_estimate, flash, ram,
flash_model, model_rodata [B]; host_latency_cpu, host_latency_gpu [ms]; device_network, device_preprocessing,
device_postprocessing, device_total [the board's timer unit: instructions or cycles];
device_accuracy, exact_fraction [fraction]; exact [bool 0/1]; device_host_ratio;
device_network_cycles_est, device_preprocessing_cycles_est [cycles], device_network_ms_est,
device_preprocessing_ms_est [ms @64 MHz] (emulated board: estimates from harness/device/cycles.py).
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Iterable

from harness.cache import atomic_write_json
from harness.errors import HarnessError
from harness.paths import REPO_ROOT, results_dir

WHERE = ("device", "place", "exporter", "exporter_host", "board_serial")  # where a row was measured
COLUMNS = ["variant", "metric", "value", "unit", "limit", "pass", "test_id", "timestamp", *WHERE]
FINDING = "finding"  # the pseudo-variant of the paper's findings rows (metric = the finding's name)


@dataclass(frozen=True)
class Row:
    """One measurement of one metric of one variant."""

    variant: str
    metric: str
    value: float
    unit: str = ""
    limit: float | None = None
    passed: bool | None = None
    test_id: str = ""
    timestamp: str = ""
    device: str = ""
    place: str = ""
    exporter: str = ""
    exporter_host: str = ""
    board_serial: str = ""

    def to_csv(self) -> list[str]:
        return [
            self.variant,
            self.metric,
            repr(float(self.value)),
            self.unit,
            "" if self.limit is None else repr(float(self.limit)),
            "" if self.passed is None else ("true" if self.passed else "false"),
            self.test_id,
            self.timestamp,
            *(getattr(self, k) for k in WHERE),
        ]

    @classmethod
    def from_csv(cls, rec: dict[str, str]) -> "Row":
        p = rec.get("pass", "")
        return cls(
            variant=rec["variant"],
            metric=rec["metric"],
            value=float(rec["value"]),
            unit=rec.get("unit", ""),
            limit=float(rec["limit"]) if rec.get("limit") else None,
            passed=None if p == "" else p == "true",
            test_id=rec.get("test_id", ""),
            timestamp=rec.get("timestamp", ""),
            **{k: rec.get(k) or "" for k in WHERE},
        )


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """Short sha and dirty flag of the checkout (``unknown`` outside git)."""
    sha = _run(["git", "rev-parse", "--short", "HEAD"], repo) or "unknown"
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], repo)
    return {"sha": sha, "dirty": bool(status) if status is not None else None}


def tool_versions() -> dict[str, str | None]:
    """Versions of everything that shapes a number (package metadata: nothing heavy is imported)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name, dist in [
        ("torch", "torch"),
        ("tensorflow", "tensorflow-cpu"),
        ("tflite-micro", "tflite-micro"),
        ("platformio", "platformio"),
        ("numpy", "numpy"),
        ("pytest", "pytest"),
    ]:
        try:
            versions[name] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            if name == "tensorflow":
                try:
                    versions[name] = importlib_metadata.version("tensorflow")
                    continue
                except importlib_metadata.PackageNotFoundError:
                    pass
            versions[name] = None
    for name, cmd in [
        ("arm-none-eabi-gcc", ["arm-none-eabi-gcc", "--version"]),
        ("qemu-system-arm", ["qemu-system-arm", "--version"]),
    ]:
        out = _run(cmd) if shutil.which(cmd[0]) else None
        versions[name] = out.splitlines()[0] if out else None
    return versions


def new_run_dir(root: Path | None = None, sha: str | None = None) -> Path:
    """A fresh ``<root>/runs/<UTC time>-<sha>/`` path (not created)."""
    root = Path(root) if root is not None else results_dir()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    sha = sha or git_info()["sha"]
    base = root / "runs" / f"{stamp}-{sha}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}.{n}")
    return path


class RunStore:
    """Appends measurements of one run to its folder; safe across processes (one CSV per writer)."""

    def __init__(self, run_dir: Path, writer: str | None = None):
        self.run_dir = Path(run_dir)
        self.writer = writer
        name = f"measurements-{writer}.csv" if writer else "measurements.csv"
        self.csv_path = self.run_dir / name
        self.where: dict[str, str] = {}  # stamped on every row: set_device / set_where
        self._ensure_writable()

    def _ensure_writable(self) -> None:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            probe = self.run_dir / f".write-probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise HarnessError(
                f"results directory {self.run_dir} is not writable: {exc.strerror or exc}"
            ) from None

    def record(
        self,
        variant: str,
        metric: str,
        value: float,
        unit: str = "",
        limit: float | None = None,
        passed: bool | None = None,
        test_id: str = "",
    ) -> Row:
        """Append one row now (flush + fsync) and return it."""
        row = Row(variant, metric, float(value), unit, None if limit is None else float(limit),
                  passed, test_id, utc_now(), **{k: str(self.where.get(k) or "") for k in WHERE})
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        new = not self.csv_path.exists() or self.csv_path.stat().st_size == 0
        if new:
            w.writerow(COLUMNS)
        w.writerow(row.to_csv())
        _append_whole(self.csv_path, buf.getvalue().encode())
        return row

    def write_metadata(self, **fields: Any) -> Path:
        """Merge ``fields`` into metadata.json (atomic replace)."""
        path = self.run_dir / "metadata.json"
        meta = read_json(path) if path.exists() else {}
        meta.update(fields)
        return _readable(atomic_write_json(path, meta))

    def set_where(self, **where: Any) -> None:
        """Where the following rows are measured (keys of WHERE; others ignored)."""
        self.where.update({k: str(v) for k, v in where.items() if k in WHERE and v is not None})

    def append_json(self, stem: str, record: dict[str, Any]) -> Path:
        """Append one JSON line to ``<stem>[-<writer>].jsonl`` (one write, fsynced, like a row)."""
        name = f"{stem}-{self.writer}.jsonl" if self.writer else f"{stem}.jsonl"
        path = self.run_dir / name
        _append_whole(path, (json.dumps(record, default=str, sort_keys=True) + "\n").encode())
        return path

    def record_finding(self, name: str, reproduced: bool, detail: str, test_id: str = "",
                       regression: bool = False) -> Row:
        """A paper finding checked on this data: a row (variant ``finding``, 1 = reproduced) and
        its numbers in findings.jsonl, so the report can say what did not reproduce and why."""
        self.append_json("findings", {"name": name, "reproduced": bool(reproduced), "detail": detail,
                                      "regression": bool(regression), "test_id": test_id, "timestamp": utc_now()})
        return self.record(FINDING, name, 1.0 if reproduced else 0.0, "bool", None, None, test_id)

    def set_device(self, label: str, identity: dict[str, Any]) -> Path:
        """Record the identity (HELLO fields, and where it is: place, exporter, board serial) of the board
        ``label`` used in this run; its place/exporter/serial are stamped on the rows that follow."""
        self.set_where(**identity)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
        return _readable(atomic_write_json(self.run_dir / "devices" / f"{safe}.json", {"label": label, **identity}))


def _append_whole(path: Path, data: bytes) -> None:
    """Append ``data`` with one write and fsync it: a row lands whole or not at all, even when the
    process is killed right after (rows measured before a crash stay on disk)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise HarnessError(f"cannot append to {path}: {exc.strerror or exc}") from None


def _readable(path: Path) -> Path:
    """Atomic writes create 0600 temp files; a run folder is shared (CI artifacts, other users)."""
    os.chmod(path, 0o644)
    return path


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HarnessError(f"cannot read {path}: {exc}") from None


def run_metadata(budgets: Any = None, dataset: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The metadata a run starts with: git, versions, host, data set, budgets used."""
    meta: dict[str, Any] = {
        "started": utc_now(),
        "git": git_info(),
        "versions": tool_versions(),
        "host": {"machine": platform.machine(), "system": platform.platform(), "cpus": os.cpu_count()},
    }
    if dataset is not None:
        meta["dataset"] = dataset
    if budgets is not None:
        meta["budgets"] = budgets.to_json() if hasattr(budgets, "to_json") else budgets
    meta.update(extra)
    return meta


@dataclass
class Run:
    """A run read back from disk."""

    path: Path
    rows: list[Row] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, dict[str, str]] = field(default_factory=dict)  # variant -> metric -> test expected to measure it
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)  # nodeid -> its last outcome record
    findings: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> last findings.jsonl record

    @property
    def variants(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.rows:
            seen.setdefault(r.variant, None)
        return list(seen)

    @property
    def model_variants(self) -> list[str]:
        """The variants measured or planned (the findings pseudo-variant left out)."""
        seen: dict[str, None] = {}
        for v in [*self.plan, *self.variants]:
            if v != FINDING:
                seen.setdefault(v, None)
        return list(seen)

    def status(self) -> tuple[bool, str]:
        """``(partial, why)``: a run that did not finish, or ended interrupted, is partial."""
        return run_status(self.metadata)

    def latest(self) -> dict[str, dict[str, Row]]:
        """``{variant: {metric: row}}`` keeping the last row of each pair (a rerun overrides)."""
        table: dict[str, dict[str, Row]] = {}
        for r in sorted(self.rows, key=lambda r: r.timestamp):
            table.setdefault(r.variant, {})[r.metric] = r
        return table


_EXIT_MEANING = {2: "interrupted (Ctrl-C or SIGTERM)", 3: "pytest internal error", 4: "usage error",
                 5: "no tests collected"}


def run_status(meta: dict[str, Any]) -> tuple[bool, str]:
    """``(partial, why)`` of a run from its metadata.json. A run whose metadata was started but never
    finished (killed, crashed, still running), one that ended interrupted or stopped early (-x), is
    partial. Exit status 1 (tests failed) is a finished run. Rows imported without metadata are not
    judged (``(False, "")``)."""
    if not meta or "started" not in meta:
        return False, ""
    if "finished" not in meta:
        return True, "did not finish (no 'finished' in metadata.json: killed, crashed or still running)"
    code = meta.get("exitstatus")
    if isinstance(code, int) and code not in (0, 1):
        return True, f"ended with exit status {code}: {_EXIT_MEANING.get(code, 'abnormal end')}"
    if meta.get("stopped_early"):
        return True, f"stopped early ({meta['stopped_early']}): not every selected test ran"
    return False, ""


def _read_jsonl(files: list[Path]) -> list[dict[str, Any]]:
    out = []
    for f in files:
        for line in f.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash mid-write
            if isinstance(rec, dict):
                out.append(rec)
    return out


def load_run(run_dir: str | Path) -> Run:
    """Read every measurements*.csv, metadata.json and devices/*.json of a run folder."""
    path = Path(run_dir).expanduser()
    if not path.is_dir():
        raise HarnessError(f"run directory {path} does not exist")
    files = sorted(path.glob("measurements*.csv"))
    if not files:
        raise HarnessError(f"{path} holds no measurements*.csv: not a run directory")
    run = Run(path)
    for f in files:
        with open(f, newline="") as fh:
            for i, rec in enumerate(csv.DictReader(fh), start=2):
                if not rec.get("variant") or rec.get("value") in (None, ""):
                    continue  # a row cut by a crash mid-write: skip it, keep the rest
                try:
                    run.rows.append(Row.from_csv(rec))
                except (KeyError, ValueError):
                    continue
    run.rows.sort(key=lambda r: r.timestamp)  # workers' files interleaved in measurement order
    meta = path / "metadata.json"
    if meta.exists():
        run.metadata = read_json(meta)
    plan = path / "plan.json"
    if plan.exists():
        run.plan = {v: dict(m) for v, m in read_json(plan).items() if isinstance(m, dict)}
    for rec in sorted(_read_jsonl(sorted(path.glob("outcomes*.jsonl"))), key=lambda r: str(r.get("timestamp", ""))):
        if rec.get("nodeid"):
            run.outcomes[str(rec["nodeid"])] = rec
    for rec in sorted(_read_jsonl(sorted(path.glob("findings*.jsonl"))), key=lambda r: str(r.get("timestamp", ""))):
        if rec.get("name"):
            run.findings[str(rec["name"])] = rec
    devices = sorted((path / "devices").glob("*.json")) if (path / "devices").is_dir() else []
    if devices:
        run.metadata.setdefault("devices", {})
        for d in devices:
            info = read_json(d)
            run.metadata["devices"][info.get("label", d.stem)] = info
    return run


def list_runs(root: str | Path | None = None) -> list[Path]:
    """Run folders under ``root`` (a results folder holding ``runs/``, or ``runs/`` itself), oldest first."""
    root = Path(root).expanduser() if root is not None else results_dir()
    candidates = [root / "runs", root]
    for c in candidates:
        if c.is_dir():
            runs = [p for p in c.iterdir() if p.is_dir() and any(p.glob("measurements*.csv"))]
            if runs:
                return sorted(runs, key=lambda p: p.name)
    return []


def resolve_run(spec: str | Path | None, exclude: Path | None = None) -> Path:
    """A run folder from a run path, a results root (its latest run) or ``None`` (default root)."""
    path = Path(spec).expanduser() if spec is not None else results_dir()
    if path.is_dir() and any(path.glob("measurements*.csv")):
        return path
    runs = [r for r in list_runs(path) if exclude is None or r.resolve() != Path(exclude).resolve()]
    if not runs:
        raise HarnessError(f"no runs found under {path} (expected {path}/runs/<time>-<sha>/measurements.csv)")
    return runs[-1]


def write_rows(run_dir: Path, rows: Iterable[Row]) -> None:
    """Test helper and importer: append many rows through the same path as ``record``."""
    store = RunStore(run_dir)
    for r in rows:
        store.record(r.variant, r.metric, r.value, r.unit, r.limit, r.passed, r.test_id)


def baseline_run(spec: str, current: Path, notes: list[str] | None = None) -> Path:
    """The baseline of ``current``: ``last`` = the newest earlier run beside it that finished (partial
    runs are passed over, and ``notes`` says which and which run was taken instead), else a path."""
    current = Path(current)
    if spec == "last":
        older = [r for r in list_runs(current.parent) if r.name < current.name]
        if not older:
            raise HarnessError(f"--baseline last: no earlier run in {current.parent} to compare with")
        passed_over = []
        for candidate in reversed(older):
            meta = candidate / "metadata.json"
            partial, why = run_status(read_json(meta) if meta.exists() else {})
            if not partial:
                if passed_over and notes is not None:
                    notes.append(f"--baseline last: passed over partial run(s) {', '.join(passed_over)}; "
                                 f"took {candidate.name} instead")
                return candidate
            passed_over.append(f"{candidate.name} ({why})")
        raise HarnessError(f"--baseline last: every earlier run in {current.parent} is partial "
                           f"({'; '.join(passed_over[:3])}); give a run folder with --baseline PATH")
    path = Path(spec).expanduser()
    if not path.exists():
        raise HarnessError(f"baseline {path} does not exist")
    chosen = resolve_run(path, exclude=current)
    meta = chosen / "metadata.json"
    partial, why = run_status(read_json(meta) if meta.exists() else {})
    if partial and notes is not None:
        notes.append(f"baseline {chosen.name} is a partial run ({why}): what it lacks is not compared")
    return chosen
