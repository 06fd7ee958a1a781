"""Metrics and thresholds against hand-computed values."""
import numpy as np
import pytest

from attrnet.core.schema import Schema, binary, categorical
from attrnet.train.metrics import compute_metrics, top_k_recall
from attrnet.core.model_card import validate_thresholds
from attrnet.train.thresholds import best_threshold, choose_thresholds

N = np.nan


@pytest.fixture
def case():
    schema = Schema((binary("a"), binary("b"), categorical("c", ["x", "y", "z"])))
    probs = np.array([[.9, .2, .7, .2, .1],
                      [.4, .6, .1, .8, .1],
                      [.6, .7, .2, .2, .6],
                      [.1, .3, .3, .4, .3]], np.float32)
    labels = np.array([[1, 0, 1, 0, 0],
                       [1, N, 0, 1, 0],
                       [0, 1, N, N, N],
                       [0, 0, 1, 0, 0]], np.float32)
    return schema, probs, labels


def test_metrics_hand_computed(case):
    schema, probs, labels = case
    m = compute_metrics(probs, labels, schema, [0.5, 0.5, None, None, None])
    assert m["per_attribute"] == pytest.approx({"a": 0.5, "b": 1.0, "c": 2 / 3})
    assert m["mean_accuracy"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    # per column (TPR+TNR)/2: a .5, b 1, c=x .75, c=y .75, c=z 1 (no positives: TNR only)
    assert m["mA"] == pytest.approx(0.8)
    assert m["per_column_mA"]["c=z"] == pytest.approx(1.0)
    assert m["instance_accuracy"] == pytest.approx(0.5)
    assert m["instance_precision"] == pytest.approx(0.625)
    assert m["instance_recall"] == pytest.approx(0.625)
    assert m["instance_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3 + 0) / 4)
    assert "top_k_recall" not in m


def test_thresholds_change_binary_decisions_only(case):
    schema, probs, labels = case
    m = compute_metrics(probs, labels, schema, [0.35, 0.5, 0.99, 0.99, 0.99])
    assert m["per_attribute"]["a"] == pytest.approx(0.75)  # s1 (.4) now positive
    assert m["per_attribute"]["c"] == pytest.approx(2 / 3)  # categorical: argmax, thresholds ignored


def test_attribute_without_labels_is_none():
    schema = Schema((binary("a"), binary("b")))
    m = compute_metrics(np.array([[.9, .1]]), np.array([[1, N]]), schema)
    assert m["per_attribute"] == {"a": 1.0, "b": None}
    assert m["mean_accuracy"] == 1.0


def test_top_k_recall():
    probs = np.array([[.9, .8, .1, .2], [.1, .2, .3, .9]])
    labels = np.array([[1, 0, 1, 0], [0, 0, 1, 1]], np.float32)
    # k=1: hits col0 and col3 -> 2 of 4 positives; k=2: + col2 of sample 1 -> 3 of 4
    assert top_k_recall(probs, labels, 1) == pytest.approx(0.5)
    assert top_k_recall(probs, labels, 2) == pytest.approx(0.75)
    schema = Schema(tuple(binary(f"a{i}") for i in range(4)), "deepfashion")
    assert compute_metrics(probs, labels, schema)["top_k_recall"] == {"3": pytest.approx(0.75), "5": 1.0}


def test_best_threshold_accuracy_vs_balanced():
    scores = np.array([.1, .2, .3, .6, .7, .9, .05])
    labels = np.array([0, 0, 1, 0, 0, 1, 0], np.float32)
    # accuracy: cut between .7 and .9 gets 6/7; balanced: cut between .2 and .3 gets (1 + 3/5) / 2
    assert best_threshold(scores, labels, "accuracy") == pytest.approx(0.8)
    assert best_threshold(scores, labels, "balanced") == pytest.approx(0.25)


def test_threshold_ties_prefer_the_cut_nearest_one_half():
    # separable: any cut between .3 and .7 is perfect; the midpoint .5 is chosen
    assert best_threshold(np.array([.1, .3, .7, .8]), np.array([0, 0, 1, 1.0])) == pytest.approx(0.5)


def test_choose_thresholds_per_column(case):
    schema, probs, labels = case
    t = choose_thresholds(probs, labels, schema)
    assert t[2:] == [None, None, None]
    assert best_threshold(probs[:, 0], labels[:, 0]) == t[0]
    # column a: labels 1,1,0,0 at .9,.4,.6,.1 -> best accuracy 3/4
    pred = probs[:, 0] >= t[0]
    assert (pred == labels[:, 0].astype(bool)).mean() == 0.75
    unlabeled = np.full((3, 1), np.nan, np.float32)
    assert choose_thresholds(np.ones((3, 1)), unlabeled, Schema((binary("a"),))) == [0.5]


def test_validate_thresholds(case):
    schema = case[0]
    assert validate_thresholds([0.3, None, 1, 2, 3], schema) == [0.3, 0.5, None, None, None]
    with pytest.raises(ValueError):
        validate_thresholds([0.5], schema)
