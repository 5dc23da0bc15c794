"""Metrics: accuracy, the confusion matrix, macro precision/recall/F1, and accumulation over batches."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch as tt
from tinytorch.core.metrics import (
    F1Score,
    Accuracy,
    Precision,
    Recall,
    accuracy,
    compute_confusion_matrix,
    precision_recall_f1,
    predicted_classes,
)


@st.composite
def classifications(draw, max_n=40, max_c=5):
    """(scores (N, C), labels (N,)) with at least one sample and two classes."""
    n, c = draw(st.integers(1, max_n)), draw(st.integers(2, max_c))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c)), rng.integers(0, c, n)


def _per_class(truth, pred, classes):
    """Precision, recall, F1 per class by counting, the way one would by hand."""
    rows = []
    for k in classes:
        tp = np.sum((pred == k) & (truth == k))
        fp = np.sum((pred == k) & (truth != k))
        fn = np.sum((pred != k) & (truth == k))
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        rows.append((p, r, 2 * p * r / (p + r) if p + r else 0.0))
    return np.array(rows).T


@settings(max_examples=30)
@given(classifications())
def test_confusion_matrix_and_scores_count_correctly(case):
    scores, labels = case
    pred = scores.argmax(axis=1)
    c = scores.shape[1]
    m = compute_confusion_matrix(labels, pred, c)
    assert m.shape == (c, c) and m.dtype == np.int64 and m.sum() == len(labels)
    for i in range(c):
        for j in range(c):
            assert m[i, j] == np.sum((labels == i) & (pred == j))
    assert accuracy(scores, labels) == pytest.approx(np.trace(m) / len(labels))
    np.testing.assert_allclose(np.array(precision_recall_f1(m)), _per_class(labels, pred, range(c)))


@settings(max_examples=20)
@given(classifications(), st.integers(1, 7))
def test_metrics_accumulated_over_batches_equal_the_whole(case, batch):
    scores, labels = case
    metrics = [Accuracy(), Precision(), Recall(), F1Score()]
    for start in range(0, len(labels), batch):
        for m in metrics:
            m.update(tt.tensor(scores[start : start + batch]), tt.tensor(labels[start : start + batch]))
    pred = scores.argmax(axis=1)
    present = np.union1d(labels, pred)  # macro average over the classes that occur, as scikit-learn does
    p, r, f = _per_class(labels, pred, present).mean(axis=1)
    assert [m.compute() for m in metrics] == pytest.approx([np.mean(pred == labels), p, r, f])
    assert [m.name for m in metrics] == ["accuracy", "precision", "recall", "f1"]


def test_calling_a_metric_scores_one_batch_without_touching_its_totals():
    acc = Accuracy()
    acc.update(np.array([[0.0, 1.0]]), np.array([0]))
    assert acc(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([1, 0])) == 1.0
    assert acc.compute() == 0.0 and acc.total == 1
    acc.reset()
    assert acc.compute() == 0.0 and acc.total == 0


def test_predictions_may_be_classes_or_binary_probabilities():
    np.testing.assert_array_equal(predicted_classes(np.array([2, 0, 1])), [2, 0, 1])
    np.testing.assert_array_equal(predicted_classes(np.array([[0.2], [0.7], [0.5]])), [0, 1, 1])
    assert Accuracy(threshold=0.0)(np.array([-1.0, 2.0, 0.5]), np.array([[0], [1], [0]])) == pytest.approx(2 / 3)
    assert accuracy(np.array([1, 1, 0]), np.array([1.0, 0.0, 0.0])) == pytest.approx(2 / 3)
    assert accuracy(np.zeros((0, 3)), np.zeros(0, dtype=np.int64)) == 0.0


def test_confusion_matrix_grows_with_unseen_classes_and_defaults_its_size():
    assert compute_confusion_matrix([0, 2], [2, 2]).tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 1]]
    f1 = F1Score()
    f1.update(np.array([0, 1]), np.array([0, 1]))
    f1.update(np.array([3]), np.array([2]))
    assert f1.confusion.shape == (4, 4) and f1.compute() == pytest.approx(0.5)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: accuracy(np.zeros((4, 3)), np.zeros(3, dtype=int)),
            r"4 predictions need labels of shape \(4,\), got shape \(3,\)",
        ),
        (
            lambda: accuracy(np.zeros((2, 3, 4)), np.zeros(2, dtype=int)),
            r"expected scores \(N, C\) or predictions \(N,\)",
        ),
        (lambda: accuracy(np.array([0, 1]), np.array([0.5, 1.0])), "labels must be whole class numbers"),
        (
            lambda: compute_confusion_matrix([0, 3], [0, 1], num_classes=3),
            r"classes must be in \[0, 3\), got classes up to 3",
        ),
        (lambda: compute_confusion_matrix([0, 1], [0]), "y_true has 2 entries but y_pred has 1"),
    ],
)
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
