"""Evaluation plots: valid, deterministic PNGs drawn from the right data."""

import numpy as np
import pytest
from PIL import Image

from cervix_hf import plots
from cervix_hf.errors import EvaluationError
from cervix_hf.evaluation import cross_validate, cv_summary
from cervix_hf.plots import PLOT_FILES, confusion_matrix_figure, roc_figure, write_plots


@pytest.fixture(scope="module")
def metrics():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(24), 4)
    y = (np.arange(24) % 3 == 0).astype(int)[g]
    x = rng.normal(size=(len(g), 5)) + y[:, None]
    cv = cross_validate(x, y, g.astype(str), n_splits=3, c=1.0)
    section = cv_summary(y, g, cv, target_sensitivity=0.9, n_resamples=200)
    section["plots"] = dict(PLOT_FILES)
    return {"cv": section}


def test_plots_are_valid_deterministic_pngs(metrics, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_plots(metrics, tmp_path / "a")
    b = write_plots(metrics, tmp_path / "b")
    assert set(a) == set(PLOT_FILES)
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


def test_write_plots_draws_the_operating_point(metrics, tmp_path, monkeypatch):
    calls = {}
    for name in ("roc_figure", "confusion_matrix_figure", "reliability_figure"):
        real = getattr(plots, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls[_name] = (args, kwargs)
            return _real(*args, **kwargs)

        monkeypatch.setattr(plots, name, spy)
    write_plots(metrics, tmp_path)
    op = metrics["cv"]["operating_point"]
    at = op["metrics"]
    args, _ = calls["roc_figure"]
    assert list(args[0]) == metrics["cv"]["roc_curve"]["fpr"]
    assert args[2] == metrics["cv"]["pooled"]["roc_auc"]
    assert args[3] == (1.0 - at["specificity"], at["sensitivity"])
    assert args[4] == op["threshold"]
    args, _ = calls["confusion_matrix_figure"]
    assert args[0] == at["confusion_matrix"] and args[2] == op["threshold"]
    args, _ = calls["reliability_figure"]
    assert args[0] == metrics["cv"]["reliability"]["bins"]


def test_roc_figure_marks_the_operating_point():
    fig = roc_figure([0, 0.2, 1], [0, 0.9, 1], 0.85, operating_point=(0.2, 0.9), threshold=0.3)
    marks = [ln for ln in fig.axes[0].lines if ln.get_label().startswith("operating point")]
    assert len(marks) == 1
    assert list(marks[0].get_xdata()) == [0.2] and list(marks[0].get_ydata()) == [0.9]
    assert "t=0.300" in marks[0].get_label() and "spec 0.800" in marks[0].get_label()


def test_confusion_matrix_figure_shows_counts():
    fig = confusion_matrix_figure({"tn": 7, "fp": 1, "fn": 0, "tp": 4}, threshold=0.25)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[0].startswith("7\n") and texts[3].startswith("4\n")
    assert "0.2500" in fig.axes[0].get_title()


def test_no_cv_no_plots(tmp_path):
    with pytest.raises(EvaluationError, match="No cross-validation"):
        write_plots({"test": {}}, tmp_path)
