"""Fixtures of the benchmark suites: data, a variant, its exported model, its firmware, its board.

Every fixture here calls the real library (no stand-ins). They are session-scoped and depend on the
session-scoped ``variant_id`` parameter (set by harness.bench.pytestplugin), so pytest runs one variant's tests
together and builds, starts or flashes its board once, then tears it down before the next variant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from harness.errors import HarnessError

AUDIO_CLIPS = 2  # INFER_AUDIO runs per variant (1 s of audio is ~32 kB over the emulated UART)


def _harness_call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a library call; a HarnessError fails the test with its one line (no traceback)."""
    try:
        return fn(*args, **kwargs)
    except HarnessError as exc:
        message = f"{what}: {exc}"
    pytest.fail(message, pytrace=False)  # outside the except: no chained traceback


# --- data and host side ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dataset_dir(request: pytest.FixtureRequest) -> str | None:
    """--dataset, or None: the synthetic set generated once into the cache."""
    opt = request.config.getoption("kws_dataset")  # checked by the plugin at start
    return str(Path(opt).expanduser().resolve()) if opt else None


@pytest.fixture(scope="session")
def context(dataset_dir: str | None, results_store: Any) -> Any:
    """The baseline model and split features of the data set (harness.model.variants.Context), cached."""
    import torch

    from harness.model import variants

    torch.set_num_threads(1)  # 2 shared cores: keep host timings comparable run to run
    ctx = _harness_call("data set", variants.load_context, dataset_dir)
    from harness.data import clips, dataset

    counts = clips.count_splits(_harness_call("data set", dataset.load_splits, ctx.dataset_dir))
    if counts.converted or counts.unreadable:
        import warnings

        warnings.warn(f"data set {ctx.dataset_dir}: {counts.summary()}", stacklevel=1)
    results_store.write_metadata(dataset={
        "id": "synthetic" if dataset_dir is None else Path(ctx.dataset_dir).name,
        "path": ctx.dataset_dir,
        "hash": ctx.fingerprint,
        "test_samples": int(len(ctx.y_test)),
        "clips": {k: v for k, v in counts.as_dict().items() if k != "examples"},
    })
    return ctx


@pytest.fixture(scope="session")
def variant(variant_id: str, context: Any) -> Any:
    """The made variant (harness.model.variants.Variant): .model, .plain_model(), .metrics, .spec."""
    from harness.model import variants

    return _harness_call(f"variant {variant_id}", variants.make, variant_id, context=context)


@pytest.fixture(scope="session")
def host_model(variant: Any) -> Any:
    """The variant's PyTorch model for host evaluation (eval mode)."""
    return variant.model.eval()


@pytest.fixture(scope="session")
def test_set(context: Any) -> tuple[np.ndarray, np.ndarray]:
    """(x int8 [N,49,40], y int64 [N]) of the test split."""
    return context.x_test, context.y_test


