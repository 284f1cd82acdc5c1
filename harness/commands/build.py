"""``python -m harness build VARIANT --env ENV [--backend aot|ref|tflm] [--json]``: one firmware build."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build the firmware for a variant (PlatformIO, cached by content hash)",
                       description="Build the firmware for a variant id or an int8 .tflite file; prints the ELF "
                                   "path and its sizes (text/rodata/data/bss, the model's bytes, PlatformIO's "
                                   "RAM/Flash against the board's 1 MB / 256 KB).")
    p.add_argument("variant", help="variant id (e.g. ptq-sym-8) or path to an int8 .tflite")
    p.add_argument("--env", default="emu_m4", choices=["emu_m4", "native", "nano33ble"])
    p.add_argument("--backend", default="aot", choices=["aot", "ref", "tflm"],
                   help="aot: the project's compiled runtime; ref: TFLM-reference-style kernels from the same "
                        "generator; tflm: TensorFlow Lite Micro (nano33ble only)")
    p.add_argument("--model-id", help="model id reported by HELLO (default: the variant id or file stem)")
    p.add_argument("--force", action="store_true", help="rebuild even if a cached build exists")
    p.add_argument("--json", action="store_true", help="print the build as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.bench import pipeline

    built = pipeline.build(args.variant, env=args.env, backend=args.backend, model_id=args.model_id, force=args.force)
    if args.json:
        print(json.dumps(built.to_dict(), indent=2))
        return 0
    s = built.sizes
    print(f"{built.model_id} [{built.env}, {built.backend}] build {built.build_hash}"
          f"{' (cached)' if built.cached else f' ({built.build_seconds:.1f} s)'}")
    print(f"  elf      {built.elf}")
    print(f"  flash    {s.flash:>8} B  (text {s.text}, rodata {s.rodata}, data {s.data})")
    print(f"  RAM      {s.ram:>8} B  (data {s.data}, bss {s.bss}; stack {s.stack} reserved)")
    print(f"  model    {s.model_flash:>8} B flash (code {s.model_text}, weights {s.model_rodata}), {s.model_ram} B RAM")
    print(f"  frontend {s.frontend_text + s.frontend_rodata:>8} B flash, {s.frontend_ram} B RAM")
    for name, usage in (("Flash", built.pio_flash), ("RAM", built.pio_ram)):
        if usage:
            print(f"  PlatformIO {name}: {usage[0]} of {usage[1]} bytes ({100 * usage[0] / usage[1]:.1f} %)")
    return 0
