"""``python -m harness train`` and ``python -m harness evaluate``: the float32 baseline and its tables.

Thin layer over ``harness.model.train.baseline`` and ``harness.model.evaluate``: what the CLI prints is what the
library computes (per-class tables for validation and test, confusion matrices, confuser false
accepts).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path



def _learning_rate(text: str) -> float:
    """A finite learning rate > 0 (argparse type: ``--lr nan`` or ``--lr -1`` is one usage line)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0 (e.g. 1e-3), got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_training_options(p: argparse.ArgumentParser) -> None:
    """Options of the training recipe (shared by train, evaluate and data crossval)."""
    p.add_argument("--epochs", type=_positive_int, default=50, help="training epochs (default 50)")
    p.add_argument("--lr", type=_learning_rate, default=1e-3, help="Adam learning rate, > 0 (default 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--threads", type=_positive_int, default=1,
                   help="torch CPU threads for evaluation (default 1); training always runs on one, so "
                        "the cached weights do not depend on it (2 threads trained other weights, and about "
                        "4x slower on a busy 2-core machine)")
    g = p.add_argument_group("training-time augmentation (default: none beyond TF's time shift and "
                             "background mixing, the paper's recipe)")
    g.add_argument("--spec-augment", action="store_true",
                   help="SpecAugment-style masks: 2 time masks of <= 8 frames, 2 frequency masks of <= 6 channels")
    g.add_argument("--time-masks", type=int, default=None, metavar="N", help="time masks per example")
    g.add_argument("--time-mask-frames", type=int, default=None, metavar="F", help="widest time mask (frames)")
    g.add_argument("--freq-masks", type=int, default=None, metavar="N", help="frequency masks per example")
    g.add_argument("--freq-mask-channels", type=int, default=None, metavar="C", help="widest frequency mask (channels)")
    g.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA", help="mixup with Beta(ALPHA, ALPHA) weights (0: off)")


def augment_from_args(args: argparse.Namespace):
    """The ``train.Augment`` the options ask for, or None for the paper's recipe."""
    from harness.model.train import SPEC_AUGMENT, Augment

    base = SPEC_AUGMENT if args.spec_augment else Augment()
    aug = Augment(
        time_masks=base.time_masks if args.time_masks is None else args.time_masks,
        time_mask_frames=base.time_mask_frames if args.time_mask_frames is None else args.time_mask_frames,
        freq_masks=base.freq_masks if args.freq_masks is None else args.freq_masks,
        freq_mask_channels=base.freq_mask_channels if args.freq_mask_channels is None else args.freq_mask_channels,
        mixup=args.mixup,
    ).check()
    return aug if aug.active else None


def set_threads(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", type=Path, help="Speech Commands directory (default: the synthetic set of --size)")
    p.add_argument("--size", choices=("small", "paper"), default="paper", help="synthetic set size when --dataset is absent")
    p.add_argument("--holdout-engine", metavar="NAME", default=None,
                   help="synthetic sets: train/validate without text-to-speech engine NAME, test on all its clips")
    add_training_options(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the float32 TinyConv baseline (cached) and print its per-class tables",
                       description="Train TinyConv (Adam, batch 100, best-validation checkpoint); cached by content hash.")
    _common(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)

    p = sub.add_parser("evaluate", help="per-class tables, confusion matrix and confuser false accepts of a trained model",
                       description="Evaluate the cached baseline (same options as train) or a state_dict given with --checkpoint.")
    _common(p)
    p.add_argument("--checkpoint", type=Path, help="a TinyConv state_dict (.pt) to evaluate instead of the cached baseline")
    p.add_argument("--channels", type=int, default=None, help="conv channels of --checkpoint (default: read from the weights)")
    p.set_defaults(func=run_evaluate)


def _dataset(args: argparse.Namespace) -> Path:
    set_threads(args)
    if args.dataset is not None:
        return args.dataset
    from harness.data.synth import default_dataset

    return default_dataset(args.size)


def _splits(args: argparse.Namespace):
    from harness.data import dataset

    return dataset.load_splits(_dataset(args), holdout_engine=args.holdout_engine)


def _emit(args: argparse.Namespace, model, header: dict, splits) -> int:
    from harness.model.evaluate import print_report, report_to_dict, split_report

    report = split_report(model, splits)
    if args.json:
        json.dump({**header, **report_to_dict(report)}, sys.stdout, indent=2, default=str)
        print()
    else:
        from rich.console import Console

        console = Console()
        for k, v in header.items():
            console.print(f"{k}: {v}")
        print_report(report, console)
    return 0


def run_train(args: argparse.Namespace) -> int:
    from harness.model.train import baseline

    splits = _splits(args)
    model, info = baseline(epochs=args.epochs, seed=args.seed, lr=args.lr, splits=splits,
                           progress=not (args.no_progress or args.json), augment=augment_from_args(args))
    curve = Path(info["dir"]) / "training_curve.png"
    if not curve.is_file():  # the model layer draws nothing; the figure belongs to this command
        from harness.figures.training import plot_history

        plot_history(info["history"], curve)
    info["curve"] = str(curve)
    header = {k: info[k] for k in ("dir", "curve", "trained", "best_epoch", "best_val_acc", "train_seconds") if k in info}
    return _emit(args, model, header, splits)


def run_evaluate(args: argparse.Namespace) -> int:
    if args.checkpoint:
        from harness.model.train import load_checkpoint

        model = load_checkpoint(args.checkpoint, args.channels)
        splits = _splits(args)
        header = {"checkpoint": str(args.checkpoint)}
    else:
        from harness.model.train import baseline

        splits = _splits(args)
        model, info = baseline(epochs=args.epochs, seed=args.seed, lr=args.lr, splits=splits, allow_train=False,
                               augment=augment_from_args(args))
        header = {"dir": info["dir"]}
    return _emit(args, model, header, splits)
