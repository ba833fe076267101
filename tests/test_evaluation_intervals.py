"""cervix_hf.evaluation.intervals: proportions from clustered cells, zero-width intervals."""

import numpy as np
import pytest
from scipy import stats

from cervix_hf.evaluation.intervals import (
    bootstrap_estimate,
    clopper_pearson,
    linearised_variance,
    proportion,
    score_design_effect,
)


def test_clopper_pearson_matches_published_values():
    # 0 of 10: upper bound 1 - 0.025 ** (1/10); 5 of 10: (0.1871, 0.8129) in the tables
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(1 - 0.025**0.1))
    low, high = clopper_pearson(5, 10)
    assert low == pytest.approx(0.1871, abs=1e-4) and high == pytest.approx(0.8129, abs=1e-4)


def test_proportion_on_a_three_cluster_toy():
    x = np.array([2.0, 1.0, 0.0])
    n = np.array([2.0, 2.0, 2.0])
    # p = 1/2; sum (x - p n)^2 = 1 + 0 + 1 over N^2 = 36, times G/(G-1) = 3/2 -> 1/12
    assert linearised_variance(x, n) == pytest.approx(1 / 12)
    n_eff = 0.25 / (1 / 12) * (stats.norm.ppf(0.975) / stats.t.ppf(0.975, 2)) ** 2
    est = proportion(x, n)
    assert est.value == 0.5 and est.method == "cp-ess" and est.note is None
    assert (est.low, est.high) == pytest.approx(clopper_pearson(0.5 * n_eff, n_eff))


def test_clustered_errors_widen_the_interval():
    n = np.full(40, 5.0)
    spread = np.array([5.0] * 36 + [3.0] * 4)  # 8 misses, 2 in each of 4 clusters
    bunched = np.array([5.0] * 38 + [1.0] * 2)  # 8 misses, all in 2 clusters
    a, b = proportion(spread, n), proportion(bunched, n)
    assert a.value == b.value == 192 / 200
    assert b.high - b.low > a.high - a.low


def test_no_error_gives_a_one_sided_interval_never_a_point():
    n = np.array([3.0, 4.0, 5.0, 4.0])
    whole = proportion(n, n)  # every cell right, no design effect given
    assert whole.value == 1.0 and whole.high == 1.0 and whole.low < 1.0
    assert "each of the 4 cluster images counted as one observation" in whole.note
    n_eff = n.sum() ** 2 / np.sum(n**2)
    assert whole.low == pytest.approx(clopper_pearson(n_eff, n_eff)[0])
    independent = proportion(n, n, fallback_deff=1.0)  # no clustering: all 16 cells count
    assert independent.low == pytest.approx(clopper_pearson(16, 16)[0])
    assert independent.low > whole.low
    assert proportion(np.zeros(3), np.zeros(3)).value is None


def test_score_design_effect():
    # identical scores within clusters: ICC 1, design effect = cell-weighted cluster size
    assert score_design_effect(np.array([1.0, 1, 3, 3]), np.array([0, 0, 1, 1])) == 2.0
    # cluster means all equal: ICC 0 (clipped), design effect 1
    v = np.array([0.0, 2, 0, 2, 0, 2])
    assert score_design_effect(v, np.array([0, 0, 1, 1, 2, 2])) == 1.0
    assert score_design_effect(np.array([1.0, 2.0]), np.array([0, 0])) == 2.0  # one cluster


def test_zero_width_bootstrap_intervals_come_with_a_note_and_a_bound():
    est = bootstrap_estimate(1.0, np.ones(500), perfect_units=20, what="ROC AUC")
    assert est.zero_width and est.bound == pytest.approx(0.05 ** (1 / 20))
    assert "every resample gave 1.000" in est.note and "one-sided 95% lower bound" in est.note
    ok = bootstrap_estimate(0.8, np.linspace(0.7, 0.9, 500))
    assert not ok.zero_width and ok.note is None and ok.low < 0.8 < ok.high
    assert bootstrap_estimate(None, np.ones(5)).value is None
    some = bootstrap_estimate(0.5, np.array([0.4, np.nan, np.nan, 0.6]))
    assert "defined in only 2 of 4 resamples" in some.note
