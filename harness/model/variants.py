"""Model variants of the float32 TinyConv: stable ids, one cached artifact per variant, the sweep.

Ids (37 in all): ``fp32``; ``ptq-{sym,asym}-{2,4,6,8}`` and ``qat-{sym,asym}-{2,4,6,8}``
(harness/model/quant.py); ``struct-{l1,l2,linf}-{pct}-{ft,noft}`` and ``unstruct-l1-{pct}-{ft,noft}``
(harness/model/prune.py), pct in 10/25/40/55/70 (the sweep uses L1, the paper's criterion; any
percentage 0..100 parses, so a user can make ``struct-l2-33-ft`` alone).

Caching, in two layers so a change to the metrics code never retrains anything:
- weights: keyed by the baseline's cache key (data + training recipe + code), the variant spec,
  the compression recipe (epochs, lr, calibration size) and the source of quant/prune/variants;
- metrics: keyed by the weights key and the source of evaluate/stats.
A corrupt artifact is logged and rebuilt. A second sweep loads everything and trains nothing.

Fine-tuning (QAT, pruned ``-ft``) goes through ``train.fit`` on the baseline's own augmented
training copies (TF-style shift and background noise), keeping the epoch with the best validation accuracy, as the baseline does. The
recipes are fixed in quant.py / prune.py and recorded in each variant's info, never tuned per run.
"""

from __future__ import annotations

import copy
import csv
import inspect
import io
import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from harness.model import prune, quant
from harness.cache import artifact_dir, atomic_write_bytes, atomic_write_json, atomic_write_text, content_hash, source_hash
from harness.errors import HarnessError

log = logging.getLogger(__name__)

SCHEMES = ("sym", "asym")
KINDS = ("fp32", "ptq", "qat", "struct", "unstruct")
SEED = 0

_ID_PATTERNS = (
    "fp32",
    "ptq-{sym|asym}-{2..8}",
    "qat-{sym|asym}-{2..8}",
    "struct-{l1|l2|linf}-{0..100}-{ft|noft}",
    "unstruct-l1-{0..100}-{ft|noft}",
)
_QUANT_RE = re.compile(r"^(ptq|qat)-(sym|asym)-(\d+)$")
_PRUNE_RE = re.compile(r"^(struct|unstruct)-([a-z0-9]+)-(\d+)-(ft|noft)$")


@dataclass(frozen=True)
class VariantSpec:
    """What a variant id means; ``bits`` is the bits per stored weight (32 for float)."""

    id: str
    kind: str
    bits: int = 32
    symmetric: bool | None = None
    criterion: str | None = None
    percent: int | None = None
    finetune: bool = False

    @property
    def amount(self) -> float:
        return (self.percent or 0) / 100

    def quant_config(self) -> quant.QuantConfig:
        return quant.QuantConfig(bits=self.bits, symmetric=bool(self.symmetric))


def all_ids() -> list[str]:
    """The sweep's variant ids, in table order."""
    ids = ["fp32"]
    for method in ("ptq", "qat"):
        ids += [f"{method}-{s}-{b}" for s in SCHEMES for b in quant.BITS]
    for kind in ("struct", "unstruct"):
        ids += [f"{kind}-l1-{p}-{ft}" for ft in ("ft", "noft") for p in prune.THRESHOLDS]
    return ids


def _unknown(variant_id: str, why: str = "") -> HarnessError:
    why = f" ({why})" if why else ""
    return HarnessError(
        f"unknown variant id {variant_id!r}{why}; valid ids: {', '.join(all_ids())}; patterns: {', '.join(_ID_PATTERNS)}"
    )


def parse(variant_id: str) -> VariantSpec:
    """Parse a variant id; unknown ids raise HarnessError listing the valid ids and patterns."""
    vid = str(variant_id).strip().lower()
    if vid == "fp32":
        return VariantSpec(id=vid, kind="fp32")
    m = _QUANT_RE.match(vid)
    if m:
        bits = int(m.group(3))
        if not 2 <= bits <= 8:
            raise _unknown(variant_id, f"bit width {bits} is outside 2..8")
        return VariantSpec(id=vid, kind=m.group(1), bits=bits, symmetric=m.group(2) == "sym")
    m = _PRUNE_RE.match(vid)
    if m:
        kind, criterion, pct, ft = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        allowed = tuple(prune.CRITERIA) if kind == "struct" else ("l1",)
        if criterion not in allowed:
            raise _unknown(variant_id, f"{kind} pruning criteria: {', '.join(allowed)}")
        if not 0 <= pct <= 100:
            raise _unknown(variant_id, f"threshold {pct} % is outside 0..100")
        return VariantSpec(id=vid, kind=kind, criterion=criterion, percent=pct, finetune=ft == "ft")
    raise _unknown(variant_id)


