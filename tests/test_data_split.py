"""The split follows TF speech_commands: hash rule, lists, 33 % silence/unknown (ceil), seeded."""

from __future__ import annotations

import hashlib
import json
import math
import re

import pytest

from harness.data import dataset
from harness.cli import main


def _tf_which_set(filename: str, validation_percentage: float = 10, testing_percentage: float = 10) -> str:
    """TF's input_data.which_set, transcribed independently as the oracle."""
    base_name = filename.rsplit("/", 1)[-1]
    hash_name = re.sub(r"_nohash_.*$", "", base_name)
    hash_name_hashed = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    percentage_hash = (int(hash_name_hashed, 16) % ((2**27 - 1) + 1)) * (100.0 / (2**27 - 1))
    if percentage_hash < validation_percentage:
        return "validation"
    if percentage_hash < (testing_percentage + validation_percentage):
        return "testing"
    return "training"


@pytest.mark.parametrize("name", [
    "0a7c2a8d_nohash_0.wav", "0a7c2a8d_nohash_4.wav", "fffcabd1_nohash_0.wav", "3cfc6b3a_nohash_1.wav",
    "c50f55b8_nohash_2.wav", "b9f46737_nohash_0.wav", "1e02ffc5_nohash_0.wav", "a1b2c3d4_nohash_0.wav",
])
def test_which_set_matches_tf_formula(name):
    assert dataset.which_set(name) == _tf_which_set(name)


def test_which_set_ignores_repetition_suffix_and_covers_all_sets():
    assert dataset.speaker_of("yes/0a7c2a8d_nohash_3.wav") == "0a7c2a8d"
    names = [f"{i:08x}_nohash_0.wav" for i in range(400)]
    sets = [dataset.which_set(n) for n in names]
    assert {dataset.which_set(n.replace("_0.wav", "_4.wav")) for n in names[:20]} <= set(sets)
    assert all(dataset.which_set(n.replace("_0.wav", "_4.wav")) == s for n, s in zip(names, sets))
    frac = {s: sets.count(s) / len(sets) for s in ("training", "validation", "testing")}
    assert 0.7 < frac["training"] < 0.9 and 0.04 < frac["validation"] < 0.17 and 0.04 < frac["testing"] < 0.17


def test_small_split_proportions(small_splits):
    counts = small_splits.counts()
    for name in dataset.SPLITS:
        c = counts[name]
        kw = c["yes"] + c["no"]
        assert kw > 0
        assert c["silence"] == math.ceil(kw * 0.33)
        assert c["unknown"] == math.ceil(kw * 0.33)
        assert c["total"] == kw + c["silence"] + c["unknown"]
    assert counts["confusers"]["total"] > 0
    assert all(s.label == "unknown" for s in small_splits.confusers)
    assert {s.word for s in small_splits.confusers} >= {"finesse", "elbow", "yet", "guess", "less", "know", "nose"}


