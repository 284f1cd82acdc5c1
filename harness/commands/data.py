"""``python -m harness data split|synth|crossval|heldout``: inspect a split, write the synthetic data
set, measure accuracy on a text-to-speech engine left out of training or never used by the generator."""

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
    p.add_argument("--by", choices=("split", "engine"), default="split",
                   help="engine: also count each split per text-to-speech engine (synthetic sets)")
    p.add_argument("--holdout-engine", metavar="NAME", default=None,
                   help="cross-engine split: train/validation without engine NAME, test = all of NAME's clips")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_split)

    c = cmds.add_parser(
        "crossval", help="leave-one-engine-out accuracy of the float32 baseline (synthetic sets)",
        description="For each text-to-speech engine of a synthetic set: train the float32 TinyConv on the "
        "other engines (cached like `train`), test on every clip of the engine left out, print its "
        "per-class table, confusion matrix and confuser false accepts, then a summary.")
    c.add_argument("dataset", nargs="?", type=Path, metavar="DIR", help="synthetic data set directory (default: synthetic)")
    c.add_argument("--size", choices=("small", "paper"), default="paper",
                   help="synthetic set size when DIR is omitted (default: paper)")
    c.add_argument("--engine", action="append", metavar="NAME", help="leave out only NAME (repeatable; default: each engine)")
    c.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="also train with the next N-1 training seeds and print each engine's accuracy per seed, "
                   "mean and range: the training draw's share of a difference (default: 1)")
    from harness.commands.train import add_training_options

    add_training_options(c)
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=_crossval)

    h = cmds.add_parser(
        "heldout", help="accuracy of the float32 baseline on an engine the default generator never uses",
        description="Speak a test-only set with one text-to-speech engine that the default synthetic set "
        "does not use (default: gnuspeech, an articulatory synthesizer; 100 speakers x 2 x yes/no, 20 clips "
        "per unknown word, 20 per confuser word; cached), then evaluate the cached float32 baseline of the "
        "default set (or --checkpoint) on it: per-class table, confusion matrix, confuser false accepts.")
    h.add_argument("--engine", default="gnuspeech", metavar="NAME", help="engine of the held-out set (default: gnuspeech)")
    h.add_argument("--size", choices=("small", "paper"), default="paper",
                   help="synthetic training set of the baseline (default: paper)")
    h.add_argument("--checkpoint", type=Path, default=None, help="a TinyConv state_dict (.pt) instead of the baseline")
    h.add_argument("--seed", type=int, default=0, help="generator seed of the held-out set (default: 0)")
    h.add_argument("--json", action="store_true", help="print JSON")
    h.set_defaults(func=_heldout)

    from harness.data.synth import DEFAULT_ENGINES, ENGINES, SIZES

    s = cmds.add_parser(
        "synth", help="write the synthetic speech-commands set (espeak-ng, flite, festival)",
        description="Write a synthetic data set in the Speech Commands layout, offline, with espeak-ng, "
        "flite and festival (or --engines): yes/no, the 33 other words as unknown, _confusers_/ sound-alikes, "
        "_background_noise_/. small: a few hundred clips; paper: about the paper's split size; heldout: "
        "a test-only set (testing_list.txt names every clip).")
    s.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory (new or empty)")
    s.add_argument("--size", choices=SIZES, default="small", help="data set size (default: small)")
    s.add_argument("--engines", default=",".join(DEFAULT_ENGINES), metavar="LIST",
                   help=f"comma-separated text-to-speech engines, of {', '.join(ENGINES)} "
                   f"(default: {','.join(DEFAULT_ENGINES)})")
    s.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    s.add_argument("--processes", type=int, default=2, help="worker processes (default: 2)")
    s.add_argument("--hard-negatives", action="store_true",
                   help="also speak 20 sound-alikes of yes/no (yesterday, mess, snow, notice, ...; never a "
                   "confuser word) as extra unknown words (default: the 33 Speech Commands words only)")
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


