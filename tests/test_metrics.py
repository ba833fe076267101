import numpy as np
import pytest

from cervix_hf.metrics import (
    binary_metrics,
    brier_score,
    calibration_fit,
    multiclass_metrics,
    net_benefit,
    predictive_values,
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


def test_npv_and_predictive_values_at_a_prevalence():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1, 0.1, 0.2, 0.3, 0.4])
    assert binary_metrics(y, p)["npv"] == pytest.approx(5 / 6)  # tn 5, fn 1
    # sens 0.9, spec 0.8 at prevalence 0.1: PPV = .09 / (.09 + .18), NPV = .72 / (.72 + .01)
    ppv, npv = predictive_values(0.9, 0.8, 0.1)
    assert ppv == pytest.approx(0.09 / 0.27) and npv == pytest.approx(0.72 / 0.73)
    assert predictive_values(0.0, 1.0, 0.5) == (None, 0.5)  # nothing flagged: no PPV


def test_calibration_intercept_and_slope_against_closed_forms():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.3).astype(int)
    # a constant prediction q: the offset model's intercept is logit(mean y) - logit(q)
    q = 0.5
    _, intercept = calibration_fit(y, np.full(400, q))
    ybar = y.mean()
    assert intercept[0] == pytest.approx(np.log(ybar / (1 - ybar)), abs=1e-8)
    # probabilities that are true risks: slope 1, intercept 0 (within noise); and the slope
    # is the unpenalised logistic regression of y on logit(p)
    x = rng.normal(0, 2, size=20000)
    risk = 1 / (1 + np.exp(-x))
    y = (rng.random(len(x)) < risk).astype(int)
    slope, intercept = calibration_fit(y, risk)
    assert slope[0] == pytest.approx(1.0, abs=0.05) and intercept[0] == pytest.approx(0, abs=0.05)
    too_extreme = 1 / (1 + np.exp(-2 * x))  # twice the true logit: slope 1/2
    assert calibration_fit(y, too_extreme)[0][0] == pytest.approx(0.5, abs=0.03)


def test_calibration_slope_is_undefined_when_scores_separate_the_classes():
    y = np.array([0, 0, 1, 1])
    slope, intercept = calibration_fit(y, np.array([0.1, 0.2, 0.8, 0.9]))
    assert np.isnan(slope[0]) and np.isfinite(intercept[0])
    weights = np.array([[1, 1, 1, 1], [1, 0, 0, 1], [1, 1, 0, 0]], dtype=float)
    slope, intercept = calibration_fit(y, np.array([0.1, 0.7, 0.3, 0.9]), weights)
    assert np.isfinite(slope[0])  # overlapping scores: a finite slope
    assert np.isnan(slope[1])  # the drawn cells separate
    assert np.isnan(slope[2]) and np.isnan(intercept[2])  # one class only


def test_net_benefit_by_hand():
    y = np.array([1, 1, 0, 0])
    p = np.array([0.8, 0.4, 0.6, 0.1])
    # t = 0.5: TP 1, FP 1 of N 4 -> 1/4 - 1/4 * 0.5/0.5 = 0
    # t = 0.2: TP 2, FP 1 -> 2/4 - 1/4 * 0.25 = 0.4375
    assert net_benefit(y, p, np.array([0.5, 0.2])) == pytest.approx([0.0, 0.4375])
    # at prevalence 0.1 and t = 0.2: 0.1 * 1 - 0.9 * 0.5 * 0.25
    assert net_benefit(y, p, np.array([0.2]), prevalence=0.1) == pytest.approx([-0.0125])
