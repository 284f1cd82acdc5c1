"""``python -m harness device infer`` exits non-zero when the board's scores differ from the TFLM
reference (it used to print "0/20 identical" and exit 0). The board and the reference are stand-ins
here: what is tested is the command's verdict on what they return."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np
import pytest

from harness.cli import main


@pytest.mark.parametrize("board_offset,code", [(0, 0), (1, 1)])
def test_device_infer_exit_code_follows_the_reference(monkeypatch, capsys, tmp_path, board_offset, code):
    from harness.commands import device as cmd
    from harness.device import boards, reference

    info = SimpleNamespace(board="emu_m4", firmware="t", build_hash="h", model_id="m", backend="aot", clock_hz=25_000_000,
                           timer_unit="instructions", timer_source="TIMER0", input_size=1960)

    class Board:
        def infer_features(self, x):
            scores = np.arange(4, dtype=np.int64) + int(x.astype(np.int64).sum() % 7) + board_offset
            return SimpleNamespace(scores=scores.astype(np.int8), network=1000)

    board = Board()
    board.info = info
    board.stats = {"requests": 5, "retries": 0, "reconnects": 0}  # link.Board's counters
    monkeypatch.setattr(boards, "resolve", lambda dev: [SimpleNamespace(kind="emu", env="emu_m4", name="emu")])
    monkeypatch.setattr(boards, "session", lambda spec, build, flash=True: contextlib.nullcontext(board))
    monkeypatch.setattr(cmd, "_build_for", lambda args, env: SimpleNamespace(tflite=tmp_path / "m.tflite", variant=None))
    monkeypatch.setattr(reference, "predict", lambda path, x: np.stack(
        [np.arange(4) + int(xi.astype(np.int64).sum() % 7) for xi in x]).astype(np.int8))
    assert main(["device", "infer", "--tflite", str(tmp_path / "m.tflite"), "--count", "5", "--random"]) == code
    out = capsys.readouterr()
    assert f"{5 if code == 0 else 0}/5 identical to the TFLM reference" in out.out
    if code:
        assert "error: 5/5 inferences differ from the TFLM reference" in out.err
    assert main(["device", "infer", "--tflite", "x", "--count", "5", "--random", "--json"]) == code
