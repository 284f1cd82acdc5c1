"""``python -m harness variants list|make|sweep``: the compression variants (harness/model/variants.py)."""

from __future__ import annotations

import argparse
import json
import time


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("variants", help="compression variants: list, make one, sweep all")
    cmds = parser.add_subparsers(dest="variants_command", metavar="ACTION", required=True)

    p = cmds.add_parser("list", help="list the variant ids (fp32, ptq-*, qat-*, struct-*, unstruct-*)")
    p.add_argument("--json", action="store_true", help="print JSON (id, kind, bits, recipe)")
    p.set_defaults(func=_list)

    p = cmds.add_parser("make", help="make one variant (cached) and print its metrics")
    p.add_argument("id", help="variant id, e.g. qat-asym-4 or struct-l1-40-ft")
    p.add_argument("--dataset", default=None, help="Speech Commands layout folder (default: synthetic paper-size set)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=_make)

    p = cmds.add_parser("sweep", help="make every variant (cached) and write one table (CSV + Markdown)")
    p.add_argument("--dataset", default=None, help="Speech Commands layout folder (default: synthetic paper-size set)")
    p.add_argument("--only", default=None, help="glob(s) of ids, comma separated, e.g. 'qat-*,fp32'")
    p.add_argument("--out", default=None, help="output folder (default: results/variants/)")
    p.add_argument("--no-tflite", action="store_true", help="skip the exported .tflite accuracy (TFLM reference)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    p.set_defaults(func=_sweep)


def _list(args) -> int:
    from harness.model import variants

    ids = variants.all_ids()
    if args.json:
        out = []
        for vid in ids:
            spec = variants.parse(vid)
            out.append({"id": vid, "kind": spec.kind, "bits": spec.bits, "recipe": variants.recipe(spec)})
        print(json.dumps(out, indent=2))
    else:
        print("\n".join(ids))
    return 0


def _make(args) -> int:
    from harness.model import variants

    t0 = time.perf_counter()
    v = variants.make(args.id, dataset_dir=args.dataset, progress=not args.json)
    if args.json:
        print(json.dumps({"id": v.id, "info": v.info, "metrics": v.metrics}, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    row = variants.table_row(v)
    table = Table(title=f"variant {v.id} ({'built' if v.info['built'] else 'cached'}, {time.perf_counter() - t0:.1f} s)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, val in row.items():
        if val != "":  # e.g. tflite_test_acc, which only the sweep computes
            table.add_row(k, str(val))
    Console().print(table)
    return 0


SHOWN = ["variant", "bits", "channels", "val_acc", "test_acc", "tflite_test_acc", "nonzero_parameters",
         "flops", "flash_bytes", "ram_bytes", "host_cpu_ms", "built"]


def _sweep(args) -> int:
    from harness.bench import pipeline
    from harness.model import variants

    ids = variants.select(args.only)
    t0 = time.perf_counter()
    rows = variants.sweep(ids, dataset_dir=args.dataset, progress=not args.json,
                          extra_metrics=None if args.no_tflite else pipeline.tflite_metrics)
    seconds = time.perf_counter() - t0
    csv_path, md_path = variants.write_table(rows, args.out)
    if args.json:
        print(json.dumps({"rows": rows, "csv": str(csv_path), "markdown": str(md_path), "seconds": seconds}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} variants in {seconds:.1f} s ({sum(bool(r['built']) for r in rows)} built)")
    for c in SHOWN:
        table.add_column(c, justify="left" if c == "variant" else "right")
    for r in rows:
        table.add_row(*[str(r.get(c, "")) for c in SHOWN])
    console = Console()
    if not console.is_terminal:  # piped or logged: do not squeeze the table into 80 columns
        console = Console(width=160)
    console.print(table)
    console.print(f"wrote {csv_path} and {md_path}")
    return 0
