"""``python -m harness stats``: parameters, FLOPs, flash/RAM estimates and host latency of TinyConv.

Counts come from ``harness.model.stats`` (forward hooks, the paper's rules); ``--checkpoint`` reads
trained (e.g. pruned) weights so non-zero counts are real, ``--channels`` sizes a structurally
pruned TinyConv.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="parameters, FLOPs, flash/RAM estimates and host batch-1 latency",
                       description="Model statistics by the paper's rules (2 FLOPs per MAC, +1 per bias for linear).")
    p.add_argument("--channels", type=int, default=8, help="conv channels (8 = TinyConv; fewer = structurally pruned)")
    p.add_argument("--bits", type=int, default=32, help="bits per stored weight for the flash estimate (default 32)")
    p.add_argument("--checkpoint", type=Path, help="TinyConv state_dict to load (non-zero counts of pruned weights)")
    p.add_argument("--no-latency", action="store_true", help="skip the host latency measurement")
    p.add_argument("--repeats", type=int, default=200, help="timed batch-1 inferences per device (default 200)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads while timing (default: torch's)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from models.tinyconv import TinyConv

    from harness.errors import HarnessError
    from harness.model.stats import host_latencies, model_stats

    if args.channels < 1:
        raise HarnessError(f"--channels must be >= 1, got {args.channels}")
    if args.checkpoint:
        from harness.model.train import load_checkpoint

        model = load_checkpoint(args.checkpoint)
    else:
        model = TinyConv(channels=args.channels).eval()
    stats = model_stats(model, bits=args.bits)
    if not args.no_latency:
        stats["host_latency"] = host_latencies(model, repeats=args.repeats, threads=args.threads)
    if args.json:
        json.dump(stats, sys.stdout, indent=2)
        print()
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"TinyConv ({model.channels} channels, {args.bits}-bit weights)", show_header=False)
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("parameters", f"{stats['parameters']:,}")
    t.add_row("non-zero parameters", f"{stats['nonzero_parameters']:,}")
    for kind, flops in stats["flops_by_type"].items():
        t.add_row(f"FLOPs {kind}", f"{flops:,}")
    t.add_row("FLOPs total", f"{stats['flops']:,}")
    t.add_row("FLOPs non-zero", f"{stats['nonzero_flops']:,}")
    t.add_row("flash estimate", f"{stats['flash_bytes']:,} B ({stats['flash_mb']:.3f} MB)")
    t.add_row("RAM estimate (sum in+out per layer)", f"{stats['ram_bytes']:,} B")
    t.add_row("RAM peak layer (in+out)", f"{stats['ram_peak_bytes']:,} B")
    for dev, lat in stats.get("host_latency", {}).items():
        t.add_row(f"host latency {dev} ({lat['device_name']}) median", f"{lat['median_ms']:.3f} ms")
    Console().print(t)
    return 0
