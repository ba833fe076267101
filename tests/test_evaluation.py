"""cervix_hf.evaluation on generated feature arrays (no backbone, no images)."""

import time

import numpy as np
import pytest
import skops.io as sio

from cervix_hf import evaluation
from cervix_hf.artifacts import EXTRA_TRUSTED_TYPES
from cervix_hf.artifacts import load_skops as load_head
from cervix_hf.artifacts import save_skops as save_head
from cervix_hf.errors import EvaluationError
from cervix_hf.evaluation import (
    bootstrap_intervals,
    choose_threshold,
    cross_validate,
    cv_summary,
    fit_calibrated_head,
    seed_labels,
    seed_protocol,
)
from cervix_hf.metrics import binary_metrics, reliability


def clustered(n_groups=30, per_group=4, d=6, seed=0, shift=1.2):
    """Rows in groups of one label each; a group shares an offset (like a cluster image)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per_group)
    y_group = np.zeros(n_groups, dtype=int)
    y_group[: max(2, round(0.4 * n_groups))] = 1
    y_group = rng.permutation(y_group)
    y = y_group[g]
    x = rng.normal(size=(len(g), d)) + shift * y[:, None] + 0.7 * rng.normal(size=(n_groups, d))[g]
    return x, y, np.array([f"cluster{i:03d}" for i in g])


def scores(y, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    p = np.clip(0.35 * y + rng.normal(0.35, 0.2, size=len(y)), 0, 1)
    return np.round(p, 1) if ties else p


def test_cv_folds_never_share_a_group_and_keep_both_classes():
    x, y, g = clustered()
    cv = cross_validate(x, y, g, n_splits=5, seed=3, c=1.0)
    tested = np.concatenate([te for _, te in cv.folds])
    assert sorted(tested) == list(range(len(y)))  # every row tested exactly once
    for k, (tr, te) in enumerate(cv.folds):
        assert not set(g[tr]) & set(g[te])
        assert set(y[te]) == {0, 1} and set(y[tr]) == {0, 1}
        assert (cv.fold[te] == k).all()
    assert np.isfinite(cv.oof).all() and cv.grouped
    assert all(p["c_selection"] == "fixed" and p["C"] == 1.0 for p in cv.fold_params)


def test_nested_c_is_chosen_on_training_rows_only(monkeypatch):
    x, y, g = clustered(n_groups=20)
    x = np.column_stack([np.arange(len(y)), x])  # column 0 identifies the row
    seen = []
    real = evaluation.fit_head

    def spy(features, labels, groups, **kw):
        seen.append(set(features[:, 0].astype(int)))
        return real(features, labels, groups, **kw)

    monkeypatch.setattr(evaluation, "fit_head", spy)
    cv = cross_validate(x, y, g, n_splits=3, c=None, c_grid=(0.01, 1.0))
    assert len(seen) == 3
    for rows, (tr, te) in zip(seen, cv.folds, strict=True):
        assert rows == set(tr) and not rows & set(te)
    assert all(p["c_selection"] == "nested" and p["C"] in (0.01, 1.0) for p in cv.fold_params)


def test_bootstrap_point_estimates_equal_binary_metrics():
    _, y, g = clustered(n_groups=40)
    for ties in (False, True):
        p = scores(y, ties=ties)
        for t in (0.5, 0.3):
            b = bootstrap_intervals(y, p, g, threshold=t, n_resamples=200)
            m = binary_metrics(y, p, t)
            for key in ("accuracy", "sensitivity", "specificity", "precision", "f1", "brier"):
                assert b["estimate"][key] == pytest.approx(m[key], abs=1e-12), key
            assert b["estimate"]["roc_auc"] == pytest.approx(m["roc_auc"], abs=1e-12)
            assert b["estimate"]["ece"] == pytest.approx(reliability(y, p)["ece"], abs=1e-12)


def test_bootstrap_intervals_contain_the_estimate_and_narrow_as_data_grows():
    widths = []
    for n_groups in (30, 300):
        _, y, g = clustered(n_groups=n_groups, seed=1)
        p = scores(y, seed=1)
        b = bootstrap_intervals(y, p, g, n_resamples=1000, seed=0)
        assert b["unit"] == "groups" and b["n_units"] == n_groups
        for key in ("accuracy", "sensitivity", "specificity", "roc_auc", "brier", "f1"):
            low, high = b["intervals"][key]
            assert low <= b["estimate"][key] <= high, (n_groups, key)
        widths.append({k: v[1] - v[0] for k, v in b["intervals"].items()})
    for key in ("accuracy", "sensitivity", "specificity", "roc_auc", "brier", "ece"):
        assert widths[1][key] < 0.6 * widths[0][key], key


def test_group_bootstrap_is_wider_than_a_cell_bootstrap_for_clustered_predictions():
    rng = np.random.default_rng(0)
    _, y, g = clustered(n_groups=60, per_group=8)
    cluster_effect = rng.normal(0, 0.25, size=60)[np.unique(g, return_inverse=True)[1]]
    p = np.clip(0.3 * y + 0.35 + cluster_effect + rng.normal(0, 0.05, len(y)), 0, 1)
    by_group = bootstrap_intervals(y, p, g, n_resamples=1000)["intervals"]["accuracy"]
    by_cell = bootstrap_intervals(y, p, None, n_resamples=1000)
    assert by_cell["unit"] == "cells" and by_cell["n_units"] == len(y)
    cell = by_cell["intervals"]["accuracy"]
    assert by_group[1] - by_group[0] > 1.3 * (cell[1] - cell[0])


def test_bootstrap_is_seeded_and_fast_on_4000_cells():
    _, y, g = clustered(n_groups=1000, per_group=4)
    p = scores(y)
    t0 = time.perf_counter()
    a = bootstrap_intervals(y, p, g, n_resamples=2000, seed=7)
    elapsed = time.perf_counter() - t0
    assert a == bootstrap_intervals(y, p, g, n_resamples=2000, seed=7)
    assert a != bootstrap_intervals(y, p, g, n_resamples=2000, seed=8)
    assert elapsed < 3.0  # about 0.2 s on 2 idle cores


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95, 0.99, 1.0])
@pytest.mark.parametrize("ties", [False, True])
def test_threshold_meets_the_target_sensitivity_and_is_the_largest_that_does(target, ties):
    _, y, _ = clustered(n_groups=50)
    p = scores(y, seed=2, ties=ties)
    t = choose_threshold(y, p, target)
    assert binary_metrics(y, p, t)["sensitivity"] >= target
    higher = np.unique(p[p > t])
    if len(higher):  # the next score up loses the target
        assert binary_metrics(y, p, higher[0])["sensitivity"] < target
    summary = evaluation.operating_point(y, p, target)
    assert summary["threshold"] == t and summary["metrics"]["sensitivity"] >= target
    cost = summary["specificity_cost_vs_0_5"]
    assert cost == pytest.approx(
        binary_metrics(y, p, 0.5)["specificity"] - summary["metrics"]["specificity"]
    )


def test_choose_threshold_refuses_impossible_requests():
    with pytest.raises(EvaluationError, match="Target sensitivity"):
        choose_threshold(np.array([0, 1]), np.array([0.2, 0.8]), 1.5)
    with pytest.raises(EvaluationError, match="No positive"):
        choose_threshold(np.array([0, 0]), np.array([0.2, 0.8]), 0.9)


def test_cv_summary_threshold_meets_target_on_the_oof_predictions_it_was_chosen_on():
    x, y, g = clustered(n_groups=30)
    cv = cross_validate(x, y, g, n_splits=3, c=1.0)
    s = cv_summary(y, g, cv, target_sensitivity=0.95, n_resamples=200)
    op = s["operating_point"]
    assert binary_metrics(y, cv.oof, op["threshold"])["sensitivity"] >= 0.95
    assert op["metrics"]["sensitivity"] >= 0.95
    assert [f["fold"] for f in s["folds"]] == [0, 1, 2]
    assert s["pooled"] == {**binary_metrics(y, cv.oof), "ece": s["reliability"]["ece"]}
    assert s["ci"]["unit"] == "groups" and set(s["ci"]["pooled"]) >= {"accuracy", "roc_auc"}
    assert s["fold_spread"]["accuracy"]["min"] <= s["fold_spread"]["accuracy"]["max"]


@pytest.mark.parametrize(
    ("method", "needed"),
    [
        (
            "sigmoid",
            {
                "sklearn.calibration._CalibratedClassifier",
                "sklearn.calibration._SigmoidCalibration",
            },
        ),
        ("isotonic", {"sklearn.calibration._CalibratedClassifier"}),
    ],
)
def test_calibrated_head_needs_only_the_explicit_trusted_types(tmp_path, method, needed):
    x, y, g = clustered(n_groups=24)
    head = fit_calibrated_head(x, y, g, c=0.1, method=method, n_splits=3)
    for train, test in head.cv:  # the calibration folds are grouped too
        assert not set(g[train]) & set(g[test])
    save_head(head, tmp_path / "head.skops")
    assert set(sio.get_untrusted_types(file=tmp_path / "head.skops")) == needed
    assert needed <= set(EXTRA_TRUSTED_TYPES)
    back = load_head(tmp_path / "head.skops")
    np.testing.assert_array_equal(back.predict_proba(x), head.predict_proba(x))


def test_calibration_method_is_checked():
    x, y, g = clustered(n_groups=12)
    with pytest.raises(EvaluationError, match="calibration method"):
        fit_calibrated_head(x, y, g, c=1.0, method="platt")


def test_seed_protocol_measures_the_leak_of_a_per_cell_split():
    x, _, g = clustered(n_groups=30)
    rng = np.random.default_rng(0)
    codes = np.unique(g, return_inverse=True)[1]
    types = rng.integers(0, 5, size=30)[codes]  # one cell type per cluster
    out = seed_protocol(x, types, g, n_splits=3, c=1.0, n_resamples=200)
    assert (seed_labels(np.arange(5)) == [0, 0, 1, 1, 1]).all()  # Metaplastic Abnormal
    split = out["split"]
    assert split["train_size"] + split["test_size"] == len(g)
    assert split["test_cells_with_cluster_in_train"] > 0.5  # clusters of 4 cells leak
    assert out["grouped_cv"]["pooled"]["n"] == len(g) and out["grouped_cv"]["grouped"]
    assert split["ci_unit"] == "cells" and out["grouped_cv"]["ci_unit"] == "groups"
