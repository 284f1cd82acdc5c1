"""``python -m harness data split|synth``: inspect a split, write the synthetic data set."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="data sets: split counts, synthetic generation",
                            description="Data sets: split counts (TF hash rule) and the offline synthetic set.")
    cmds = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = cmds.add_parser(
        "split", help="counts per split and class of a Speech Commands directory",
        description="Split a Speech Commands v0.02-layout directory as TF's speech_commands does "
        "(hash rule or validation_list/testing_list; silence and unknown 33% of keywords, ceil) "
        "and print the counts per split and class. Without DIR: the synthetic paper-size set.")
    p.add_argument("dataset", nargs="?", type=Path, metavar="DIR", help="data set directory (default: synthetic)")
    p.add_argument("--size", choices=("small", "paper"), default="paper",
                   help="synthetic set size when DIR is omitted (default: paper)")
    p.add_argument("--seed", type=int, default=None, help="split seed (default: TF's 59185)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_split)

    s = cmds.add_parser(
        "synth", help="write the synthetic speech-commands set (espeak-ng + flite)",
        description="Write a synthetic data set in the Speech Commands layout, offline, with espeak-ng "
        "and flite: yes/no, the 33 other words as unknown, _confusers_/ sound-alikes, "
        "_background_noise_/. small: a few hundred clips; paper: about the paper's split size.")
    s.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory (new or empty)")
    s.add_argument("--size", choices=("small", "paper"), default="small", help="data set size (default: small)")
    s.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    s.add_argument("--processes", type=int, default=2, help="worker processes (default: 2)")
    s.add_argument("--json", action="store_true", help="print the resulting split counts as JSON")
    s.set_defaults(func=_synth)


def _print_counts(counts: dict, root: Path, as_json: bool) -> None:
    from harness.data.dataset import CLASSES

    if as_json:
        print(json.dumps({"dataset": str(root), **counts}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    print(f"data set: {root}")
    table = Table()
    table.add_column("split")
    for c in (*CLASSES, "total"):
        table.add_column(c, justify="right")
    for name in ("train", "validation", "test"):
        table.add_row(name, *(str(counts[name][c]) for c in (*CLASSES, "total")))
    Console().print(table)
    print(f"confusers: {counts['confusers']['total']}")


def _split(args: argparse.Namespace) -> int:
    from harness.data.dataset import TF_RANDOM_SEED, load_splits

    root = args.dataset
    if root is None:
        from harness.data.synth import default_dataset

        root = default_dataset(args.size, progress=not args.json)
    from harness.data.clips import count_splits

    splits = load_splits(root, seed=TF_RANDOM_SEED if args.seed is None else args.seed)
    clips = count_splits(splits)
    _print_counts({**splits.counts(), "clips_on_load": clips.as_dict()}, splits.root, args.json)
    if not args.json:
        print(clips.summary())
    return 0


def _synth(args: argparse.Namespace) -> int:
    import time

    from harness.data.dataset import load_splits
    from harness.data.synth import generate

    t0 = time.perf_counter()
    out = generate(args.out, size=args.size, seed=args.seed, processes=args.processes, progress=not args.json)
    elapsed = time.perf_counter() - t0
    splits = load_splits(out)
    if args.json:
        print(json.dumps({"dataset": str(out), "seconds": round(elapsed, 2), **splits.counts()}, indent=2))
    else:
        print(f"wrote {out} in {elapsed:.1f} s")
        _print_counts(splits.counts(), splits.root, False)
    return 0
