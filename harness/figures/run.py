"""The figures of one results run: the paper's compression plots drawn from the run's own rows."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

from harness.bench.results import Run
from harness.cache import atomic_write_text


_TABLE_COLUMNS = {"accuracy": "test_acc", "params": "parameters", "nonzero_params": "nonzero_parameters",
                  "flops": "flops", "host_latency_cpu": "host_cpu_ms", "flash_estimate": "flash_bytes",
                  "ram_estimate": "ram_bytes"}


def _variants_table(run: Run) -> Path | None:
    """This run's numbers in the variants-table layout, so the figures show what this run measured."""
    latest = run.latest()
    if not any("accuracy" in m for m in latest.values()):
        return None
    cols = ["variant", *_TABLE_COLUMNS.values()]
    lines = [",".join(cols)]
    for v, metrics in latest.items():
        cells = [v] + [repr(metrics[m].value) if m in metrics else "" for m in _TABLE_COLUMNS]
        lines.append(",".join(cells))
    return atomic_write_text(run.path / "variants_table.csv", "\n".join(lines) + "\n")


def draw(run: Run) -> list[Path]:
    """Draw the compression figures (harness.figures.compression) with this run's on-device network times.

    The figures are drawn from this run's own rows (written as variants_table.csv); a run without
    host accuracy falls back to the sweep's table (results/variants/variants.csv).
    """
    from harness.figures import compression as module

    out = run.path / "figures"
    argv = ["--out", str(out)]
    table = _variants_table(run)
    if table is not None:
        argv += ["--table", str(table)]
    device_rows = [(v, m["device_network"].value, m["device_network"].unit)
                   for v, m in run.latest().items() if "device_network" in m]
    if device_rows:
        lines = ["variant,metric,value,unit"] + [f"{v},device_network_time,{val!r},{unit}" for v, val, unit in device_rows]
        csv_path = atomic_write_text(run.path / "device_network_time.csv", "\n".join(lines) + "\n")
        argv += ["--device-results", str(csv_path)]
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints each path; --json output must stay JSON
        module.run(parser.parse_args(argv))
    return sorted(out.glob("*.png")) if out.is_dir() else []
