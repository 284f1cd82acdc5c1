"""Leave-one-engine-out evaluation of the float32 baseline on a synthetic set.

Why: accuracy on a test split spoken by the same engines as the training split says little about
speech the model has not heard (a two-engine baseline scored 0.908 on its own test split and 0.755
on a third engine). Training on all engines but one and testing on every clip of the one left out
is the measurement the generator is tuned against; ``python -m harness data crossval`` prints it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import HarnessError


def engines_of(dataset_dir: Path | str) -> list[str]:
    """The text-to-speech engines of a synthetic set (from its synth.json speaker table)."""
    from harness.data.dataset import speaker_engines

    return sorted(set(speaker_engines(dataset_dir).values()))


def engine_counts(splits) -> dict[str, dict[str, dict[str, int]]]:
    """{split: {engine: {class: n, "total": n}}} (silence counts under "-": it has no speaker)."""
    from harness.data.dataset import CLASSES, SPLITS, speaker_engines

    engine_of = speaker_engines(splits.root)
    out: dict[str, dict[str, dict[str, int]]] = {}
    for name in (*SPLITS, "confusers"):
        per: dict[str, dict[str, int]] = {}
        for s in splits.split(name):
            eng = "-" if s.path is None else engine_of.get(s.speaker, "?")
            row = per.setdefault(eng, {**{c: 0 for c in CLASSES}, "total": 0})
            row[s.label] += 1
            row["total"] += 1
        out[name] = dict(sorted(per.items()))
    return out


def crossval(dataset_dir: Path | str, epochs: int = 50, lr: float = 1e-3, seed: int = 0, augment=None,
             engines: list[str] | None = None, progress: bool = True, seeds: int = 1) -> dict[str, Any]:
    """Train one baseline per left-out engine (cached) and score it on that engine's clips.

    Returns {"engines": {name: {"test": EvalResult, "validation": EvalResult, "confusers": {...},
    "train_clips": n, "dir": ...}}, "mean_accuracy", "min_accuracy", "mean_no", "min_no"}.
    ``seeds`` > 1 also trains with seeds ``seed+1 ..`` and adds "seeds": {engine: {"accuracy": [...],
    "no": [...], "false_accepts": [...]}} and "mean_accuracy_by_seed": how much of a difference between
    two generator variants is the training draw (the tables above stay those of ``seed``).
    """
    from harness.data import dataset
    from harness.model.evaluate import split_report
    from harness.model.train import baseline

    have = engines_of(dataset_dir)
    engines = engines or have
    unknown = [e for e in engines if e not in have]
    if unknown:
        raise HarnessError(f"no engine {', '.join(unknown)} in {dataset_dir} (engines: {', '.join(have)})")
    if len(have) < 2:
        raise HarnessError(f"{dataset_dir} has one engine ({have[0]}); leaving it out leaves nothing to train on")
    if seeds < 1:
        raise HarnessError(f"crossval: --seeds must be >= 1, got {seeds}")
    results: dict[str, Any] = {}
    spread: dict[str, dict[str, list[float]]] = {}
    for engine in engines:
        splits = dataset.load_splits(dataset_dir, holdout_engine=engine)
        model, info = baseline(splits=splits, epochs=epochs, lr=lr, seed=seed, augment=augment, progress=progress)
        report = split_report(model, splits)
        results[engine] = {**report, "train_clips": len(splits.train), "dir": info["dir"],
                           "best_val_acc": info.get("best_val_acc")}
        spread[engine] = {"accuracy": [report["test"].accuracy], "no": [_no(report["test"])],
                          "false_accepts": [report["confusers"]["rate"] if report.get("confusers") else float("nan")]}
        for extra in range(seed + 1, seed + seeds):
            model, _ = baseline(splits=splits, epochs=epochs, lr=lr, seed=extra, augment=augment, progress=progress)
            rep = split_report(model, splits)
            spread[engine]["accuracy"].append(rep["test"].accuracy)
            spread[engine]["no"].append(_no(rep["test"]))
            spread[engine]["false_accepts"].append(rep["confusers"]["rate"] if rep.get("confusers") else float("nan"))
    acc = [r["test"].accuracy for r in results.values()]
    no = [_no(r["test"]) for r in results.values()]
    fa = [r["confusers"]["rate"] for r in results.values() if r.get("confusers")]
    out = {"engines": results, "mean_accuracy": sum(acc) / len(acc), "min_accuracy": min(acc),
           "mean_no": sum(no) / len(no), "min_no": min(no),
           "mean_false_accepts": sum(fa) / len(fa) if fa else float("nan")}
    if seeds > 1:
        out["seeds"] = spread
        out["mean_accuracy_by_seed"] = [sum(v["accuracy"][k] for v in spread.values()) / len(spread)
                                        for k in range(seeds)]
    return out


def _no(result) -> float:
    return result.per_class()[result.classes.index("no")]["accuracy"]


def to_dict(result: dict[str, Any]) -> dict[str, Any]:
    from harness.model.evaluate import report_to_dict

    out = {k: v for k, v in result.items() if k != "engines"}
    out["engines"] = {e: {**report_to_dict({k: v for k, v in r.items()})} for e, r in result["engines"].items()}
    return out


def print_result(result: dict[str, Any], console=None) -> None:
    """Per-engine tables and confusion matrices, then one summary row per left-out engine."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    for engine, r in result["engines"].items():
        console.print(r["test"].table(f"left out: {engine} (trained on the others, {r['train_clips']} clips)"))
        console.print(r["test"].confusion_table(f"left out: {engine}, confusion"))
    t = Table(title="leave-one-engine-out, float32 TinyConv", show_footer=True)
    t.add_column("left out", footer="mean")
    for c in ("silence", "unknown", "yes", "no"):
        t.add_column(c, justify="right", footer=f"{result['mean_no']:.3f}" if c == "no" else "")
    t.add_column("accuracy", justify="right", footer=f"{result['mean_accuracy']:.3f}")
    t.add_column("val acc (others)", justify="right")
    t.add_column("confuser FA", justify="right", footer=f"{result['mean_false_accepts']:.3f}")
    for engine, r in result["engines"].items():
        per = {row["class"]: row["accuracy"] for row in r["test"].per_class()}
        fa = r.get("confusers")
        t.add_row(engine, *(f"{per[c]:.3f}" for c in ("silence", "unknown", "yes", "no")),
                  f"{r['test'].accuracy:.3f}", f"{r['best_val_acc']:.3f}" if r.get("best_val_acc") is not None else "-",
                  f"{fa['rate']:.3f}" if fa else "-")
    console.print(t)
    if "seeds" in result:
        n = len(result["mean_accuracy_by_seed"])
        t = Table(title=f"accuracy over {n} training seeds (same data; the spread is the training draw)", show_footer=True)
        t.add_column("left out", footer="mean over engines")
        for k in range(n):
            t.add_column(f"seed +{k}", justify="right", footer=f"{result['mean_accuracy_by_seed'][k]:.3f}")
        by_seed = result["mean_accuracy_by_seed"]
        t.add_column("mean", justify="right", footer=f"{sum(by_seed) / n:.3f}")
        t.add_column("range", justify="right", footer=f"{max(by_seed) - min(by_seed):.3f}")
        t.add_column('"no" mean (range)', justify="right")
        for engine, v in result["seeds"].items():
            a, no = v["accuracy"], v["no"]
            t.add_row(engine, *(f"{x:.3f}" for x in a), f"{sum(a) / n:.3f}", f"{max(a) - min(a):.3f}",
                      f"{sum(no) / n:.3f} ({max(no) - min(no):.3f})")
        console.print(t)
