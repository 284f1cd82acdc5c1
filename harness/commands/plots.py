"""``python -m harness plots KIND``: draw the paper's figures as PNG files.

Each kind lives in ``harness/figures/<kind>.py`` exposing ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib

KINDS = ["preprocessing", "training", "compression"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("plots", help="draw the paper's figures (PNG)")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind in KINDS:
        try:
            module = importlib.import_module(f"harness.figures.{kind}")
        except ModuleNotFoundError as exc:
            if exc.name == f"harness.figures.{kind}":
                continue
            raise
        p = kinds.add_parser(kind, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
