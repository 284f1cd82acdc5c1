"""``python -m harness device hello|infer|bench|serve [--device DEV] [--variant ID] [--json]``.

``bench --vs-ref`` also runs the ``--backend ref`` build of the same model and prints the speedup.

``serve`` starts an emulated board for a build and prints its ``socket://`` URL (with ``?board=``,
the firmware it runs) until Ctrl-C, so another process can use it
(``pytest suites/ --variants ID --device=socket://127.0.0.1:PORT?board=emu_m4``).

Thin layer over boards.session() and link.Board: what the CLI prints is what the tests measure.
Timings are in the board's timer unit (instructions in QEMU, cycles on the Nano, ns natively).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from harness.errors import HarnessError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("device", help="talk to a board (emulated by default): hello, infer, bench",
                       description="Start/flash the board for a variant's firmware, handshake, and run "
                                   "inferences or an on-device benchmark.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("hello", "handshake: firmware, build hash, model, clock, timer unit"),
                       ("infer", "inferences on test features; checks them against the TFLM reference"),
                       ("bench", "N timed inferences after W warm-ups, timed on the device"),
                       ("serve", "start an emulated board (emu or native) and print its URL until Ctrl-C")):
        a = actions.add_parser(name, help=text, description=text)
        a.add_argument("--device", default="emu", help="emu (default), native, /dev/ttyACM0, socket://HOST:PORT, auto, "
                                                       "labgrid:PLACE (LG_COORDINATOR)")
        a.add_argument("--variant", help="variant id whose firmware runs on the board")
        a.add_argument("--tflite", help="int8 .tflite to build instead of a variant")
        a.add_argument("--backend", default="aot", choices=["aot", "ref", "tflm"],
                       help="aot: fast kernels (default); ref: TFLM-reference-style loops; tflm: real board only")
        a.add_argument("--no-flash", action="store_true", help="real board: do not upload, only check the build hash")
        a.add_argument("--json", action="store_true")
        if name == "infer":
            a.add_argument("--count", type=int, default=64,
                           help="test samples to send (default 64); exit code 1 if any score differs from the reference")
            a.add_argument("--random", action="store_true", help="random features instead of the test split")
        if name == "bench":
            a.add_argument("-n", type=int, default=10, help="timed inferences (default 10)")
            a.add_argument("-w", "--warmup", type=int, default=2, help="warm-up inferences (default 2)")
            a.add_argument("--vs-ref", action="store_true",
                           help="also bench the same model with --backend ref on the same board kind and print "
                                "the speedup ref / this backend")
        a.set_defaults(func=run)


def _build_for(args: argparse.Namespace, env: str):
    from harness.bench import pipeline

    target = args.tflite or args.variant
    if target is None:
        return None
    return pipeline.build(target, env=env, backend=args.backend, model_id=args.variant)


def _inputs(args: argparse.Namespace, build) -> tuple[np.ndarray, np.ndarray | None]:
    if args.random or build is None or build.variant is None:
        rng = np.random.default_rng(0)
        return rng.integers(-128, 128, size=(args.count, 49, 40), dtype=np.int8), None
    from harness.model import variants

    ctx = variants.load_context(None)
    return ctx.x_test[: args.count], ctx.y_test[: args.count]


def _serve(spec, build) -> int:
    from harness.device import emulator

    if spec.kind not in ("emu", "native") or build is None:
        raise HarnessError("device serve: needs --device emu or native and a --variant or --tflite")
    with emulator.start(build) as emu:
        print(f"{emu.url}?board={build.env}  ({spec.kind}, build {build.build_hash}, model {build.model_id}); "
              "Ctrl-C to stop", flush=True)
        while emu.alive():
            time.sleep(0.5)
    return 0


def _bench_ref(args: argparse.Namespace, spec, build, mean: float) -> dict:
    """The same model built with --backend ref, benched the same way: the ratio a user quotes."""
    from harness.device import boards, firmware

    if build is None or build.tflite is None:
        raise HarnessError("device bench --vs-ref: needs a --variant or --tflite")
    if args.backend == "ref":
        raise HarnessError("device bench --vs-ref: the backend is ref already; use --backend aot")
    ref_build = firmware.build(build.tflite, env=spec.env, backend="ref", model_id=build.model_id)
    with boards.session(spec, ref_build, flash=not args.no_flash) as board:
        board.infer_features(np.zeros(board.info.input_size, dtype=np.int8))
        r = board.bench(args.n, args.warmup)
    return {"ref_mean": r.mean, "speedup_vs_ref": r.mean / mean if mean else None}


def run(args: argparse.Namespace) -> int:
    from harness.device import boards

    specs = boards.resolve(args.device)
    spec = specs[0]
    if args.action != "serve" and (args.variant or args.tflite):
        spec = boards.identify(spec)  # socket:// without ?board=: which firmware to build, from HELLO
    build = _build_for(args, spec.env)
    if args.action == "serve":
        return _serve(spec, build)
    out: dict = {"device": spec.name}
    with boards.session(spec, build, flash=not args.no_flash) as board:
        info = board.info
        out["hello"] = vars(info).copy()
        unit = info.timer_unit
        if args.action == "infer":
            if args.count < 1:
                raise HarnessError("device infer: --count must be >= 1")
            x, y = _inputs(args, build)
            t0 = time.perf_counter()
            results = [board.infer_features(xi) for xi in x]
            wall = time.perf_counter() - t0
            scores = np.array([r.scores for r in results], dtype=np.int8)
            out.update(samples=len(x), inferences_per_s=len(x) / wall,
                       network_mean=float(np.mean([r.network for r in results])), timer_unit=unit)
            if build is not None and build.tflite is not None:
                from harness.device import reference

                ref = reference.predict(build.tflite, x)
                out["identical_to_reference"] = int((scores == ref).all(axis=1).sum())
            if y is not None:
                out["accuracy"] = float((scores.argmax(axis=1) == y).mean())
        elif args.action == "bench":
            # BENCH runs on the last features the board saw; give it some first
            board.infer_features(np.zeros(info.input_size, dtype=np.int8))
            r = board.bench(args.n, args.warmup)
            out.update(n=r.n, warmup=r.warmup, total=r.total, min=r.min, max=r.max, mean=r.mean, timer_unit=unit)
            if build is not None and build.generated.get("macs"):
                out["per_mac"] = r.mean / build.generated["macs"]
        out["link"] = dict(board.stats)
    if args.action == "bench" and getattr(args, "vs_ref", False):
        out.update(_bench_ref(args, spec, build, out["mean"]))
    # A board whose scores differ from the reference is a failure, whatever else it printed.
    mismatch = "identical_to_reference" in out and out["identical_to_reference"] < out["samples"]
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 1 if mismatch else 0
    link = out["link"]
    if link["retries"] or link["reconnects"]:
        print(f"link: {link['requests']} requests, {link['retries']} sent again, {link['reconnects']} reconnects",
              file=sys.stderr)
    h = out["hello"]
    print(f"{out['device']}: {h['board']} firmware {h['firmware']} build {h['build_hash']} model {h['model_id']} "
          f"backend {h['backend']}, clock {h['clock_hz']} Hz, timer {h['timer_unit']} ({h['timer_source']})")
    if h.get("compiler"):  # firmware 0.2+: what compiled our sources, how timed regions are kept clean
        print(f"  compiled by {h['compiler']} with {h['cflags']}; timed regions {h['timing']}")
    if args.action == "infer":
        line = f"  {out['samples']} inferences, {out['inferences_per_s']:.1f}/s over the link, network " \
               f"{out['network_mean']:.0f} {unit} per inference"
        if "identical_to_reference" in out:
            line += f", {out['identical_to_reference']}/{out['samples']} identical to the TFLM reference"
        if "accuracy" in out:
            line += f", accuracy {out['accuracy']:.3f}"
        print(line)
    elif args.action == "bench":
        print(f"  bench n={out['n']} w={out['warmup']}: mean {out['mean']:.0f} {unit}, min {out['min']}, "
              f"max {out['max']}" + (f", {out['per_mac']:.2f} {unit}/MAC" if "per_mac" in out else ""))
        if "ref_mean" in out:
            print(f"  backend ref: mean {out['ref_mean']:.0f} {unit}; {h['backend']} is {out['speedup_vs_ref']:.1f}x faster")
    if mismatch:
        print(f"error: {out['samples'] - out['identical_to_reference']}/{out['samples']} inferences differ from the "
              f"TFLM reference", file=sys.stderr)
        return 1
    return 0
