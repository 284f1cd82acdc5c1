"""The cached float32 baseline on the small synthetic set: learns, caches, rebuilds a corrupt checkpoint."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.model import train
from harness.errors import HarnessError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def small_dir(small_dataset) -> Path:
    """The small synthetic set (session fixture of tests/conftest.py)."""
    return Path(small_dataset)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """Baseline artifacts in a fresh folder (features and data stay in the shared cache)."""
    def fake_artifact_dir(kind, key):
        d = tmp_path / kind / key
        d.mkdir(parents=True, exist_ok=True)
        return d

    monkeypatch.setattr(train, "artifact_dir", fake_artifact_dir)
    return tmp_path


def test_baseline_beats_chance_on_small_set(small_dir, isolated):
    from harness.data import dataset, features
    from harness.model.evaluate import evaluate

    model, info = train.baseline(small_dir, epochs=20, progress=False)
    splits = dataset.load_splits(small_dir)
    xs, ys = zip(*(features.split_features(splits, n, progress=False) for n in ("validation", "test")))
    res = evaluate(model, np.concatenate(xs), np.concatenate(ys))
    assert res.total_samples >= 40
    assert res.accuracy > 0.5  # 4 classes: chance 0.25, majority class ~0.3
    assert info["history"]["train_loss"][-1] < info["history"]["train_loss"][0]
    d = Path(info["dir"])
    assert (d / "model.pt").is_file() and (d / "history.json").is_file()
    assert json.loads((d / "history.json").read_text())["val_acc"] == info["history"]["val_acc"]


def test_second_call_is_a_cache_hit(small_dir, isolated, monkeypatch):
    m1, i1 = train.baseline(small_dir, epochs=2, progress=False)
    assert i1["trained"] is True

    def no_training(*a, **k):
        raise AssertionError("fit called on a cache hit")

    monkeypatch.setattr(train, "fit", no_training)
    m2, i2 = train.baseline(small_dir, epochs=2, progress=False)
    assert i2["trained"] is False and i2["key"] == i1["key"]
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    assert not m2.training


def test_config_change_changes_the_key(small_dir):
    from harness.data import dataset

    fp = dataset.load_splits(small_dir).fingerprint
    keys = {train.baseline_key(fp, 50, 1e-3, 0), train.baseline_key(fp, 49, 1e-3, 0),
            train.baseline_key(fp, 50, 1e-4, 0), train.baseline_key(fp, 50, 1e-3, 1)}
    assert len(keys) == 4


def test_training_is_deterministic_for_a_seed(small_dir, isolated, tmp_path):
    m1, i1 = train.baseline(small_dir, epochs=2, seed=5, progress=False)
    for p in Path(i1["dir"]).iterdir():
        p.unlink()
    m2, i2 = train.baseline(small_dir, epochs=2, seed=5, progress=False)
    assert i2["trained"] is True
    assert i1["history"]["train_loss"] == i2["history"]["train_loss"]
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])


def test_corrupt_checkpoint_is_logged_and_rebuilt(small_dir, isolated, caplog):
    _, info = train.baseline(small_dir, epochs=2, progress=False)
    ckpt = Path(info["dir"]) / "model.pt"
    ckpt.write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="harness.model.train"):
        model, info2 = train.baseline(small_dir, epochs=2, progress=False)
    assert info2["trained"] is True
    assert "unreadable" in caplog.text and str(ckpt) in caplog.text
    torch.load(ckpt, weights_only=True)  # valid again


def test_no_cached_baseline_without_training_is_a_harness_error(small_dir, isolated):
    with pytest.raises(HarnessError, match="python -m harness train"):
        train.baseline(small_dir, epochs=3, progress=False, allow_train=False)


def test_load_checkpoint_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(HarnessError, match="bad.pt"):
        train.load_checkpoint(bad)
    with pytest.raises(HarnessError, match="not found"):
        train.load_checkpoint(tmp_path / "missing.pt")
    from models.tinyconv import TinyConv

    good = tmp_path / "c4.pt"
    torch.save(TinyConv(channels=4).state_dict(), good)
    assert train.load_checkpoint(good).channels == 4


def test_train_and_evaluate_cli_json(small_dir, isolated, capsys):
    from harness.cli import main

    assert main(["train", "--dataset", str(small_dir), "--epochs", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for split in ("validation", "test"):
        rows = out[split]["per_class"]
        assert [r["class"] for r in rows] == ["silence", "unknown", "yes", "no"]
        assert sum(r["samples"] for r in rows) == out[split]["total"]["samples"]
        assert sum(r["correct"] for r in rows) == out[split]["total"]["correct"]
        assert np.array(out[split]["confusion"]).sum() == out[split]["total"]["samples"]
    fa = out["confusers"]
    assert fa["clips"] > 0 and fa["accepted"] == fa["as_yes"] + fa["as_no"]

    ckpt = Path(out["dir"]) / "model.pt"
    assert main(["evaluate", "--dataset", str(small_dir), "--checkpoint", str(ckpt), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["test"] == out["test"]


def test_plots_training_from_history(tmp_path):
    from harness.cli import main

    hist = {"epoch": [1, 2, 3], "train_loss": [1.3, 0.9, 0.7], "val_acc": [0.4, 0.6, 0.7], "best_epoch": 3}
    (tmp_path / "h.json").write_text(json.dumps(hist))
    assert main(["plots", "training", "--history", str(tmp_path / "h.json"), "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "fig6_training_curve.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "bad.json").write_text("{}")
    assert main(["plots", "training", "--history", str(tmp_path / "bad.json")]) == 2


def test_crossval_cli_trains_one_model_per_engine(small_dir, isolated, capsys):
    """`data crossval`: one baseline per left-out engine, each tested on that engine's clips only."""
    from harness.cli import main

    assert main(["data", "crossval", str(small_dir), "--epochs", "2", "--engine", "flite", "--engine", "festival",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["engines"]) == ["flite", "festival"]
    accs, nos = [], []
    for engine, r in out["engines"].items():
        test = r["test"]
        assert np.array(test["confusion"]).sum() == test["total"]["samples"]
        accs.append(test["total"]["accuracy"])
        nos.append(test["per_class"][3]["accuracy"])
        assert r["confusers"]["clips"] == sum(w["clips"] for w in r["confusers"]["per_word"].values())
    assert out["mean_accuracy"] == pytest.approx(np.mean(accs)) and out["min_accuracy"] == min(accs)
    assert out["mean_no"] == pytest.approx(np.mean(nos))
    assert len({r["dir"] for r in out["engines"].values()}) == 2  # separate, cached models
    assert main(["data", "crossval", str(small_dir), "--epochs", "2", "--engine", "pico"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no engine pico in ") and "\n" not in err


def test_crossval_seeds_report_the_training_draw(small_dir, isolated, capsys):
    """`--seeds 2`: a second training seed per engine; seed +0 is the table's model, and the spread
    says how much of a difference is the training draw."""
    from harness.cli import main

    assert main(["data", "crossval", str(small_dir), "--epochs", "2", "--engine", "flite", "--seeds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    acc = out["seeds"]["flite"]["accuracy"]
    assert len(acc) == 2 and acc[0] == out["engines"]["flite"]["test"]["total"]["accuracy"]
    assert out["mean_accuracy_by_seed"] == acc and len(out["seeds"]["flite"]["no"]) == 2
    assert main(["data", "crossval", str(small_dir), "--epochs", "2", "--engine", "flite", "--seeds", "2"]) == 0
    assert "accuracy over 2 training seeds" in capsys.readouterr().out
    assert main(["data", "crossval", str(small_dir), "--epochs", "2", "--seeds", "0"]) == 2
    assert "--seeds must be >= 1, got 0" in capsys.readouterr().err


def test_augmentation_is_part_of_the_baseline_key(small_dir):
    splits = __import__("harness.data.dataset", fromlist=["load_splits"]).load_splits(small_dir)
    plain = train.baseline_key(splits.fingerprint, 2, 1e-3, 0)
    assert train.baseline_key(splits.fingerprint, 2, 1e-3, 0, train.Augment()) == plain
    assert train.baseline_key(splits.fingerprint, 2, 1e-3, 0, train.SPEC_AUGMENT) != plain


def test_training_gives_the_same_weights_whatever_the_callers_thread_count():
    """fit() trains on one thread: with two, float sums reduce in another order and the weights
    differ (the default baseline trained in a pytest-xdist worker scored 0.894, on one thread 0.898)."""
    import torch

    from harness.model import train
    from models.tinyconv import TinyConv

    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (200, 49, 40), dtype=np.int8)
    y = rng.integers(0, 4, 200)
    weights = []
    before = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = TinyConv()
        train.fit(model, x, y, x[:50], y[:50], epochs=2, seed=0, progress=False)
        assert torch.get_num_threads() == threads  # the caller's count is restored
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.set_num_threads(before)
    assert torch.equal(weights[0], weights[1])
