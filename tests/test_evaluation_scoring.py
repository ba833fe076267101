"""cervix_hf.evaluation.scoring: one set of predictions into a typed Performance."""

import numpy as np
import pytest

from cervix_hf.evaluation.bootstrap import FoldThresholdData, unit_codes
from cervix_hf.evaluation.scoring import Scoring, score_fixed, score_nested
from cervix_hf.metrics import predictive_values
from tests.clustered import cell_types, clustered

HOW = Scoring(n_resamples=200, seed=0)


def test_score_fixed_on_a_hand_made_example():
    # four cluster images of two cells: Koilocytotic (3), Dyskeratotic (4), Parabasal (1) x2
    types = np.array([3, 3, 4, 4, 1, 1, 1, 1])
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.3, 0.8, 0.7, 0.6, 0.2, 0.1, 0.2])
    units = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    perf = score_fixed(y, p, units, 4, 0.5, how=HOW, types=cell_types(types))
    at = perf.at_threshold
    assert (at.confusion.tp, at.confusion.fn, at.confusion.fp, at.confusion.tn) == (3, 1, 1, 3)
    assert at.threshold == 0.5 and at.n == 8 and at.n_positive == 4 and at.n_groups == 4
    assert at.sensitivity.value == 0.75 and at.specificity.value == 0.75
    assert at.ppv.value == 0.75 and at.npv.value == 0.75 and at.accuracy.value == 0.75
    assert at.f1 == pytest.approx(0.75)
    for est in (at.sensitivity, at.specificity, at.accuracy):
        assert est.low < est.value < est.high and est.method == "cp-ess"
    rows = {r.cell_type: r for r in perf.per_type}
    assert set(rows) == {"Parabasal", "Koilocytotic", "Dyskeratotic"}
    assert rows["Koilocytotic"].measure == "sensitivity" and rows["Koilocytotic"].rate.value == 0.5
    assert rows["Dyskeratotic"].rate.value == 1.0 and rows["Dyskeratotic"].n_groups == 1
    assert rows["Parabasal"].measure == "false-positive rate"
    assert rows["Parabasal"].rate.value == 0.25 and rows["Parabasal"].label == "Normal"
    assert perf.scores.roc_auc.value == pytest.approx(15 / 16)  # only (0.3, 0.6) misordered
    assert perf.curves.roc_fpr[0] == 0.0 and len(perf.curves.reliability) == 10
    assert [c.prevalence for c in perf.curves.decision] == [0.5]


def test_prevalence_gives_bonferroni_ppv_and_npv():
    x, y, g, _types = clustered(n_groups=60, seed=2)
    p = 1 / (1 + np.exp(-(x[:, 0] + 2 * y - 1)))
    units, n_units, _ = unit_codes(g, len(y))
    how = Scoring(n_resamples=200, seed=0, prevalence=0.05)
    at = score_fixed(y, p, units, n_units, 0.5, how=how).at_threshold
    ppv, npv = predictive_values(at.sensitivity.value, at.specificity.value, 0.05)
    assert at.prevalence == 0.05
    assert at.ppv_at_prevalence.value == pytest.approx(ppv)
    assert at.npv_at_prevalence.value == pytest.approx(npv)
    assert at.ppv_at_prevalence.method == "bonferroni"
    assert at.ppv_at_prevalence.low <= ppv <= at.ppv_at_prevalence.high
    # the corners of the 97.5% intervals: wider than the 95% ones they come from
    assert at.ppv_at_prevalence.high - at.ppv_at_prevalence.low > 0


def test_score_nested_uses_each_folds_threshold():
    _x, y, g, types = clustered(n_groups=40, seed=3)
    rng = np.random.default_rng(0)
    scores = np.clip(0.3 * y + rng.normal(0.4, 0.2, len(y)), 0, 1)
    units, n_units, _ = unit_codes(g, len(y))
    half = np.arange(len(y)) < len(y) // 2
    folds = [
        FoldThresholdData(np.flatnonzero(half), rng.random(30), rng.integers(0, n_units, 30)),
        FoldThresholdData(np.flatnonzero(~half), rng.random(30), rng.integers(0, n_units, 30)),
    ]
    perf = score_nested(
        y, scores, units, n_units, folds, [0.3, 0.6], 0.9, how=HOW, types=cell_types(types)
    )
    flagged = np.where(half, scores >= 0.3, scores >= 0.6)
    at = perf.at_threshold
    assert at.threshold is None
    assert at.confusion.tp == int((flagged & (y == 1)).sum())
    assert at.confusion.fp == int((flagged & (y == 0)).sum())
    assert at.sensitivity.method == "cp-ess-rechosen"
    assert at.sensitivity.value == pytest.approx((flagged & (y == 1)).sum() / y.sum())
    assert {r.cell_type for r in perf.per_type} == {
        "Superficial-Intermediate",
        "Parabasal",
        "Metaplastic",
        "Koilocytotic",
        "Dyskeratotic",
    }
