import numpy as np
import pytest

from cervix_hf.metrics import (
    binary_metrics,
    brier_score,
    multiclass_metrics,
    reliability,
    roc_points,
)


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


def test_brier_score_in_binary_metrics():
    y = np.array([1, 0, 1, 0])
    p = np.array([1.0, 0.0, 0.5, 0.5])
    assert brier_score(y, p) == pytest.approx(0.125)
    assert binary_metrics(y, p)["brier"] == pytest.approx(0.125)


def test_reliability_bins_and_ece():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.05, 0.15, 0.15, 0.95, 1.0, 0.55])
    r = reliability(y, p, n_bins=10)
    bins = r["bins"]
    assert [b["n"] for b in bins] == [1, 2, 0, 0, 0, 1, 0, 0, 0, 2]  # 1.0 is in the last bin
    assert bins[1]["mean_predicted"] == pytest.approx(0.15)
    assert bins[1]["fraction_positive"] == pytest.approx(0.5)
    assert bins[2]["mean_predicted"] is None
    # |0-0.05| + |1-0.30| + |0-0.55| + |2-1.95|, over 6 images
    assert r["ece"] == pytest.approx((0.05 + 0.7 + 0.55 + 0.05) / 6)
    assert reliability(y, y.astype(float))["ece"] == 0.0


def test_roc_points_run_from_origin_to_one():
    pts = roc_points(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    assert pts["fpr"][0] == 0.0 and pts["tpr"][-1] == 1.0
    assert len(pts["fpr"]) == len(pts["tpr"])
