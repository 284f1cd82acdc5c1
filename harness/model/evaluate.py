"""Evaluation: the paper's per-class accuracy tables, the confusion matrix, the confuser false accepts.

One function (``evaluate``) takes either a PyTorch model or any predict function (the int8
reference interpreter, a board over the serial link), so every backend is scored by the same
code and its tables are comparable row by row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from models.tinyconv import CLASSES

from harness.errors import HarnessError

# Classes whose prediction counts as "the device reacted": a confuser clip predicted as one of
# these is a false accept.
KEYWORDS = ("yes", "no")

PredictFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class EvalResult:
    """Per-class results of one split. ``confusion[i, j]`` counts true class i predicted as j."""

    classes: tuple[str, ...]
    confusion: np.ndarray
    predictions: np.ndarray = field(repr=False)

    @property
    def samples(self) -> np.ndarray:
        return self.confusion.sum(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return np.diag(self.confusion).copy()

    @property
    def total_samples(self) -> int:
        return int(self.confusion.sum())

    @property
    def total_correct(self) -> int:
        return int(np.trace(self.confusion))

    @property
    def accuracy(self) -> float:
        return self.total_correct / self.total_samples if self.total_samples else float("nan")

    def per_class(self) -> list[dict[str, Any]]:
        """Rows of the paper's table: class, #samples, #correct, accuracy (NaN for an empty class)."""
        rows = []
        for name, n, c in zip(self.classes, self.samples, self.correct):
            rows.append({"class": name, "samples": int(n), "correct": int(c), "accuracy": c / n if n else float("nan")})
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "per_class": self.per_class(),
            "total": {"samples": self.total_samples, "correct": self.total_correct, "accuracy": self.accuracy},
            "confusion": self.confusion.tolist(),
        }

    def table(self, title: str = ""):
        """The paper's per-class table (class, #samples, #correct, accuracy, total row) as a rich Table."""
        from rich.table import Table

        t = Table(title=title or None, show_footer=True)
        t.add_column("class", footer="total")
        t.add_column("#samples", justify="right", footer=str(self.total_samples))
        t.add_column("#correct", justify="right", footer=str(self.total_correct))
        t.add_column("accuracy", justify="right", footer=f"{self.accuracy:.3f}")
        for row in self.per_class():
            t.add_row(row["class"], str(row["samples"]), str(row["correct"]), f"{row['accuracy']:.3f}")
        return t

    def confusion_table(self, title: str = ""):
        """Confusion matrix as a rich Table (rows: true class, columns: predicted class)."""
        from rich.table import Table

        t = Table(title=title or None)
        t.add_column("true \\ predicted")
        for name in self.classes:
            t.add_column(name, justify="right")
        for name, row in zip(self.classes, self.confusion):
            t.add_row(name, *[str(int(v)) for v in row])
        return t


