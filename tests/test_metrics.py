import numpy as np
import pytest

from cervix_hf.metrics import binary_metrics, multiclass_metrics


def test_binary_metrics_from_known_confusion():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1, 0.1, 0.2, 0.3, 0.4])
    m = binary_metrics(y, p, threshold=0.5)
    assert m["confusion_matrix"] == {"tn": 5, "fp": 1, "fn": 1, "tp": 3}
    assert m["sensitivity"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(0.75)
    assert m["specificity"] == pytest.approx(5 / 6)
    assert m["precision"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["roc_auc"] == pytest.approx(20.5 / 24)  # 18 clear wins, 2 wins and a tie for 0.2
    assert binary_metrics(y, p, threshold=0.15)["sensitivity"] == 1.0


def test_single_class_has_no_auc():
    m = binary_metrics(np.zeros(4), np.array([0.1, 0.2, 0.3, 0.9]))
    assert m["roc_auc"] is None and m["sensitivity"] is None and m["specificity"] == 0.75


def test_multiclass_metrics():
    m = multiclass_metrics(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2]), ["a", "b", "c"])
    assert m["accuracy"] == 0.75
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 0, 1], [0, 0, 2]]
