"""cervix_hf.evaluation.cv: grouped CV, the operating point, nested CV (no leaks)."""

import numpy as np
import pytest
import skops.io as sio

from cervix_hf.artifacts import EXTRA_TRUSTED_TYPES, load_skops, save_skops
from cervix_hf.errors import EvaluationError
from cervix_hf.evaluation import cv
from cervix_hf.evaluation.cv import (
    choose_operating_point,
    cross_validate,
    fit_calibrated_head,
    nested_cv,
    positive_scores,
)
from cervix_hf.evaluation.threshold import choose_threshold
from cervix_hf.head import build_head
from tests.clustered import clustered


def with_ids(x):
    """Column 0 identifies the row, so a spy can tell which rows a fit saw."""
    return np.column_stack([np.arange(len(x)), x])


def spy_fits(monkeypatch):
    """Record ``(kind, row ids)`` of every head fit: ``search`` (C chosen by grouped CV on
    the rows) or ``fixed`` (one fit at a given C)."""
    seen = []
    real_fit_head, real_build = cv.fit_head, cv.build_head

    def fit_head(features, labels, groups, **kw):
        seen.append(("search", frozenset(features[:, 0].astype(int))))
        return real_fit_head(features, labels, groups, **kw)

    def build_head(c, seed=0):
        head = real_build(c, seed)
        fit = head.fit

        def recording_fit(features, labels, **kw):
            seen.append(("fixed", frozenset(features[:, 0].astype(int))))
            return fit(features, labels, **kw)

        head.fit = recording_fit
        return head

    monkeypatch.setattr(cv, "fit_head", fit_head)
    monkeypatch.setattr(cv, "build_head", build_head)
    return seen


def test_cv_folds_never_share_a_group_and_keep_both_classes():
    x, y, g, _ = clustered()
    result = cross_validate(x, y, g, n_splits=5, seed=3, c=1.0)
    tested = np.concatenate([te for _, te in result.folds])
    assert sorted(tested) == list(range(len(y)))
    for k, (tr, te) in enumerate(result.folds):
        assert not set(g[tr]) & set(g[te])
        assert set(y[te]) == {0, 1} and set(y[tr]) == {0, 1}
        assert (result.fold[te] == k).all()
    assert np.isfinite(result.oof).all() and result.grouped
    assert all(p.c_selection == "fixed" and p.c == 1.0 for p in result.params)


def test_operating_point_sees_only_the_rows_it_is_given(monkeypatch):
    x, y, g, _types = clustered(n_groups=30)
    x = with_ids(x)
    seen = spy_fits(monkeypatch)
    rows = np.arange(0, len(y), 2)  # any subset: say, a training split
    op, result = choose_operating_point(
        x[rows], y[rows], g[rows], c=0.1, calibrate=None, target_sensitivity=0.9, n_splits=3
    )
    ids = set(rows)
    assert len(seen) == 3 and all(kind == "fixed" and s <= ids for kind, s in seen)
    assert op.threshold == choose_threshold(y[rows], result.oof, 0.9)
    assert op.oof_sensitivity >= 0.9 and op.n == len(rows) and op.c == 0.1


def test_nested_cv_outer_test_folds_influence_nothing_of_their_fold(monkeypatch):
    x, y, g, types = clustered(n_groups=30)
    x = with_ids(x)
    seen = spy_fits(monkeypatch)
    run = nested_cv(
        x, y, g, target_sensitivity=0.9, n_splits=3, c=None, c_grid=(0.01, 1.0), strata=types
    )
    assert len(run.folds) == 3 and np.isfinite(run.scores).all()
    # each fold: one C search, then its inner fits; all on that fold's training rows only
    starts = [i for i, (kind, _) in enumerate(seen) if kind == "search"] + [len(seen)]
    assert len(starts) == 4
    for k, fold in enumerate(run.folds):
        train, test = set(fold.train), set(fold.test)
        assert seen[starts[k]][1] == train
        for _, rows in seen[starts[k] : starts[k + 1]]:
            assert rows <= train and not rows & test
        # the fold's threshold: the rule on its inner out-of-fold predictions
        inner = cross_validate(
            x[fold.train],
            y[fold.train],
            g[fold.train],
            n_splits=3,
            c=fold.params.c,
            strata=types[fold.train],
            fewer_folds_ok=True,
        )
        assert fold.threshold == choose_threshold(y[fold.train], inner.oof, 0.9)
        assert fold.params.c_selection == "nested" and fold.params.c in (0.01, 1.0)


def test_positive_scores_follow_the_classes():
    x, y, _, _ = clustered(n_groups=20)
    head = build_head(1.0).fit(x, y)
    np.testing.assert_array_equal(positive_scores(head, x), head.predict_proba(x)[:, 1])
    np.testing.assert_array_equal(positive_scores(head, x, 0), head.predict_proba(x)[:, 0])


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
    x, y, g, _ = clustered(n_groups=24)
    head = fit_calibrated_head(x, y, g, c=0.1, method=method, n_splits=3)
    for train, test in head.cv:  # the calibration folds are grouped too
        assert not set(g[train]) & set(g[test])
    save_skops(head, tmp_path / "head.skops")
    assert set(sio.get_untrusted_types(file=tmp_path / "head.skops")) == needed
    assert needed <= set(EXTRA_TRUSTED_TYPES)
    back = load_skops(tmp_path / "head.skops")
    np.testing.assert_array_equal(back.predict_proba(x), head.predict_proba(x))


def test_calibration_method_is_checked():
    x, y, g, _ = clustered(n_groups=12)
    with pytest.raises(EvaluationError, match="calibration method"):
        fit_calibrated_head(x, y, g, c=1.0, method="platt")
