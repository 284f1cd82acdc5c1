"""``python -m harness export VARIANT --out FILE``: a variant as an int8 .tflite, and what is inside it.

``VARIANT`` may also be an existing ``.tflite`` file, which is then only inspected (ops, tensors,
quantization, TFLM arena), e.g. to look at what the firmware build will compile.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="export a variant to a full-int8 .tflite (cached) and describe it",
                            description="Export a variant to a full-int8 .tflite (cached by content hash) and print "
                                        "its size, ops, tensor shapes and input/output quantization.")
    parser.add_argument("variant", metavar="VARIANT", help="variant id (e.g. fp32, qat-sym-4, struct-l1-40-ft) "
                                                           "or an existing .tflite file to inspect")
    parser.add_argument("--out", default=None, help="copy the .tflite here (default: only the cache)")
    parser.add_argument("--dataset", default=None, help="Speech Commands layout folder (default: synthetic paper-size set)")
    parser.add_argument("--softmax", action="store_true", help="append a SOFTMAX op (default: int8 logits)")
    parser.add_argument("--evaluate", action="store_true",
                        help="also report test accuracy under the TFLM reference beside the PyTorch accuracy")
    parser.add_argument("--tensors", action="store_true", help="list every tensor (default: ops and I/O only)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.device import reference
    from harness import tflite_info

    t0 = time.perf_counter()
    source = Path(args.variant)
    inspect_only = source.suffix == ".tflite" and source.is_file()
    if inspect_only:
        path = source
    else:
        from harness.bench import pipeline

        path = pipeline.variant_tflite(args.variant, dataset_dir=args.dataset, out=args.out, softmax=args.softmax)
    info: dict[str, Any] = tflite_info.read(path).summary()
    info["variant"] = None if inspect_only else args.variant
    info["arena_bytes"] = reference.arena_bytes(path)
    if args.evaluate and not inspect_only:
        info.update(_evaluate(args.variant, args.dataset, path))
    info["seconds"] = round(time.perf_counter() - t0, 2)
    if not args.tensors:
        info.pop("tensors")
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print(info)
    return 0


def _evaluate(variant_id: str, dataset_dir: str | None, path: Path) -> dict[str, Any]:
    from harness.device import reference
    from harness.model import variants

    ctx = variants.load_context(dataset_dir)
    v = variants.make(variant_id, context=ctx)
    tflm = reference.accuracy(path, ctx.x_test, ctx.y_test)
    torch_acc = float(v.metrics["test_accuracy"])
    return {"test_samples": int(len(ctx.y_test)), "tflm_test_accuracy": round(tflm, 4),
            "pytorch_test_accuracy": round(torch_acc, 4), "difference_points": round(100 * (tflm - torch_acc), 2)}


def _print(info: dict[str, Any]) -> None:
    def q(t: dict[str, Any]) -> str:
        return f"{t['dtype']} {t['shape']} scale {t['scale']!r} zero point {t['zero_point']}"

    print(f"{info['path']}")
    if info.get("variant"):
        print(f"  variant      {info['variant']}")
    print(f"  size         {info['size_bytes']} bytes ({info['weight_bytes']} bytes of constants)")
    print(f"  ops          {' '.join(info['ops'])}")
    print(f"  input        {q(info['input'])}")
    print(f"  output       {q(info['output'])}")
    print(f"  TFLM arena   {info['arena_bytes']} bytes")
    if "tflm_test_accuracy" in info:
        print(f"  test acc     TFLM {info['tflm_test_accuracy']:.4f}  PyTorch {info['pytorch_test_accuracy']:.4f}  "
              f"({info['difference_points']:+.2f} points, {info['test_samples']} samples)")
    for t in info.get("tensors", []):
        kind = "const" if t["constant"] else "act"
        print(f"  tensor {t['index']:>3} {kind:5} {t['dtype']:6} {str(t['shape']):18} {t['name'][:60]}")
