"""Engine choice and the held-out-engine set (``data synth --engines``, ``data heldout``)."""

from __future__ import annotations

import json

import pytest
import torch

from harness.cli import main
from harness.data import dataset, synth
from harness.errors import HarnessError

TINY_HELDOUT = {"speakers": {"train": 4, "validation": 1, "test": 1}, "reps": 1, "unknown_per_word": 1,
                "confuser_per_word": 1, "background_s": 2}


def test_default_engines_leave_gnuspeech_out_and_engines_choose():
    default = {j.speaker.engine for j in synth.plan("small", 0)}
    assert default == set(synth.DEFAULT_ENGINES) and "gnuspeech" not in default
    only = synth.plan("small", 0, engines=("gnuspeech",))
    assert {j.speaker.engine for j in only} == {"gnuspeech"}
    assert len({j.speaker.id for j in only}) == sum(synth.SETTINGS["sizes"]["small"]["speakers"].values())
    with pytest.raises(HarnessError, match=r"unknown text-to-speech engine\(s\) espeak \(choose from espeak-ng"):
        synth.check_engines(("espeak",))


def test_heldout_size_puts_every_word_clip_in_test(tmp_path, monkeypatch):
    monkeypatch.setitem(synth.SETTINGS["sizes"], "heldout", TINY_HELDOUT)
    out = synth.generate(tmp_path / "h", size="heldout", engines=("gnuspeech",), progress=False)
    listed = (out / "testing_list.txt").read_text().split()
    on_disk = sorted(f"{p.parent.name}/{p.name}" for p in out.glob("*/*.wav") if p.parent.name != "_background_noise_")
    assert listed == on_disk and len(listed) == 6 * 2 + len(synth.UNKNOWN_WORDS)
    splits = dataset.load_splits(out)
    assert not splits.train and not splits.validation
    assert splits.counts()["test"]["yes"] == splits.counts()["test"]["no"] == 6
    assert len(splits.confusers) == len(synth.CONFUSER_WORDS)
    assert json.loads((out / "synth.json").read_text())["engines"] == ["gnuspeech"]


def test_heldout_command_scores_a_checkpoint(tmp_path, monkeypatch, capsys):
    """End to end: the cached held-out set is spoken once, the given weights are scored on every clip."""
    from models.tinyconv import TinyConv

    monkeypatch.setenv("KWS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(synth.SETTINGS["sizes"], "heldout", TINY_HELDOUT)
    pt = tmp_path / "m.pt"
    torch.manual_seed(0)
    torch.save(TinyConv().state_dict(), pt)
    assert main(["data", "heldout", "--checkpoint", str(pt), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["engine"] == "gnuspeech" and out["model"] == str(pt)
    confusion = out["test"]["confusion"]
    assert sum(map(sum, confusion)) == 12 + 2 * 4  # 6 yes, 6 no, silence and unknown ceil(33 %) each
    assert out["confusers"]["clips"] == len(synth.CONFUSER_WORDS)
    assert main(["data", "heldout", "--engine", "flite", "--checkpoint", str(pt)]) == 2
    assert "flite speaks the default set" in capsys.readouterr().err