def recipe(spec: VariantSpec) -> dict[str, Any]:
    """The compression recipe of a variant (recorded in its metadata and part of its cache key)."""
    if spec.kind == "ptq":
        return {"method": "ptq", "calibration_samples": quant.PTQ_CALIBRATION_SAMPLES, "per_channel": False,
                "bias": "int32 at s_in*s_w", "activations": "8-bit, calibrated min/max"}
    if spec.kind == "qat":
        return {"method": "qat", "epochs": quant.QAT_EPOCHS, "lr": quant.QAT_LR, "seed": SEED,
                "calibration_samples": quant.PTQ_CALIBRATION_SAMPLES, "per_channel": False,
                "activations": "8-bit, calibrated min/max, then EMA while training", "observer_ema": quant.EMA_MOMENTUM, "train_features": "baseline augmented copies"}
    if spec.kind in ("struct", "unstruct"):
        r: dict[str, Any] = {"method": f"{spec.kind}ured pruning", "criterion": spec.criterion, "amount": spec.amount}
        if spec.finetune:
            r.update(epochs=prune.FINETUNE_EPOCHS, lr=prune.FINETUNE_LR, seed=SEED, train_features="baseline augmented copies")
        return r
    return {"method": "float32 baseline"}


# ----------------------------------------------------------------------------- data context


@dataclass
class Context:
    """Everything a variant is made from: the baseline and the split features (int8)."""

    baseline: nn.Module
    baseline_key: str
    fingerprint: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    dataset_dir: str = ""
    x_train_aug: np.ndarray | None = None  # [K, N, 49, 40] augmented copies (the baseline's), for fine-tuning


_CONTEXTS: dict[str, Context] = {}


def load_context(dataset_dir: Path | str | None = None, progress: bool = False) -> Context:
    """The baseline and features of a data set (synthetic paper-size set when None), memoized."""
    from harness.data import dataset, features, synth
    from harness.model import train

    if dataset_dir is None:
        dataset_dir = synth.default_dataset("paper", progress=progress)
    dataset_dir = str(Path(dataset_dir).expanduser().resolve())
    if dataset_dir in _CONTEXTS:
        return _CONTEXTS[dataset_dir]
    splits = dataset.load_splits(dataset_dir)
    model, info = train.baseline(dataset_dir, progress=progress)
    x_train, y_train = features.split_features(splits, "train")
    x_val, y_val = features.split_features(splits, "validation")
    x_test, y_test = features.split_features(splits, "test")
    # The baseline's own augmented copies (train_epochs caches min(DEFAULT_COPIES, epochs) of them):
    # fine-tuning sees the same augmentation as training, at no extra feature cost.
    x_aug, y_aug = features.train_epochs(splits, epochs=train.DEFAULT_EPOCHS, progress=progress)
    if not np.array_equal(y_aug, y_train):
        log.warning("augmented and clean training labels of %s disagree; fine-tuning on clean features", dataset_dir)
        x_aug = None
    ctx = Context(model.eval(), info.get("key") or content_hash(model), splits.fingerprint,
                  x_train, y_train, x_val, y_val, x_test, y_test, dataset_dir, x_aug)
    _CONTEXTS[dataset_dir] = ctx
    return ctx


def _float(x: np.ndarray) -> torch.Tensor:
    from harness.model.train import to_float

    return to_float(x)


def _calibration_inputs(ctx: Context) -> torch.Tensor:
    """A seeded random subset of the training inputs (the list order is grouped by class)."""
    order = np.random.default_rng(SEED).permutation(len(ctx.x_train))[: quant.PTQ_CALIBRATION_SAMPLES]
    return _float(ctx.x_train[np.sort(order)])


# ----------------------------------------------------------------------------- building


