"""``python -m harness``: a thin argparse layer over the library.

Each area owns one module in ``harness/commands/`` exposing ``register(subparsers)``, which adds
its subcommand(s) with ``--help`` text and sets ``func`` (taking the parsed args, returning an exit
code). Commands that report numbers accept ``--json``. A HarnessError becomes ``error: <message>``
on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from harness.errors import HarnessError

# One module per area; a missing module (area not built yet) is skipped silently.
COMMAND_MODULES = [
    "harness.commands.data",  # data split / data synth
    "harness.commands.train",  # train, evaluate
    "harness.commands.stats",  # stats
    "harness.commands.plots",  # plots preprocessing | training | compression (harness/figures/*.py)
    "harness.commands.variants",  # variants list / sweep
    "harness.commands.export",  # export
    "harness.commands.build",  # build
    "harness.commands.device",  # device hello / infer / bench, emu
    "harness.commands.report",  # report, compare
    "harness.commands.history",  # history, export-metrics
    "harness.commands.perf",  # perf (benchmark table: instructions/MAC, est. cycles, sizes, aot/ref)
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="Hardware-in-the-loop benchmark harness for tiny keyword-spotting networks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
