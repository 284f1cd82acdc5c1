"""The paper's compression figures (8-13) from the variants table, as PNG files.

Drawn from ``results/variants/variants.csv`` (what ``python -m harness variants sweep`` writes), so
plotting never trains anything; a missing table is an error that says which command makes it.

- fig08_quant_sym.png / fig09_quant_asym.png: test accuracy vs bit width, QAT vs PTQ (fp32 line).
- fig10_struct_params.png, fig11_struct_flops.png, fig12_struct_cpu.png: structured pruning,
  fine-tuned vs not, accuracy vs non-zero parameters / FLOPs / host CPU latency.
- fig13_unstruct_params.png: unstructured pruning, accuracy vs non-zero parameters.
- fig12b_struct_mcu.png: accuracy vs on-device network time, when ``--device-results CSV`` (columns
  variant, metric, value and optionally unit; metric ``device_network_time``) is given.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

HELP = "compression figures (paper Figs. 8-13): quantization bits, structured/unstructured pruning"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", default=None, help="variants CSV (default: results/variants/variants.csv)")
    parser.add_argument("--out", default=None, help="output folder (default: results/figures/)")
    parser.add_argument("--device-results", default=None,
                        help="CSV with columns variant,metric,value (metric device_network_time) for the MCU figure")


def _rows_by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(r["variant"]): r for r in rows}


def _device_times(path: Path) -> tuple[dict[str, float], str]:
    """(variant -> network time, unit) from a device results CSV (an optional ``unit`` column names
    the board's timer unit: instructions, cycles, ns)."""
    if not path.is_file():
        raise HarnessError(f"device results {path} not found")
    out: dict[str, float] = {}
    units: set[str] = set()
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"variant", "metric", "value"} - set(reader.fieldnames or [])
        if missing:
            raise HarnessError(f"device results {path}: missing column(s) {', '.join(sorted(missing))}")
        for r in reader:
            if r["metric"] == "device_network_time":
                try:
                    out[r["variant"]] = float(r["value"])
                except ValueError:
                    raise HarnessError(f"device results {path}: value {r['value']!r} of {r['variant']} is not a number") from None
                if r.get("unit"):
                    units.add(r["unit"])
    if len(units) > 1:
        raise HarnessError(f"device results {path}: times in several units ({', '.join(sorted(units))}) cannot share an axis")
    return out, (units.pop() if units else "timer units")


def si_count(value: float, _pos: object = None) -> str:
    """Tick label of a count: 350000 -> '350k', 1200000 -> '1.2M' (never '350000400000')."""
    v = abs(value)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{value / div:.4g}{suffix}"
    return f"{value:.4g}"


def draw(rows: list[dict[str, Any]], out_dir: Path, device: dict[str, float] | None = None,
         device_unit: str = "timer units") -> list[Path]:
    """Draw every figure the rows allow; returns the PNG paths written. Every axis names its unit;
    counts tick as k/M, accuracy as percent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

    from harness.model import prune, quant

    by = _rows_by_id(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = by.get("fp32", {}).get("test_acc")
    written: list[Path] = []

    def finish(fig, ax, name: str, title: str, xlabel: str, counts: bool = False) -> None:
        if fp32 not in (None, ""):
            ax.axhline(float(fp32), color="grey", ls=":", label="float32")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        if counts:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
            ax.xaxis.set_major_formatter(FuncFormatter(si_count))
        ax.set_ylabel("test accuracy (%)")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)

    for fig_no, scheme in ((8, "sym"), (9, "asym")):
        series = {m: [(b, by[f"{m}-{scheme}-{b}"]["test_acc"]) for b in quant.BITS if f"{m}-{scheme}-{b}" in by]
                  for m in ("qat", "ptq")}
        if not any(series.values()):
            continue
        fig, ax = plt.subplots(figsize=(5, 3.6))
        for m, pts in series.items():
            if pts:
                ax.plot(*zip(*pts), marker="o", label=m.upper())
        ax.set_xticks(list(quant.BITS))
        name = "symmetric" if scheme == "sym" else "asymmetric"
        finish(fig, ax, f"fig{fig_no:02d}_quant_{scheme}.png", f"{name} quantization: accuracy vs bits",
               "weight bits (activations int8)")

    def pruning_figure(kind: str, xkey: str, name: str, title: str, xlabel: str, xs: dict[str, float] | None = None,
                       counts: bool = True) -> None:
        fig, ax = plt.subplots(figsize=(5, 3.6))
        drawn = False
        for ft, label in (("ft", "fine-tuned"), ("noft", "not fine-tuned")):
            pts = []
            for p in prune.THRESHOLDS:
                r = by.get(f"{kind}-l1-{p}-{ft}")
                x = (xs or {}).get(f"{kind}-l1-{p}-{ft}") if xs is not None else (r or {}).get(xkey)
                if r and x not in (None, ""):
                    pts.append((float(x), float(r["test_acc"]), p))
            if pts:
                drawn = True
                line = ax.plot([q[0] for q in pts], [q[1] for q in pts], marker="o", label=label)[0]
                for x, y, p in pts:
                    ax.annotate(f"{p}%", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7, color=line.get_color())
        if drawn:
            finish(fig, ax, name, title, xlabel, counts=counts)
        else:
            plt.close(fig)

    pruning_figure("struct", "nonzero_parameters", "fig10_struct_params.png", "structured pruning: accuracy vs parameters",
                   "parameters (count)")
    pruning_figure("struct", "flops", "fig11_struct_flops.png", "structured pruning: accuracy vs FLOPs",
                   "FLOPs per inference (count)")
    # Minimum over the timed batch-1 runs when the table has it: on a shared host the median mostly
    # measures the other processes.
    cpu = "host_cpu_min_ms" if any(r.get("host_cpu_min_ms") not in (None, "") for r in rows) else "host_cpu_ms"
    pruning_figure("struct", cpu, "fig12_struct_cpu.png", "structured pruning: accuracy vs host CPU time",
                   f"host CPU latency (ms, batch 1, 1 thread, {'min' if cpu == 'host_cpu_min_ms' else 'median'})",
                   counts=False)
    if device:
        pruning_figure("struct", "", "fig12b_struct_mcu.png", "structured pruning: accuracy vs MCU network time",
                       f"device network time ({device_unit} per inference)", xs=device)
    pruning_figure("unstruct", "nonzero_parameters", "fig13_unstruct_params.png",
                   "unstructured pruning: accuracy vs non-zero parameters", "non-zero parameters (count)")
    return written


def run(args: argparse.Namespace) -> int:
    from harness.paths import results_dir
    from harness.model.variants import read_table

    table = Path(args.table) if args.table else results_dir() / "variants" / "variants.csv"
    rows = read_table(table)
    device, unit = _device_times(Path(args.device_results)) if args.device_results else (None, "timer units")
    out = Path(args.out) if args.out else results_dir() / "figures"
    written = draw(rows, out, device, unit)
    if not written:
        raise HarnessError(f"variants table {table} has no quantization or pruning rows to plot")
    for p in written:
        print(p)
    return 0