def predict(model_or_fn: nn.Module | PredictFn, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Predicted class indices [N] for int8 (or float) features [N, 49, 40].

    A model gets dequantized features in eval mode; a predict function gets ``x`` unchanged and
    may return scores [N, C] (argmax taken) or class indices [N].
    """
    x = np.asarray(x)
    if len(x) == 0:
        return np.zeros(0, dtype=np.int64)
    if isinstance(model_or_fn, nn.Module):
        from harness.model.train import to_float

        model = model_or_fn
        was_training = model.training
        model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                out.append(model(to_float(x[i : i + batch_size])).argmax(1).numpy())
        model.train(was_training)
        return np.concatenate(out).astype(np.int64)
    scores = np.asarray(model_or_fn(x))
    if scores.ndim == 2:
        return scores.argmax(1).astype(np.int64)
    if scores.ndim == 1 and len(scores) == len(x):
        return scores.astype(np.int64)
    raise HarnessError(f"predict function returned shape {scores.shape} for {len(x)} inputs; expected [N, C] or [N]")


def evaluate(
    model_or_predict_fn: nn.Module | PredictFn,
    x: np.ndarray,
    y: np.ndarray,
    classes: Sequence[str] = CLASSES,
) -> EvalResult:
    """Score features ``x`` with labels ``y``: per-class counts and the confusion matrix."""
    y = np.asarray(y, dtype=np.int64)
    if len(x) != len(y):
        raise HarnessError(f"evaluation: {len(x)} feature rows but {len(y)} labels")
    pred = predict(model_or_predict_fn, x)
    k = len(classes)
    if len(y) and (y.min() < 0 or y.max() >= k or pred.min() < 0 or pred.max() >= k):
        raise HarnessError(f"evaluation: labels or predictions outside 0..{k - 1} for classes {tuple(classes)}")
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    return EvalResult(tuple(classes), confusion, pred)


def false_accept_rate(
    model_or_predict_fn: nn.Module | PredictFn,
    x_confusers: np.ndarray,
    classes: Sequence[str] = CLASSES,
    keywords: Sequence[str] = KEYWORDS,
    words: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Fraction of sound-alike (non-keyword) clips classified as a keyword, overall, per keyword
    and (given ``words``, the spoken word of each clip) per confuser word under ``per_word``."""
    pred = predict(model_or_predict_fn, x_confusers)
    n = len(pred)
    out: dict[str, Any] = {"clips": n}
    accepted = 0
    for kw in keywords:
        c = int((pred == classes.index(kw)).sum())
        out[f"as_{kw}"] = c
        accepted += c
    out["accepted"] = accepted
    out["rate"] = accepted / n if n else float("nan")
    if words is not None:
        if len(words) != n:
            raise HarnessError(f"false accepts: {len(words)} words for {n} confuser clips")
        hit = np.isin(pred, [classes.index(k) for k in keywords])
        per: dict[str, dict[str, Any]] = {}
        for w in sorted(set(words)):
            sel = np.asarray([x == w for x in words])
            per[w] = {"clips": int(sel.sum()), "accepted": int(hit[sel].sum()),
                      **{f"as_{k}": int((pred[sel] == classes.index(k)).sum()) for k in keywords}}
            per[w]["rate"] = per[w]["accepted"] / per[w]["clips"]
        out["per_word"] = per
    return out


def split_report(model_or_predict_fn: nn.Module | PredictFn, splits: Any) -> dict[str, Any]:
    """Validation and test results plus the confuser false-accept rate (when the set has confusers)."""
    from harness.data import features

    report: dict[str, Any] = {}
    for name in ("validation", "test"):
        x, y = features.split_features(splits, name)
        report[name] = evaluate(model_or_predict_fn, x, y)
    report["confusers"] = None
    if getattr(splits, "confusers", None):
        xc, _ = features.split_features(splits, "confusers")
        words = [s.word for s in splits.confusers]
        report["confusers"] = false_accept_rate(model_or_predict_fn, xc, words=words if len(words) == len(xc) else None)
    return report


def report_to_dict(report: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.to_dict() if isinstance(v, EvalResult) else v) for k, v in report.items()}


def print_report(report: dict[str, Any], console=None) -> None:
    """Print the per-class tables, the confusion matrices and the false-accept line."""
    from rich.console import Console

    console = console or Console()
    for name in ("validation", "test"):
        res = report.get(name)
        if res is None:
            continue
        console.print(res.table(f"{name} accuracy"))
        console.print(res.confusion_table(f"{name} confusion"))
    fa = report.get("confusers")
    if fa and fa.get("per_word"):
        from rich.table import Table

        t = Table(title="confuser false accepts per word", show_footer=True)
        t.add_column("word", footer="total")
        t.add_column("#clips", justify="right", footer=str(fa["clips"]))
        t.add_column("as yes", justify="right", footer=str(fa["as_yes"]))
        t.add_column("as no", justify="right", footer=str(fa["as_no"]))
        t.add_column("rate", justify="right", footer=f"{fa['rate']:.3f}")
        for w, r in fa["per_word"].items():
            t.add_row(w, str(r["clips"]), str(r["as_yes"]), str(r["as_no"]), f"{r['rate']:.3f}")
        console.print(t)
    if fa:
        console.print(
            f"false accepts on {fa['clips']} confuser clips: {fa['accepted']} "
            f"(yes {fa['as_yes']}, no {fa['as_no']}) = {fa['rate']:.3f}"
        )
