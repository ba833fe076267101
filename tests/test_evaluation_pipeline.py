"""cervix_hf.evaluation.pipeline and .serialise: the whole evaluation on feature arrays."""

import json

import numpy as np
import pytest

from cervix_hf.errors import EvaluationError, LabelError
from cervix_hf.evaluation import pipeline
from cervix_hf.evaluation.cv import cross_validate
from cervix_hf.evaluation.pipeline import (
    DataInfo,
    EvalData,
    EvalOptions,
    Published,
    evaluate_features,
)
from cervix_hf.evaluation.report import REPORT_FORMAT, EvaluationReport
from cervix_hf.evaluation.serialise import from_dict, has_legacy_report, report_from_metrics
from cervix_hf.evaluation.threshold import choose_threshold
from cervix_hf.head import fit_head
from cervix_hf.metrics import binary_metrics
from cervix_hf.split import train_test_split
from tests.clustered import cell_types, clustered

OPTS = EvalOptions(folds=3, n_resamples=200, target_sensitivity=0.9)


@pytest.fixture(scope="module")
def setup():
    x, y, g, types = clustered(n_groups=45, seed=4)
    split = train_test_split(y, g, 0.2, 0, strata=types)
    head, params = fit_head(x[split.train], y[split.train], g[split.train], c_grid=(0.1, 1.0))
    published = Published(head, 1, params["C"], None, split.train, split.test)
    data = EvalData(x, y, g, cell_types(types))
    return data, published, split


@pytest.fixture(scope="module")
def result(setup):
    data, published, _ = setup
    opts = EvalOptions(folds=3, n_resamples=200, target_sensitivity=0.9, repeats=2)
    return evaluate_features(data, published, opts, DataInfo("toy"), c_grid=(0.1, 1.0))


def test_the_threshold_comes_from_the_training_rows_only(setup, result, monkeypatch):
    data, published, split = setup
    report = result.report
    tr = split.train
    again = cross_validate(
        data.features[tr],
        data.y[tr],
        data.groups[tr],
        n_splits=3,
        c=published.c,
        strata=data.types.codes[tr],
        fewer_folds_ok=True,
    )
    assert report.operating_point.threshold == choose_threshold(data.y[tr], again.oof, 0.9)
    assert report.operating_point.n == len(tr)
    # changing the held-out rows' features changes nothing about the threshold
    x2 = data.features.copy()
    x2[split.test] += 5.0
    moved = evaluate_features(
        EvalData(x2, data.y, data.groups, data.types),
        published,
        EvalOptions(folds=3, n_resamples=200, target_sensitivity=0.9),
        DataInfo("toy"),
        c_grid=(0.1, 1.0),
    )
    assert moved.report.operating_point == report.operating_point


def test_the_published_head_is_scored_once_on_the_held_out_rows(setup, result):
    data, published, split = setup
    held = result.report.held_out
    t = result.report.operating_point.threshold
    p = published.head.predict_proba(data.features[split.test])[:, 1]
    np.testing.assert_array_equal(result.held_out_scores, p)
    m = binary_metrics(data.y[split.test], p, t)
    at = held.performance.at_threshold
    assert at.threshold == t and at.n == len(split.test)
    assert at.sensitivity.value == m["sensitivity"] and at.specificity.value == m["specificity"]
    assert at.confusion.tp == m["confusion_matrix"]["tp"]
    assert held.performance.scores.roc_auc.value == pytest.approx(m["roc_auc"])
    assert held.n_train == len(split.train)
    assert {r.cell_type for r in held.performance.per_type} <= set(
        data.types.names[i] for i in set(data.types.codes[split.test])
    )


def test_nested_cv_and_repeats(setup, result):
    data, _, _ = setup
    nested = result.report.nested
    assert nested.n_splits == 3 and nested.repeats == 2 and nested.grouped
    assert len(nested.folds) == 6 and {f.repeat for f in nested.folds} == {0, 1}
    first = result.nested[0]
    for row, fold in zip(nested.folds[:3], first.folds, strict=True):
        assert row.threshold == fold.threshold and row.n == len(fold.test)
    at = nested.performance.at_threshold
    assert at.n == len(data.y) and at.threshold is None
    spread = nested.repeat_spread
    assert spread.sensitivity.n == 2 and spread.sensitivity.min <= spread.sensitivity.max


def test_report_round_trips_through_json(result):
    data = json.loads(json.dumps(result.report.to_dict()))
    assert data["format"] == REPORT_FORMAT
    back = from_dict(EvaluationReport, data)
    assert back == result.report
    assert report_from_metrics({"cv": data}) == result.report
    assert report_from_metrics({}) is None
    old = {"cv": {"pooled": {}, "operating_point": {}}}  # an older cervix_hf's layout
    assert report_from_metrics(old) is None and has_legacy_report(old)
    with pytest.raises(EvaluationError, match="does not know"):
        from_dict(EvaluationReport, {**data, "surprise": 1})


def test_seed_protocol_needs_types_groups_and_its_features(setup):
    data, published, _ = setup
    opts = EvalOptions(folds=3, n_resamples=200, protocol="seed")
    with pytest.raises(LabelError, match="cell types"):
        evaluate_features(
            EvalData(data.features, data.y, data.groups), published, opts, DataInfo("toy")
        )
    with pytest.raises(EvaluationError, match="seed's features"):
        evaluate_features(data, published, opts, DataInfo("toy"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"protocol": "leaky"}, "protocol"),
        ({"folds": 1}, "2 folds"),
        ({"prevalence": 1.0}, "Prevalence"),
        ({"repeats": 0}, "Repeats"),
        ({"n_resamples": 10}, "100 bootstrap"),
        ({"target_sensitivity": 0.0}, "Target sensitivity"),
        ({"calibrate": "platt"}, "calibrate"),
    ],
)
def test_options_are_checked(change, message):
    with pytest.raises(EvaluationError, match=message):
        pipeline.EvalOptions(**change).check()
