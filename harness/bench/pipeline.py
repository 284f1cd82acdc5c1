"""The path of one variant across the stages: variant id -> .tflite -> firmware build.

The model layer makes variants and exports models; the device layer builds firmware for a .tflite.
Only this layer knows both, so the functions that take a variant id and hand its exported model to the
device side live here, and the CLI, the suites and the sweep all call these same functions.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from harness.cache import artifact_dir, atomic_write_json, content_hash, source_hash
from harness.errors import HarnessError

log = logging.getLogger(__name__)


def variant_tflite(variant_id: str, dataset_dir: Path | str | None = None, out: Path | str | None = None,
                   softmax: bool = False) -> Path:
    """Export one variant (``variants.make(id).plain_model()``), calibrated on its training split.

    ``dataset_dir`` None means the synthetic default data set, as everywhere else.
    """
    from harness.model import variants
    from harness.model.export import calibration_features, export_tflite

    ctx = variants.load_context(dataset_dir)  # memoized: the baseline and the split features
    variant = variants.make(variant_id, context=ctx)
    return export_tflite(variant.plain_model(), calibration_features(ctx.x_train), out=out, softmax=softmax)


def tflite_metrics(variant: Any, ctx: Any) -> dict[str, Any]:
    """Test accuracy of a variant's exported int8 .tflite under the TFLM reference (cached)."""
    from harness.device import reference
    from harness.model import evaluate

    path = Path(variant_tflite(variant.id, dataset_dir=ctx.dataset_dir))
    key = content_hash("tflite-metrics", path, ctx.fingerprint, source_hash(reference, evaluate))
    out = artifact_dir("variant-tflite-metrics", key) / "metrics.json"
    if out.exists():
        try:
            return json.loads(out.read_text())
        except Exception as exc:  # noqa: BLE001 - a corrupt cache entry is recomputed
            log.warning("cached .tflite metrics at %s are unreadable (%s); recomputing", out, exc)
    res = evaluate.evaluate(lambda x: reference.predict(path, x), ctx.x_test, ctx.y_test)
    metrics = {"tflite": str(path), "tflite_bytes": path.stat().st_size, "test_accuracy": res.accuracy,
               "test": res.to_dict()}
    atomic_write_json(out, metrics)
    return metrics


def resolve_model(target: str | Path | None) -> tuple[Path | None, str | None]:
    """(tflite path, variant id) for a .tflite path or a variant id (exported on demand)."""
    if target is None:
        return None, None
    path = Path(target)
    if path.suffix == ".tflite" or path.exists():
        if not path.is_file():
            raise HarnessError(f"build: model file {path} does not exist")
        return path.resolve(), None
    from harness.model import variants

    variant = str(target)
    try:
        variants.parse(variant)
    except HarnessError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad id
        raise HarnessError(f"build: {variant!r} is neither a .tflite file nor a variant id ({exc})") from None
    return Path(variant_tflite(variant)), variant


def build(target: str | Path | None, env: str = "emu_m4", backend: str = "aot", model_id: str | None = None,
          **kwargs: Any) -> Any:
    """Firmware (harness.device.firmware.Build) for a variant id or a .tflite file."""
    from harness.device import firmware

    tflite, variant = resolve_model(target)
    return firmware.build(tflite, env=env, backend=backend, model_id=model_id or variant, variant=variant, **kwargs)
