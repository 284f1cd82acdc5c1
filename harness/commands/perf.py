"""``python -m harness perf [--variants IDS] [--json]``: what compression buys on the (emulated) M4.

For each variant: network instructions per MAC, estimated Cortex-M4 cycles and ms at the Nano's
64 MHz (harness/device/cycles.py, from QEMU's execution log), the model's constant data, flash and RAM
from the ELF, the speed-up of the ``aot`` runtime over the ``ref`` backend (TFLM-reference-style
kernels) on the same board and inputs, and the front end's instructions and cycles per 1 s clip
with its per-stage split. A benchmark that prints numbers; performance targets are read off this
table, never asserted by timed tests.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError

DEFAULT_VARIANTS = ("fp32", "qat-sym-4", "qat-sym-2", "unstruct-l1-70-ft")
NO_REF = "n/a (no ref backend)"
# front-end stage functions (firmware/lib/kws_frontend, kept out of line for this split)
FRONTEND_STAGES = {
    "apply_window": "window", "window_and_fft": "window", "fft_energy": "fft", "kws_fft_energy": "fft", "kws_fft_real": "fft",
    "bfly4": "fft", "work": "fft", "filterbank_energy": "fft", "filterbank_accumulate": "filterbank",
    "filterbank_sqrt": "filterbank", "noise_reduction": "noise reduction", "pcan_gain_control": "pcan",
    "log_scale": "log",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("perf", help="benchmark table: instructions/MAC, est. cycles and ms @64 MHz, sizes, aot/ref",
                       description="Build each variant for the emulated Cortex-M4, run one traced inference and one "
                                   "1 s clip through the front end, and print instructions per MAC, estimated "
                                   "cycles and ms at 64 MHz, model_rodata, flash, RAM, the aot vs ref ratio and the "
                                   "front end's cost.")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"comma-separated variant ids or globs (default {','.join(DEFAULT_VARIANTS)})")
    p.add_argument("--tflite", action="append", default=[], metavar="FILE",
                   help="an int8 .tflite to measure instead of variants (repeatable; row label = file stem)")
    p.add_argument("--dataset", help="data set folder for the audio clip (default: the synthetic set)")
    p.add_argument("--no-ref", action="store_true", help="skip the ref backend build")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _clip(dataset_dir: str | None) -> tuple[np.ndarray, str]:
    """The first "yes" clip of the test split (the suites' INFER_AUDIO clips start the same way)."""
    from harness.data import audio, dataset

    splits = dataset.load_splits(dataset_dir)
    for s in splits.test:
        if s.path is not None and s.label == "yes":
            return audio.fit_clip(audio.read_wav(s.path)), str(s.path.name)
    raise HarnessError(f"perf: no 'yes' clip with audio in the test split of {dataset_dir or 'the synthetic set'}")


def frontend_split(by_symbol: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Per-function counts of the front-end window -> per stage (other = glue, quantization)."""
    out: dict[str, dict[str, int]] = {}
    for sym, v in by_symbol.items():
        stage = FRONTEND_STAGES.get(sym, "other")
        d = out.setdefault(stage, {"instructions": 0, "cycles": 0})
        d["instructions"] += v["instructions"]
        d["cycles"] += v["cycles"]
    return out


def _ref_network(target: Any, model_id: str, features: np.ndarray) -> dict[str, Any] | str:
    """The ref backend's traced network window, or why there is none."""
    from harness.bench import pipeline
    from harness.device import cycles

    try:
        built = pipeline.build(target, env="emu_m4", backend="ref", model_id=model_id)
    except HarnessError as exc:
        if "unknown backend" in str(exc):  # this checkout has no ref backend yet
            return NO_REF
        raise
    return cycles.trace_firmware(built, features)["network"]


def measure(target: Any, clip: np.ndarray, features: np.ndarray, with_ref: bool = True,
            model_id: str | None = None) -> dict[str, Any]:
    """One row of the table for a variant id or a .tflite (plain numbers; formatting is the caller's)."""
    from harness.bench import pipeline
    from harness.device import cycles

    variant = model_id or str(target)
    built = pipeline.build(target, env="emu_m4", backend="aot", model_id=variant)
    est = cycles.trace_firmware(built, features, clip)
    net, pre = est["network"], est["preprocessing"]
    macs = int((built.generated or {}).get("macs") or 0)
    sizes = built.sizes
    row: dict[str, Any] = {
        "variant": variant, "build_hash": built.build_hash, "macs": macs,
        "network_instructions": net["board_instructions"],
        "instructions_per_mac": net["board_instructions"] / macs if macs else None,
        "network_cycles_est": net["cycles_est"], "network_cycles_low": net["cycles_low"],
        "network_cycles_high": net["cycles_high"], "network_ms_est": net["ms_est"],
        "cycles_per_mac_est": net["cycles_est"] / macs if macs else None,
        "model_rodata": sizes.model_rodata, "flash": sizes.flash, "ram": sizes.ram,
        "frontend_instructions": pre["board_instructions"], "frontend_cycles_est": pre["cycles_est"],
        "frontend_ms_est": pre["ms_est"], "frontend_stages": frontend_split(pre["by_symbol"]),
        "network_by_class": net["by_class"], "network_by_symbol": net["by_symbol"],
    }
    ref = _ref_network(target, variant, features) if with_ref else "skipped (--no-ref)"
    if isinstance(ref, str):
        row["ref_network_cycles_est"] = None
        row["aot_vs_ref"] = ref
    else:
        row["ref_network_instructions"] = ref["board_instructions"]
        row["ref_network_cycles_est"] = ref["cycles_est"]
        row["aot_vs_ref"] = round(ref["cycles_est"] / net["cycles_est"], 2)
    return row


def _fmt_int(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def _kib(v: int) -> str:
    return f"{v / 1024:.1f} KiB"


def table_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    headers = ["variant", "net instr", "instr/MAC", "net cycles (est)", "net ms @64MHz", "model_rodata", "flash",
               "RAM", "aot vs ref", "front end instr", "front end ms @64MHz"]
    out = []
    for r in rows:
        ratio = r["aot_vs_ref"]
        out.append([
            r["variant"], _fmt_int(r["network_instructions"]),
            f"{r['instructions_per_mac']:.2f}" if r["instructions_per_mac"] else "-",
            _fmt_int(r["network_cycles_est"]), f"{r['network_ms_est']:.2f}", _kib(r["model_rodata"]),
            _kib(r["flash"]), _kib(r["ram"]), f"{ratio:.2f}x" if isinstance(ratio, float) else str(ratio),
            _fmt_int(r["frontend_instructions"]), f"{r['frontend_ms_est']:.2f}",
        ])
    return headers, out


def run(args: argparse.Namespace) -> int:
    from harness.device import frontend_native
    from harness.model import variants

    targets: list[tuple[Any, str]] = []
    for f in args.tflite:
        path = Path(f).expanduser()
        if path.suffix != ".tflite" or not path.is_file():
            raise HarnessError(f"perf: --tflite {f}: no such .tflite file")
        targets.append((path.resolve(), path.stem))
    if not targets:
        if not args.variants.strip():
            raise HarnessError("perf: --variants names no variant")
        # a typo fails here, naming the id, before any build
        targets = [(i, i) for i in variants.select(args.variants)]
    clip, clip_name = _clip(args.dataset)
    features = frontend_native.features_c(clip)
    rows = [measure(t, clip, features, with_ref=not args.no_ref, model_id=label) for t, label in targets]
    if args.json:
        print(json.dumps({"clip": clip_name, "clock_hz": 64_000_000, "rows": rows}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    headers, body = table_rows(rows)
    table = Table(title=f"emulated Cortex-M4 (QEMU mps2-an386); cycles estimated from the executed instructions "
                        f"(harness/device/cycles.py); clip {clip_name}", title_justify="left")
    for h in headers:
        table.add_column(h, justify="left" if h == "variant" else "right", no_wrap=True)
    for line in body:
        table.add_row(*line)
    console = Console() if sys.stdout.isatty() else Console(width=240)  # piped: keep the rows whole
    console.print(table)
    stages = rows[0]["frontend_stages"]
    total = sum(v["instructions"] for v in stages.values()) or 1
    console.print("front end per stage (" + rows[0]["variant"] + " build, instructions / est. cycles): " + ", ".join(
        f"{k} {v['instructions']:,} / {v['cycles']:,} ({100 * v['instructions'] / total:.0f} %)"
        for k, v in sorted(stages.items(), key=lambda kv: -kv[1]["instructions"])))
    return 0
