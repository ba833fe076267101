import numpy as np
import pytest
from PIL import Image
from sklearn.calibration import CalibratedClassifierCV

from cervix_hf import CervixClassifier
from cervix_hf.analysis import overlay
from cervix_hf.explain import contribution_maps, linear_form
from cervix_hf.head import build_head


def test_linear_form_matches_the_pipeline():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 7)) * rng.uniform(0.1, 5, 7) + rng.normal(size=7)
    y = (x[:, 0] + rng.normal(size=60) > 0).astype(int)
    head = build_head(0.5).fit(x, y)
    a, c = linear_form(head)
    np.testing.assert_allclose(x @ a + c, head.decision_function(x), rtol=1e-10, atol=1e-10)
    calibrated = CalibratedClassifierCV(build_head(), cv=3).fit(x, y)
    a, c = linear_form(calibrated)  # the mean pre-calibration logit of the fold heads
    mean_logit = np.mean(
        [cc.estimator.decision_function(x) for cc in calibrated.calibrated_classifiers_], axis=0
    )
    np.testing.assert_allclose(x @ a + c, mean_logit, rtol=1e-10, atol=1e-10)
    assert linear_form(calibrated.calibrated_classifiers_[0].calibrators[0]) is None


def test_contribution_map_mean_is_the_pooled_term():
    rng = np.random.default_rng(1)
    fmaps = rng.normal(size=(3, 5, 4, 6))
    a = rng.normal(size=5)
    maps = contribution_maps(fmaps, a)
    assert maps.shape == (3, 4, 6)
    np.testing.assert_allclose(maps.mean(axis=(1, 2)), fmaps.mean(axis=(2, 3)) @ a)


def test_heat_map_is_exact_for_real_images(trained_model_dir, raw_cells):
    model = CervixClassifier.from_pretrained(trained_model_dir)
    paths = sorted(raw_cells[0].rglob("CROPPED/*.bmp"))[::9][:5]
    results = model.analyze(paths)
    logits = model.head.decision_function(model.features(paths))
    for r, logit in zip(results, logits, strict=True):
        assert r.contributions.shape == (5, 5)  # test_resnet at 160 px: 5x5 last feature map
        assert r.contributions.mean() + r.intercept == pytest.approx(logit, rel=1e-4, abs=1e-4)
        assert r.logit == pytest.approx(logit, rel=1e-4, abs=1e-4)
        assert r.p_positive == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-5)
        heat = r.heatmap()
        assert heat.size == r.view.size == (160, 160) and heat.mode == "RGB"
    np.testing.assert_allclose(
        [r.p_positive for r in results], model.predict_proba(paths)[:, 1], rtol=1e-5
    )


def test_overlay_colours_follow_the_sign():
    img = Image.new("RGB", (20, 20), (128, 128, 128))
    contrib = np.array([[1.0, -1.0]])
    out = np.asarray(overlay(img, contrib, alpha=0.5))
    left, right = out[10, 1], out[10, 18]
    assert left[0] > 150 and left[2] < 100  # positive: red
    assert right[2] > 150 and right[0] < 100  # negative: blue