@pytest.fixture(scope="session")
def device_samples(request: pytest.FixtureRequest, test_set: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random subset of --device-samples test inputs (all of them if N >= the test set)."""
    x, y = test_set
    n = request.config.getoption("kws_device_samples")
    if n >= len(x):
        return x, y
    idx = np.sort(np.random.default_rng(0).choice(len(x), size=n, replace=False))
    return x[idx], y[idx]


@pytest.fixture(scope="session")
def tflite_path(variant_id: str, dataset_dir: str | None, variant: Any) -> Path:
    """The variant's full-int8 .tflite (cached by content hash)."""
    from harness.bench import pipeline

    return Path(_harness_call(f"export {variant_id}", pipeline.variant_tflite, variant_id, dataset_dir=dataset_dir))


# --- firmware and board ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def board_spec(kws: Any) -> Any:
    """This worker's board as a harness.device.boards.BoardSpec (what and where). A socket:// board
    that does not name its kind (``?board=``) is asked once with HELLO, so the right firmware is built."""
    from harness.device import boards

    spec = _harness_call(f"--device {kws.device}", boards.resolve, kws.device)[0]
    return _harness_call(f"--device {kws.device}", boards.identify, spec)


@pytest.fixture(scope="session")
def firmware_build(variant_id: str, tflite_path: Path, board_spec: Any, kws: Any) -> Any:
    """The PlatformIO build of this variant for the board in use (harness.device.firmware.Build, cached)."""
    from harness.device import firmware

    return _harness_call(f"firmware build of {variant_id}", firmware.build, tflite_path, env=board_spec.env,
                         backend=kws.backend, model_id=variant_id, variant=variant_id)


@pytest.fixture(scope="session")
def board(variant_id: str, firmware_build: Any, board_spec: Any, kws: Any, results_store: Any) -> Iterator[Any]:
    """A link.Board running this variant's build, verified by HELLO against the build hash: QEMU for
    --device=emu, else a real board flashed once for the variant. Stopped before the next variant."""
    from harness.device import boards

    label = board_spec.name if board_spec.kind not in ("emu", "native") else f"{board_spec.kind}-{kws.worker or 'main'}"
    cm = _harness_call(f"board {label}", boards.session, board_spec, firmware_build)
    b = _harness_call(f"board {label} for {variant_id}", cm.__enter__)
    identity = {**_identity(b.info, variant_id), **getattr(b, "where", {})}  # HELLO + place/exporter/serial
    try:
        results_store.set_device(label, identity)
        yield b
    finally:
        try:
            results_store.set_device(label, {**identity, "link": _link_stats(label, variant_id, b.stats)})
        finally:
            cm.__exit__(None, None, None)


def _identity(hello: Any, variant_id: str) -> dict[str, Any]:
    from dataclasses import asdict

    info = asdict(hello)
    info["last_variant"] = variant_id
    return info


_LINK_TOTALS: dict[str, dict[str, Any]] = {}  # board label -> link statistics of this run so far


def _link_stats(label: str, variant_id: str, stats: dict[str, int]) -> dict[str, Any]:
    """How hard the link worked in this run (devices/<label>.json "link"): requests, retries (attempts
    sent again after a corrupted, lost or unanswered frame), reconnects, totals and per variant."""
    total = _LINK_TOTALS.setdefault(label, {"requests": 0, "retries": 0, "reconnects": 0, "by_variant": {}})
    for key in ("requests", "retries", "reconnects"):
        total[key] += int(stats.get(key, 0))
    total["by_variant"][variant_id] = {k: int(stats.get(k, 0)) for k in ("requests", "retries", "reconnects")}
    return total


@pytest.fixture(scope="session")
def audio_clips(context: Any) -> list[tuple[np.ndarray, int]]:
    """A few 1 s int16 test clips with their labels (keywords first), for INFER_AUDIO timing."""
    from harness.data import audio, dataset

    splits = _harness_call("data set", dataset.load_splits, context.dataset_dir)
    picked = [s for s in splits.test if s.path is not None and s.label in ("yes", "no")][:AUDIO_CLIPS]
    return [(audio.fit_clip(audio.read_wav(s.path)), s.label_index) for s in picked]


@pytest.fixture(scope="session")
def host_latency_ms(variant_id: str, variant: Any, kws: Any) -> float:
    """Host batch-1 CPU latency of this variant: the value test_host measured in this session, else
    measured now (same library function)."""
    row = kws.measured.get((variant_id, "host_latency_cpu"))
    if row is not None:
        return row.value
    from harness.model import stats

    return stats.host_latency(variant.plain_model(), "cpu", repeats=50, warmup=5, threads=1)["median_ms"]


# Order of the suites within one variant: cheap checks first, the board next, the regression last
# (it compares everything measured). pytest's session-scope grouping by variant keeps this order.
_SUITE_ORDER = {"test_model_budgets.py": 0, "test_host.py": 1, "test_device.py": 2, "test_regression.py": 9}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: _SUITE_ORDER.get(item.path.name, 5))