def _fit(model: nn.Module, ctx: Context, epochs: int, lr: float, progress: bool, description: str) -> dict:
    from harness.model.train import fit

    x = ctx.x_train_aug if ctx.x_train_aug is not None else ctx.x_train
    return fit(model, x, ctx.y_train, ctx.x_val, ctx.y_val, epochs=epochs, lr=lr, seed=SEED,
               progress=progress, description=description)


def _build(spec: VariantSpec, ctx: Context, progress: bool = False) -> tuple[nn.Module, dict]:
    """Make a variant's model from the baseline. Returns (model, training info)."""
    base = copy.deepcopy(ctx.baseline).eval()
    torch.manual_seed(SEED)
    if spec.kind == "fp32":
        return base, {}
    if spec.kind == "ptq":
        return quant.ptq(base, spec.quant_config(), _calibration_inputs(ctx)), {}
    if spec.kind == "qat":
        from harness.model.train import fit

        x = ctx.x_train_aug if ctx.x_train_aug is not None else ctx.x_train
        qmodel = quant.qat(base, spec.quant_config(), x, ctx.y_train, ctx.x_val, ctx.y_val,
                           epochs=quant.QAT_EPOCHS, lr=quant.QAT_LR, seed=SEED, fit=fit, progress=progress,
                           x_calib=_calibration_inputs(ctx), description=spec.id)
        hist = qmodel.qat_history
        return qmodel, {"best_epoch": hist["best_epoch"], "best_val_acc": hist["best_val_acc"],
                        "train_seconds": hist["seconds"]}
    if spec.kind == "struct":
        model = prune.structured(base, spec.amount, spec.criterion)
    else:
        model = prune.unstructured_masked(base, spec.amount)
    info: dict[str, Any] = {}
    if spec.finetune:
        hist = _fit(model, ctx, prune.FINETUNE_EPOCHS, prune.FINETUNE_LR, progress, spec.id)
        info = {"best_epoch": hist["best_epoch"], "best_val_acc": hist["best_val_acc"], "train_seconds": hist["seconds"]}
    return prune.make_permanent(model).eval(), info


def _empty_model(spec: VariantSpec, state: dict[str, torch.Tensor]) -> nn.Module:
    """A model of the right structure to load a cached state_dict into."""
    from models.tinyconv import TinyConv

    if spec.kind in ("ptq", "qat"):
        return quant.quantize_model(TinyConv(), spec.quant_config())
    if spec.kind == "struct":
        return TinyConv(channels=int(state["conv.weight"].shape[0]))
    return TinyConv()


def plain_model(model: nn.Module) -> nn.Module:
    """The TinyConv with the variant's effective float weights (dequantized when quantized)."""
    from models.tinyconv import TinyConv

    if quant.quant_layers(model):
        return quant.plain_weights(model, TinyConv(channels=model.conv.layer.out_channels))
    return copy.deepcopy(model).eval()


@dataclass
class Variant:
    """A made variant: ``model`` for host evaluation, ``metrics``, ``info`` (recipe, cache, timing)."""

    spec: VariantSpec
    model: nn.Module
    metrics: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.spec.id

    def plain_model(self) -> nn.Module:
        """TinyConv with the (de)quantized / pruned float weights: what export consumes."""
        return plain_model(self.model)


# What makes a variant's weights, hashed into its key (with quant.py, prune.py, TinyConv and, via the
# baseline key, train.fit): editing this module's table, metrics or CLI code never retrains anything.
_BUILD_FUNCTIONS = ("parse", "recipe", "load_context", "_calibration_inputs", "_fit", "_build", "_empty_model")


def _sources() -> str:
    from models import tinyconv

    own = [inspect.getsource(globals()[name]) for name in _BUILD_FUNCTIONS]
    return content_hash(source_hash(quant, prune, tinyconv), own, SEED)


def weights_key(spec: VariantSpec, ctx: Context) -> str:
    return content_hash("variant-weights", ctx.baseline_key, ctx.fingerprint, asdict(spec), recipe(spec), _sources())


def _load_weights(spec: VariantSpec, path: Path) -> nn.Module:
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = _empty_model(spec, state)
    model.load_state_dict(state)
    return model.eval()


