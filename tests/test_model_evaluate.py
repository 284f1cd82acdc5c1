"""Evaluation tables: counts per class add up, confusion matrix orientation, false accepts."""

import numpy as np
import pytest
import torch

from harness.errors import HarnessError
from harness.model.evaluate import evaluate, false_accept_rate, predict
from models.tinyconv import CLASSES, TinyConv


def _fixed(pred):
    return lambda x: np.asarray(pred)


def test_tables_sum_and_confusion_orientation():
    y = np.array([0, 0, 1, 2, 2, 2, 3, 3])
    p = np.array([0, 1, 1, 2, 2, 3, 3, 2])
    res = evaluate(_fixed(p), np.zeros((8, 49, 40), np.int8), y)
    rows = res.per_class()
    assert [r["class"] for r in rows] == list(CLASSES)
    assert [r["samples"] for r in rows] == [2, 1, 3, 2]
    assert [r["correct"] for r in rows] == [1, 1, 2, 1]
    assert sum(r["samples"] for r in rows) == res.total_samples == 8
    assert sum(r["correct"] for r in rows) == res.total_correct == 5
    assert res.accuracy == pytest.approx(5 / 8)
    assert rows[2]["accuracy"] == pytest.approx(2 / 3)
    assert res.confusion[0, 1] == 1 and res.confusion[1, 0] == 0  # rows true, columns predicted
    assert res.confusion[2, 3] == 1 and res.confusion[3, 2] == 1
    d = res.to_dict()
    assert d["total"] == {"samples": 8, "correct": 5, "accuracy": 5 / 8}


def test_scores_from_predict_fn_take_argmax():
    scores = np.array([[0, 5, 1, 1], [9, 0, 0, 0]], dtype=np.int8)
    assert list(predict(lambda x: scores, np.zeros((2, 49, 40), np.int8))) == [1, 0]


def test_rich_table_has_total_row():
    from rich.console import Console

    res = evaluate(_fixed([2, 3]), np.zeros((2, 49, 40)), np.array([2, 2]))
    console = Console(record=True, width=100)
    console.print(res.table("test"))
    text = console.export_text()
    assert "total" in text and "0.500" in text and "#samples" in text


def test_model_predictions_are_eval_mode_and_deterministic():
    torch.manual_seed(0)
    m = TinyConv().train()
    x = np.random.default_rng(0).normal(size=(10, 49, 40)).astype(np.float32)
    p1, p2 = predict(m, x), predict(m, x)
    assert (p1 == p2).all()  # dropout off during evaluation
    assert m.training  # and the mode restored


def test_false_accept_rate_counts_yes_and_no():
    fa = false_accept_rate(_fixed([2, 3, 3, 1, 0]), np.zeros((5, 49, 40), np.int8))
    assert fa == {"clips": 5, "as_yes": 1, "as_no": 2, "accepted": 3, "rate": 0.6}


def test_length_mismatch_is_a_harness_error():
    with pytest.raises(HarnessError, match="labels"):
        evaluate(_fixed([0]), np.zeros((1, 49, 40)), np.array([0, 1]))


def test_out_of_range_prediction_is_a_harness_error():
    with pytest.raises(HarnessError, match="outside"):
        evaluate(_fixed([7]), np.zeros((1, 49, 40)), np.array([0]))


def test_false_accepts_per_confuser_word():
    from harness.model.evaluate import false_accept_rate

    pred = np.array([2, 2, 1, 3, 0, 1])  # yes yes unknown no silence unknown
    words = ["yet", "yet", "yet", "know", "know", "elbow"]
    fa = false_accept_rate(lambda x: pred, np.zeros((6, 49, 40), np.int8), words=words)
    assert fa["accepted"] == 3 and fa["rate"] == 0.5
    assert fa["per_word"]["yet"] == {"clips": 3, "accepted": 2, "as_yes": 2, "as_no": 0, "rate": 2 / 3}
    assert fa["per_word"]["know"]["as_no"] == 1 and fa["per_word"]["elbow"]["rate"] == 0.0
    with pytest.raises(HarnessError, match="words for"):
        false_accept_rate(lambda x: pred, np.zeros((6, 49, 40), np.int8), words=words[:2])