def _print_engine_counts(per: dict, as_json: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from harness.data.dataset import CLASSES

    table = Table(title="clips per split and engine")
    for col in ("split", "engine"):
        table.add_column(col)
    for c in (*CLASSES, "total"):
        table.add_column(c, justify="right")
    for split, engines in per.items():
        for engine, row in engines.items():
            table.add_row(split, engine, *(str(row[c]) for c in (*CLASSES, "total")))
    Console().print(table)


def _split(args: argparse.Namespace) -> int:
    from harness.data.dataset import TF_RANDOM_SEED, load_splits

    root = args.dataset
    if root is None:
        from harness.data.synth import default_dataset

        root = default_dataset(args.size, progress=not args.json)
    from harness.data.clips import count_splits

    splits = load_splits(root, seed=TF_RANDOM_SEED if args.seed is None else args.seed,
                         holdout_engine=args.holdout_engine)
    counts = splits.counts()
    if args.by == "engine":
        from harness.model.crossval import engine_counts

        per = engine_counts(splits)
        if args.json:
            print(json.dumps({"dataset": str(splits.root), "holdout_engine": args.holdout_engine, **counts,
                              "by_engine": per}, indent=2))
            return 0
        _print_counts(counts, splits.root, False)
        _print_engine_counts(per, False)
        return 0
    clips = count_splits(splits)
    _print_counts({**counts, "clips_on_load": clips.as_dict()}, splits.root, args.json)
    if not args.json:
        print(clips.summary())
    return 0


def _crossval(args: argparse.Namespace) -> int:
    from harness.commands.train import augment_from_args, set_threads
    from harness.model import crossval

    set_threads(args)
    root = args.dataset
    if root is None:
        from harness.data.synth import default_dataset

        root = default_dataset(args.size, progress=not args.json)
    result = crossval.crossval(root, epochs=args.epochs, lr=args.lr, seed=args.seed, augment=augment_from_args(args),
                               engines=args.engine, progress=not args.json, seeds=args.seeds)
    if args.json:
        print(json.dumps({"dataset": str(root), **crossval.to_dict(result)}, indent=2, default=str))
    else:
        print(f"data set: {root}")
        crossval.print_result(result)
    return 0


def _synth(args: argparse.Namespace) -> int:
    import time

    from harness.data.dataset import load_splits
    from harness.data.synth import generate

    t0 = time.perf_counter()
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    out = generate(args.out, size=args.size, seed=args.seed, processes=args.processes, progress=not args.json,
                   hard_negatives=args.hard_negatives, engines=engines)
    elapsed = time.perf_counter() - t0
    splits = load_splits(out)
    if args.json:
        print(json.dumps({"dataset": str(out), "seconds": round(elapsed, 2), **splits.counts()}, indent=2))
    else:
        print(f"wrote {out} in {elapsed:.1f} s")
        _print_counts(splits.counts(), splits.root, False)
    return 0


def _heldout(args: argparse.Namespace) -> int:
    from harness.data import dataset, features, synth
    from harness.errors import HarnessError
    from harness.model.evaluate import evaluate, false_accept_rate, print_report, report_to_dict

    if args.engine in synth.DEFAULT_ENGINES:
        raise HarnessError(f"data heldout: {args.engine} speaks the default set; choose an engine it does not use "
                           f"({', '.join(e for e in synth.ENGINES if e not in synth.DEFAULT_ENGINES)})")
    if args.checkpoint is not None:
        from harness.model.train import load_checkpoint

        model = load_checkpoint(args.checkpoint)
        trained_on = str(args.checkpoint)
    else:
        from harness.model.train import baseline

        model, info = baseline(size=args.size, progress=not args.json)
        trained_on = f"float32 baseline of {synth.default_dataset(args.size, progress=False)}"
    root = synth.default_dataset("heldout", seed=args.seed, progress=not args.json, engines=(args.engine,))
    splits = dataset.load_splits(root)
    x, y = features.split_features(splits, "test", progress=not args.json)
    report = {"test": evaluate(model, x, y), "confusers": None}
    if splits.confusers:
        xc, _ = features.split_features(splits, "confusers", progress=not args.json)
        report["confusers"] = false_accept_rate(model, xc, words=[s.word for s in splits.confusers])
    if args.json:
        print(json.dumps({"dataset": str(root), "engine": args.engine, "model": trained_on,
                          **report_to_dict(report)}, indent=2, default=str))
    else:
        print(f"held-out engine {args.engine}: {root}\nmodel: {trained_on}")
        print_report(report)
    return 0