def _model_for(spec: VariantSpec, ctx: Context, progress: bool) -> tuple[nn.Module, str, dict]:
    """Weights of a variant from the cache, or built (and cached) now."""
    wkey = weights_key(spec, ctx)
    if spec.kind == "fp32":
        return copy.deepcopy(ctx.baseline).eval(), wkey, {"cached": True}
    out = artifact_dir("variant-weights", wkey)
    ckpt, info_path = out / "model.pt", out / "info.json"
    if ckpt.exists() and info_path.exists():
        try:
            model = _load_weights(spec, ckpt)
            info = json.loads(info_path.read_text())
            info["cached"] = True
            return model, wkey, info
        except Exception as exc:  # corrupt or truncated artifact: rebuild it
            log.warning("cached variant %s at %s is unreadable (%s: %s); rebuilding", spec.id, out, type(exc).__name__, exc)
    t0 = time.perf_counter()
    model, train_info = _build(spec, ctx, progress=progress)
    info = {"id": spec.id, "spec": asdict(spec), "recipe": recipe(spec), "baseline_key": ctx.baseline_key,
            "build_seconds": time.perf_counter() - t0, **train_info}
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write_json(info_path, info)
    atomic_write_bytes(ckpt, buf.getvalue())  # last: its presence marks a complete artifact
    info["cached"] = False
    return model, wkey, info


def compute_metrics(spec: VariantSpec, model: nn.Module, ctx: Context) -> dict[str, Any]:
    """Accuracy per class (validation, test), size statistics at the variant's bit width, host latency."""
    from harness.model import evaluate, stats

    plain = plain_model(model)
    val = evaluate.evaluate(model, ctx.x_val, ctx.y_val)
    test = evaluate.evaluate(model, ctx.x_test, ctx.y_test)
    st = stats.model_stats(plain, bits=spec.bits)
    st.pop("layers", None)
    lat = stats.host_latency(plain, "cpu", repeats=200, warmup=20, threads=1)
    return {
        "val_accuracy": val.accuracy,
        "test_accuracy": test.accuracy,
        "validation": val.to_dict(),
        "test": test.to_dict(),
        "stats": st,
        "host_cpu_latency": lat,
        "channels": int(plain.conv.out_channels),
    }


def _metrics_for(spec: VariantSpec, model: nn.Module, wkey: str, ctx: Context) -> tuple[dict, bool]:
    from harness.model import evaluate, stats

    mkey = content_hash("variant-metrics", wkey, ctx.fingerprint, source_hash(evaluate, stats))
    path = artifact_dir("variant-metrics", mkey) / "metrics.json"
    if path.exists():
        try:
            metrics = json.loads(path.read_text())
            if metrics.get("id") == spec.id:
                return metrics, True
            raise ValueError("metrics file names another variant")
        except Exception as exc:
            log.warning("cached metrics of %s at %s are unreadable (%s: %s); recomputing", spec.id, path, type(exc).__name__, exc)
    metrics = {"id": spec.id, **compute_metrics(spec, model, ctx)}
    atomic_write_json(path, metrics)
    return metrics, False


def make(variant_id: str, dataset_dir: Path | str | None = None, progress: bool = False,
         context: Context | None = None) -> Variant:
    """Make one variant (cached): weights, then metrics. ``info['trained']`` says whether it built."""
    spec = parse(variant_id)
    ctx = context or load_context(dataset_dir, progress=progress)
    model, wkey, info = _model_for(spec, ctx, progress)
    metrics, metrics_cached = _metrics_for(spec, model, wkey, ctx)
    info = {**info, "weights_key": wkey, "built": not info.get("cached", True), "metrics_cached": metrics_cached,
            "recipe": recipe(spec), "dataset": ctx.dataset_dir}
    return Variant(spec, model, metrics, info)


# ----------------------------------------------------------------------------- sweep and table

TABLE_COLUMNS = [
    "variant", "kind", "bits", "scheme", "criterion", "pruned_pct", "finetuned", "channels",
    "val_acc", "test_acc", "test_acc_silence", "test_acc_unknown", "test_acc_yes", "test_acc_no",
    "tflite_test_acc", "parameters", "nonzero_parameters", "sparsity", "flops", "nonzero_flops",
    "flash_bytes", "ram_bytes", "host_cpu_ms", "host_cpu_min_ms", "built",
]


