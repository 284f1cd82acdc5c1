"""Variant ids, making variants on a tiny random context, the two-layer cache and its rebuilds."""

import json

import numpy as np
import pytest
import torch

from harness.model import prune, quant, variants
from harness.errors import HarnessError
from models.tinyconv import TinyConv

torch.set_num_threads(1)


def test_all_ids_are_the_37_of_the_contract_and_parse_back():
    ids = variants.all_ids()
    assert len(ids) == 37 == len(set(ids))
    for vid in ("fp32", "ptq-sym-4", "qat-asym-2", "struct-l1-40-ft", "unstruct-l1-70-noft"):
        assert vid in ids
    for vid in ids:
        assert variants.parse(vid).id == vid


def test_parse_fields():
    s = variants.parse("qat-asym-2")
    assert (s.kind, s.bits, s.symmetric) == ("qat", 2, False)
    s = variants.parse("struct-linf-33-noft")
    assert (s.kind, s.criterion, s.percent, s.finetune, s.bits) == ("struct", "linf", 33, False, 32)
    assert s.amount == pytest.approx(0.33)
    assert variants.parse("UNSTRUCT-L1-70-FT").id == "unstruct-l1-70-ft"


@pytest.mark.parametrize("bad", ["fp16", "ptq-sym-9", "ptq-sym-1", "qat-foo-4", "struct-l3-40-ft",
                                 "unstruct-l2-40-ft", "struct-l1-140-ft", "", "prune-40"])
def test_unknown_id_lists_valid_ids(bad):
    with pytest.raises(HarnessError) as err:
        variants.parse(bad)
    msg = str(err.value)
    assert "\n" not in msg and "unknown variant id" in msg
    assert "qat-asym-2" in msg and "struct-l1-40-ft" in msg


def test_select_patterns():
    assert variants.select("qat-*") == [f"qat-{s}-{b}" for s in ("sym", "asym") for b in (2, 4, 6, 8)]
    assert variants.select("*-70-ft") == ["struct-l1-70-ft", "unstruct-l1-70-ft"]
    assert variants.select("fp32,struct-l2-33-ft") == ["fp32", "struct-l2-33-ft"]
    with pytest.raises(HarnessError, match="matches no variant"):
        variants.select("nothing-*")


@pytest.fixture()
def ctx(tmp_path, monkeypatch):
    """A tiny learnable context: 3 classes separated by a bright band at a class-specific row."""
    monkeypatch.setenv("KWS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(quant, "QAT_EPOCHS", 1)
    monkeypatch.setattr(prune, "FINETUNE_EPOCHS", 1)
    rng = np.random.default_rng(0)

    def data(n):
        y = rng.integers(0, 4, n)
        x = rng.integers(-128, -100, (n, 49, 40)).astype(np.int8)
        for i, c in enumerate(y):
            x[i, 5 + 10 * c: 9 + 10 * c] = 60
        return x, y.astype(np.int64)

    xt, yt = data(96)
    xv, yv = data(48)
    xs, ys = data(48)
    torch.manual_seed(0)
    base = TinyConv().eval()
    return variants.Context(base, "base-key", "fp", xt, yt, xv, yv, xs, ys, "tiny")


@pytest.mark.parametrize("vid", ["fp32", "ptq-asym-4", "qat-sym-2", "struct-l1-40-ft", "unstruct-l1-55-noft"])
def test_make_each_kind_and_cache_hit_on_second_make(ctx, vid):
    v = variants.make(vid, context=ctx)
    m = v.metrics
    assert 0.0 <= m["test_accuracy"] <= 1.0 and len(m["test"]["per_class"]) == 4
    assert m["host_cpu_latency"]["median_ms"] > 0
    plain = v.plain_model()
    assert isinstance(plain, TinyConv)
    if vid.startswith("struct"):
        assert plain.channels == 5 and m["stats"]["parameters"] < 16652
    if vid.startswith("unstruct"):
        assert m["stats"]["sparsity"] > 0.5
    if vid.startswith(("ptq", "qat")):
        bits = v.spec.bits
        assert m["stats"]["flash_bytes"] == pytest.approx(16652 * bits / 8, abs=1)
        assert len(torch.unique(plain.conv.weight)) <= 2 ** bits
    if vid != "fp32":
        assert v.info["built"] is True
    again = variants.make(vid, context=ctx)
    assert again.info["built"] is False and again.info["metrics_cached"] is True
    assert again.metrics == json.loads(json.dumps(v.metrics))
    sa, sb = again.model.state_dict(), v.model.state_dict()
    assert sorted(sa) == sorted(sb)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_plain_model_reproduces_quantized_model_up_to_activation_rounding(ctx):
    v = variants.make("ptq-sym-8", context=ctx)
    x = torch.from_numpy(((ctx.x_test[:8].astype(np.float32) + 128) * (666 / 256 * 10 / 256)))
    with torch.no_grad():
        a, b = v.model(x), v.plain_model()(x)
    assert torch.allclose(a, b, atol=0.05 * float(b.abs().max()) + 1e-3)


def test_corrupt_cached_weights_are_logged_and_rebuilt(ctx, caplog):
    v = variants.make("struct-l1-25-noft", context=ctx)
    from harness.cache import artifact_dir

    ckpt = artifact_dir("variant-weights", v.info["weights_key"]) / "model.pt"
    ckpt.write_bytes(b"not a checkpoint")
    with caplog.at_level("WARNING"):
        again = variants.make("struct-l1-25-noft", context=ctx)
    assert "unreadable" in caplog.text and again.info["built"] is True
    assert torch.equal(again.model.conv.weight, v.model.conv.weight)


def test_sweep_table_written(ctx, tmp_path, monkeypatch):
    monkeypatch.setattr(variants, "load_context", lambda *a, **k: ctx)
    rows = variants.sweep(["fp32", "ptq-sym-8", "unstruct-l1-10-noft"], progress=False)
    csv_path, md_path = variants.write_table(rows, tmp_path / "out")
    back = variants.read_table(csv_path)
    assert [r["variant"] for r in back] == ["fp32", "ptq-sym-8", "unstruct-l1-10-noft"]
    assert back[1]["bits"] == 8 and back[1]["flash_bytes"] == pytest.approx(16652)
    assert "| fp32 |" in md_path.read_text()


def test_weights_key_follows_recipe_and_baseline(ctx, monkeypatch):
    spec = variants.parse("qat-sym-4")
    k1 = variants.weights_key(spec, ctx)
    assert variants.weights_key(spec, ctx) == k1
    monkeypatch.setattr(quant, "QAT_EPOCHS", 7)
    k2 = variants.weights_key(spec, ctx)
    ctx.baseline_key = "another-baseline"
    assert len({k1, k2, variants.weights_key(spec, ctx)}) == 3
    assert variants.weights_key(variants.parse("qat-sym-6"), ctx) != variants.weights_key(spec, ctx)
