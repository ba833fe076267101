"""cervix_hf.evaluation.bootstrap: resampling cluster images, vectorised."""

import numpy as np
import pytest

from cervix_hf.evaluation.bootstrap import (
    FoldThresholdData,
    ScoreResampler,
    draw_counts,
    rechosen_flags,
    score_replicates,
    unit_codes,
)
from cervix_hf.evaluation.intervals import percentile
from cervix_hf.evaluation.threshold import choose_threshold
from cervix_hf.metrics import binary_metrics, calibration_fit, reliability


def clustered_scores(n_groups=40, per_group=4, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per_group)
    y = (rng.random(n_groups) < 0.4).astype(int)[g]
    p = np.clip(0.35 * y + rng.normal(0.35, 0.2, size=len(g)), 0.001, 0.999)
    return y, (np.round(p, 1) if ties else p), np.array([f"c{i:03d}" for i in g])


def test_draw_counts_draw_as_many_clusters_as_there_are_and_are_seeded():
    chunks = list(draw_counts(7, 600, seed=3, chunk=250))
    assert [len(c) for c in chunks] == [250, 250, 100]
    assert all((c.sum(axis=1) == 7).all() for c in chunks)
    again = list(draw_counts(7, 600, seed=3, chunk=250))
    assert all((a == b).all() for a, b in zip(chunks, again, strict=True))


@pytest.mark.parametrize("ties", [False, True])
def test_unit_weights_reproduce_the_plain_figures(ties):
    y, p, g = clustered_scores(ties=ties)
    units, n_units, name = unit_codes(g, len(y))
    assert name == "cluster images" and n_units == 40
    out = ScoreResampler(y, p, units, n_units)(np.ones((1, n_units)))
    m = binary_metrics(y, p)
    assert out["roc_auc"][0] == pytest.approx(m["roc_auc"], abs=1e-12)
    assert out["brier"][0] == pytest.approx(m["brier"], abs=1e-12)
    assert out["ece"][0] == pytest.approx(reliability(y, p)["ece"], abs=1e-12)
    slope, intercept = calibration_fit(y, p)
    assert out["calibration_slope"][0] == pytest.approx(slope[0])
    assert out["calibration_intercept"][0] == pytest.approx(intercept[0])


def test_double_draws_count_twice():
    # three clusters; drawing cluster 0 twice and cluster 2 once is the same as scoring
    # its cells twice
    y = np.array([1, 0, 1, 0, 1, 0])
    p = np.array([0.9, 0.2, 0.4, 0.6, 0.8, 0.1])
    units = np.array([0, 0, 1, 1, 2, 2])
    out = ScoreResampler(y, p, units, 3)(np.array([[2.0, 0.0, 1.0]]))
    rows = [0, 1, 0, 1, 4, 5]
    assert out["roc_auc"][0] == pytest.approx(binary_metrics(y[rows], p[rows])["roc_auc"])
    assert out["brier"][0] == pytest.approx(binary_metrics(y[rows], p[rows])["brier"])


def test_cluster_bootstrap_is_wider_than_a_cell_bootstrap_for_clustered_predictions():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(60), 8)
    y = (np.arange(60) % 3 == 0).astype(int)[g]
    p = np.clip(0.3 * y + 0.35 + rng.normal(0, 0.25, size=60)[g] + rng.normal(0, 0.05, 480), 0, 1)
    widths = []
    for groups in (g, None):
        units, n_units, _ = unit_codes(groups, len(y))
        reps = score_replicates(y, p, units, n_units, 1000, seed=0)["roc_auc"]
        low, high = percentile(reps)
        widths.append(high - low)
    assert widths[0] > 1.3 * widths[1]


def test_rechosen_flags_with_unit_counts_equal_the_plain_thresholds():
    rng = np.random.default_rng(1)
    n = 60
    scores = rng.random(n)
    folds = []
    thresholds = []
    for k in range(2):
        test = np.arange(k * 30, (k + 1) * 30)
        inner = rng.random(25)
        folds.append(FoldThresholdData(test, inner, rng.integers(0, 20, size=25)))
        thresholds.append(choose_threshold(np.ones(25), inner, 0.9))
    flags = rechosen_flags(scores, folds, np.ones((3, 20)), 0.9)
    expected = np.zeros(n, dtype=bool)
    for f, t in zip(folds, thresholds, strict=True):
        expected[f.test_rows] = scores[f.test_rows] >= t
    assert flags.shape == (3, n) and (flags == expected).all()
    # a resample that drops a fold's inner positives entirely flags none of its cells
    counts = np.ones((1, 20))
    counts[0, np.unique(folds[0].inner_positive_units)] = 0
    assert not rechosen_flags(scores, folds, counts, 0.9)[0, folds[0].test_rows].any()