def table_row(v: Variant, tflite: dict | None = None) -> dict[str, Any]:
    """One row of the variants table (flat, CSV-friendly)."""
    s, m, st = v.spec, v.metrics, v.metrics["stats"]
    row: dict[str, Any] = {
        "variant": s.id, "kind": s.kind, "bits": s.bits,
        "scheme": "" if s.symmetric is None else ("sym" if s.symmetric else "asym"),
        "criterion": s.criterion or "", "pruned_pct": "" if s.percent is None else s.percent,
        "finetuned": s.finetune if s.kind in ("struct", "unstruct") else (s.kind == "qat"),
        "channels": m["channels"],
        "val_acc": round(m["val_accuracy"], 4), "test_acc": round(m["test_accuracy"], 4),
    }
    for c in m["test"]["per_class"]:
        acc = c["accuracy"]
        row[f"test_acc_{c['class']}"] = "" if acc != acc else round(acc, 4)
    row["tflite_test_acc"] = "" if not tflite else round(tflite["test_accuracy"], 4)
    row.update({k: st[k] for k in ("parameters", "nonzero_parameters", "flops", "nonzero_flops", "flash_bytes", "ram_bytes")})
    row["sparsity"] = round(st["sparsity"], 4)
    row["host_cpu_ms"] = round(m["host_cpu_latency"]["median_ms"], 4)
    # The fastest of the timed runs: the figure least disturbed by other processes on a shared host.
    row["host_cpu_min_ms"] = round(m["host_cpu_latency"]["min_ms"], 4)
    row["built"] = v.info.get("built", False)
    return {k: row.get(k, "") for k in TABLE_COLUMNS}


def select(pattern: str | None) -> list[str]:
    """Sweep ids matching a glob (``qat-*``, ``*-ft``) or comma list; no match is an error."""
    ids = all_ids()
    if not pattern:
        return ids
    pats = [p.strip() for p in pattern.split(",") if p.strip()]
    chosen = [i for i in ids if any(fnmatch(i, p) for p in pats)]
    extra = [p for p in pats if not any(ch in p for ch in "*?[") and p not in ids]
    chosen += [parse(p).id for p in extra]  # ad-hoc ids such as struct-l2-33-ft
    if not chosen:
        raise HarnessError(f"--only {pattern!r} matches no variant id; valid ids: {', '.join(ids)}")
    return chosen


def sweep(ids: list[str] | None = None, dataset_dir: Path | str | None = None, progress: bool = True,
          extra_metrics: Callable[[Variant, Context], dict | None] | None = None,
          on_variant: Callable[[Variant], None] | None = None) -> list[dict[str, Any]]:
    """Make every variant (cached) and return the table rows, with a rich progress display.

    ``extra_metrics(variant, context)`` adds the exported model's numbers to a row (the bench layer's
    ``pipeline.tflite_metrics``: the model layer itself never exports and runs TFLM).
    """
    ids = ids or all_ids()
    ctx = load_context(dataset_dir, progress=progress)
    rows = []
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("variants"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.description}"), TimeElapsedColumn())
        bar.start()
        task = bar.add_task("", total=len(ids))
    try:
        for vid in ids:
            if bar is not None:
                bar.update(task, description=vid)
            v = make(vid, context=ctx)
            tfl = None
            if extra_metrics is not None:
                try:
                    tfl = extra_metrics(v, ctx)
                except HarnessError as exc:
                    log.warning("export of %s failed: %s", vid, exc)
            rows.append(table_row(v, tfl))
            if on_variant:
                on_variant(v)
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    return rows


def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    columns = columns or TABLE_COLUMNS
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict[str, Any]], out_dir: Path | str | None = None) -> tuple[Path, Path]:
    """Write ``variants.csv`` and ``variants.md`` (default ``results/variants/``)."""
    from harness.paths import results_dir

    out = Path(out_dir) if out_dir else results_dir() / "variants"
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TABLE_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    csv_path = atomic_write_text(out / "variants.csv", buf.getvalue())
    md_path = atomic_write_text(out / "variants.md", markdown_table(rows))
    return csv_path, md_path


def read_table(path: Path | str) -> list[dict[str, Any]]:
    """Read a variants CSV back (numbers as floats where they parse)."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"variants table {path} not found; run: python -m harness variants sweep")
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            out: dict[str, Any] = {}
            for k, val in r.items():
                try:
                    out[k] = float(val) if val not in ("", "True", "False") else (val == "True" if val else "")
                except ValueError:
                    out[k] = val
            rows.append(out)
    return rows
