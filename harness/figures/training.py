"""The paper's Figure 6: training loss and validation accuracy per epoch of the float32 baseline.

``python -m harness plots training`` redraws it from the cached baseline's history.json (the
baseline of the given data set / epochs / seed; trained first if not cached), or from any
history file given with ``--history``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

HELP = "Figure 6: training loss and validation accuracy per epoch of the float32 baseline"


def plot_history(history: dict[str, Any], out: Path, title: str = "TinyConv float32 training") -> Path:
    """Draw loss (left axis) and validation accuracy (right axis) against epoch into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.cache import atomic_write_bytes

    epochs = history.get("epoch") or list(range(1, len(history["train_loss"]) + 1))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.plot(epochs, history["train_loss"], color="tab:blue", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(epochs, history["val_acc"], color="tab:orange", label="validation accuracy")
    ax2.set_ylabel("validation accuracy", color="tab:orange")
    ax2.set_ylim(0, 1)
    best = history.get("best_epoch")
    if best:
        ax2.axvline(best, color="grey", linestyle=":", linewidth=1, label=f"best validation (epoch {best})")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="center right")
    ax.set_title(title)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    out = Path(out)
    atomic_write_bytes(out, buf.getvalue())
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.paths import results_dir

    parser.add_argument("--out", type=Path, default=results_dir() / "figures", help="output folder (default results/figures)")
    parser.add_argument("--history", type=Path, help="a history.json to draw instead of the cached baseline's")
    parser.add_argument("--dataset", type=Path, help="data set directory (default: the synthetic paper-size set)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.history:
        try:
            history = json.loads(Path(args.history).read_text())
        except (OSError, ValueError) as exc:
            raise HarnessError(f"cannot read training history {args.history}: {exc}") from exc
        if "train_loss" not in history or "val_acc" not in history:
            raise HarnessError(f"{args.history} is not a training history (no train_loss / val_acc)")
    else:
        from harness.model.train import baseline

        _, info = baseline(args.dataset, epochs=args.epochs, seed=args.seed, lr=args.lr)
        history = info["history"]
    path = plot_history(history, Path(args.out) / "fig6_training_curve.png")
    print(path)
    return 0
