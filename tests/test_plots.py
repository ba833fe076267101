"""Evaluation plots: valid, deterministic PNGs drawn from the typed report."""

import dataclasses

import pytest
from PIL import Image

from cervix_hf import plots
from cervix_hf.errors import EvaluationError
from cervix_hf.evaluation.pipeline import (
    DataInfo,
    EvalData,
    EvalOptions,
    Published,
    evaluate_features,
)
from cervix_hf.evaluation.report import Confusion
from cervix_hf.head import fit_head
from cervix_hf.plots import PLOT_FILES, confusion_matrix_figure, roc_figure, write_plots
from cervix_hf.split import train_test_split
from tests.clustered import cell_types, clustered


@pytest.fixture(scope="module")
def report():
    x, y, g, types = clustered(n_groups=30, seed=5)
    split = train_test_split(y, g, 0.25, 0, strata=types)
    head, params = fit_head(x[split.train], y[split.train], g[split.train], c_grid=(1.0,))
    result = evaluate_features(
        EvalData(x, y, g, cell_types(types)),
        Published(head, 1, params["C"], None, split.train, split.test),
        EvalOptions(folds=3, n_resamples=200, target_sensitivity=0.9, prevalence=0.1),
        DataInfo("toy"),
        c_grid=(1.0,),
    )
    return dataclasses.replace(result.report, plots=dict(PLOT_FILES))


def test_plots_are_valid_deterministic_pngs(report, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_plots(report, tmp_path / "a")
    b = write_plots({"cv": report.to_dict()}, tmp_path / "b")  # a model's metrics work too
    assert set(a) == set(PLOT_FILES) == set(b)
    for name, path in a.items():
        assert path.name == PLOT_FILES[name]
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert data == b[name].read_bytes()  # same data, same bytes
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.format == "PNG" and 300 <= im.width <= 800 and 300 <= im.height <= 800
        assert 5_000 < len(data) < 200_000


def test_write_plots_draws_the_published_head_at_its_threshold(report, tmp_path, monkeypatch):
    calls = {}
    names = ("roc_figure", "confusion_matrix_figure", "reliability_figure", "decision_curve_figure")
    for name in names:
        real = getattr(plots, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls[_name] = (args, kwargs)
            return _real(*args, **kwargs)

        monkeypatch.setattr(plots, name, spy)
    write_plots(report, tmp_path)
    held = report.held_out.performance
    t = report.operating_point.threshold
    at = held.at_threshold
    args, kwargs = calls["confusion_matrix_figure"]
    assert args[0] == at.confusion and args[2] == t
    args, kwargs = calls["roc_figure"]
    assert list(args[0]) == held.curves.roc_fpr and args[2] == held.scores.roc_auc.value
    assert args[3] == (1.0 - at.specificity.value, at.sensitivity.value) and args[4] == t
    assert kwargs["extra"][0][2] == "nested CV"
    args, _ = calls["reliability_figure"]
    assert args[0] == report.nested.performance.curves.reliability
    args, _ = calls["decision_curve_figure"]
    assert [c.prevalence for c in args[0]][1] == 0.1 and args[1] == t


def test_roc_figure_marks_the_operating_point():
    fig = roc_figure([0, 0.2, 1], [0, 0.9, 1], 0.85, operating_point=(0.2, 0.9), threshold=0.3)
    marks = [ln for ln in fig.axes[0].lines if ln.get_label().startswith("operating point")]
    assert len(marks) == 1
    assert list(marks[0].get_xdata()) == [0.2] and list(marks[0].get_ydata()) == [0.9]
    assert "t=0.300" in marks[0].get_label() and "spec 0.800" in marks[0].get_label()


def test_confusion_matrix_figure_shows_counts():
    fig = confusion_matrix_figure(Confusion(tn=7, fp=1, fn=0, tp=4), threshold=0.25)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[0].startswith("7\n") and texts[3].startswith("4\n")
    assert "0.2500" in fig.axes[0].get_title()


def test_decision_curve_by_hand():
    from cervix_hf.evaluation.report import DecisionCurve

    curve = DecisionCurve("data", 0.5, [0.2, 0.5], [0.4375, 0.0], [0.375, 0.0])
    fig = plots.decision_curve_figure([curve], 0.3, "t")
    lines = {ln.get_label(): ln for ln in fig.axes[0].lines}
    assert list(lines["model, data"].get_ydata()) == [0.4375, 0.0]
    assert "threshold 0.300" in lines


def test_no_evaluation_no_plots(tmp_path):
    with pytest.raises(EvaluationError, match="No cross-validation"):
        write_plots({"test": {}}, tmp_path)
    assert write_plots({"cv": {"pooled": {}}}, tmp_path) == {}  # an older layout: nothing
    assert not list(tmp_path.iterdir())