def test_speakers_disjoint_across_splits(small_splits):
    speakers = {name: {s.speaker for s in small_splits.split(name) if s.path is not None} for name in dataset.SPLITS}
    assert not speakers["train"] & speakers["validation"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["validation"] & speakers["test"]
    for name in dataset.SPLITS:
        for s in small_splits.split(name):
            if s.path is not None:
                assert dataset.which_set(s.path.name) == {"train": "training", "test": "testing"}.get(name, name)


def test_split_is_deterministic_for_a_seed(small_dataset):
    a, b = dataset.load_splits(small_dataset, seed=1), dataset.load_splits(small_dataset, seed=1)
    c = dataset.load_splits(small_dataset, seed=2)
    assert a.train == b.train and a.test == b.test and a.fingerprint == b.fingerprint
    assert a.counts() == c.counts()
    assert a.train != c.train  # order (and unknown choice) depends on the seed
    assert a.fingerprint != c.fingerprint


def _touch(path, data=b"x"):
    """A non-empty placeholder clip (the split never reads audio); hard links keep 14k files cheap."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    seed = path.parents[1] / ".seed.wav"
    if not seed.exists():
        seed.write_bytes(data)
    os.link(seed, path)


def test_lists_override_hash_rule_and_give_paper_counts(tmp_path):
    """A v0.02-shaped directory with the per-split keyword counts of the real set -> 10,556/1,333/1,368."""
    per_split = {"yes": (3228, 397, 419), "no": (3130, 406, 405), "cat": (2099, 265, 272)}
    val, test = [], []
    for word, (tr, va, te) in per_split.items():
        for split, n in (("train", tr), ("val", va), ("test", te)):
            for i in range(n):
                rel = f"{word}/{split}{i:05d}_nohash_0.wav"
                _touch(tmp_path / rel)
                (val if split == "val" else test if split == "test" else []).append(rel)
    (tmp_path / "validation_list.txt").write_text("\n".join(val) + "\n")
    (tmp_path / "testing_list.txt").write_text("\n".join(test) + "\n")
    splits = dataset.load_splits(tmp_path)
    counts = splits.counts()
    assert [counts[s]["total"] for s in dataset.SPLITS] == [10556, 1333, 1368]
    assert counts["train"] == {"silence": 2099, "unknown": 2099, "yes": 3228, "no": 3130, "total": 10556}
    assert counts["validation"]["silence"] == counts["validation"]["unknown"] == 265
    assert counts["test"]["silence"] == counts["test"]["unknown"] == 272
    assert all(s.path.name.startswith("val") for s in splits.validation if s.path is not None)
    assert all(s.path.name.startswith("test") for s in splits.test if s.path is not None)


def test_hash_rule_used_without_lists(tmp_path):
    names = [f"{i:08x}_nohash_0.wav" for i in range(60)]
    for n in names:
        _touch(tmp_path / "yes" / n)
        _touch(tmp_path / "no" / n)
        _touch(tmp_path / "bed" / n)
    splits = dataset.load_splits(tmp_path)
    want = {s: sum(_tf_which_set(n) == t for n in names) * 2 for s, t in
            (("train", "training"), ("validation", "validation"), ("test", "testing"))}
    got = {s: splits.counts()[s]["yes"] + splits.counts()[s]["no"] for s in dataset.SPLITS}
    assert got == want
    assert splits.background == []  # no _background_noise_ folder: silence will be all zeros


def test_cli_split_json(small_dataset, capsys):
    assert main(["data", "split", str(small_dataset), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["train"]["total"] == out["train"]["yes"] + out["train"]["no"] + out["train"]["silence"] + out["train"]["unknown"]
    assert out["dataset"] == str(small_dataset.resolve())


def test_holdout_engine_split(small_dataset, small_splits):
    """Cross-engine split: train/validation never hear the engine left out; test is all of it."""
    engine_of = dataset.speaker_engines(small_dataset)
    for held in sorted(set(engine_of.values())):
        s = dataset.load_splits(small_dataset, holdout_engine=held)
        assert s.holdout_engine == held and s.fingerprint != small_splits.fingerprint
        for name in ("train", "validation"):
            assert all(engine_of[x.speaker] != held for x in s.split(name) if x.path is not None)
        test = [x for x in s.test if x.path is not None]
        assert test and all(engine_of[x.speaker] == held for x in test)
        n_kw = sum(x.label in dataset.KEYWORDS for x in s.test)
        # every keyword clip of the engine, from all three hash splits
        on_disk = [p for k in dataset.KEYWORDS for p in (small_dataset / k).glob("*.wav")
                   if engine_of[dataset.speaker_of(p.name)] == held]
        assert n_kw == len(on_disk)
        counts = s.counts()["test"]
        assert counts["silence"] == math.ceil(n_kw * 0.33)
        assert counts["unknown"] <= math.ceil(n_kw * 0.33)
        assert all(engine_of[c.speaker] == held for c in s.confusers)
        assert "babble.wav" not in s.background_names


def test_holdout_engine_errors(small_dataset, tmp_path):
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match=r"no engine 'pico' in .*engines: espeak-ng, festival, flite"):
        dataset.load_splits(small_dataset, holdout_engine="pico")
    (tmp_path / "yes").mkdir()
    (tmp_path / "no").mkdir()
    for w in ("yes", "no"):
        (tmp_path / w / "a_nohash_0.wav").write_bytes(b"RIFF")
    with pytest.raises(HarnessError, match="has no synth.json"):
        dataset.load_splits(tmp_path, holdout_engine="flite")
    (tmp_path / "synth.json").write_text("{}")
    with pytest.raises(HarnessError, match="no speaker table"):
        dataset.load_splits(tmp_path, holdout_engine="flite")


def test_cli_split_by_engine_json(small_dataset, capsys):
    assert main(["data", "split", str(small_dataset), "--by", "engine", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for split in ("train", "validation", "test"):
        per = out["by_engine"][split]
        assert set(per) == {"-", "espeak-ng", "flite", "festival"}
        assert sum(r["total"] for r in per.values()) == out[split]["total"]
        assert per["-"]["total"] == out[split]["silence"]
    assert main(["data", "split", str(small_dataset), "--by", "engine", "--holdout-engine", "flite", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["by_engine"]["test"]) == {"-", "flite"}
    assert "flite" not in out["by_engine"]["train"] and "flite" not in out["by_engine"]["validation"]
