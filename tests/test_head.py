import numpy as np
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from cervix_hf.errors import ConfigMismatchError, ModelLoadError, UntrustedHeadError
from cervix_hf.head import build_head, check_head, fit_head, load_head, save_head


def separable(n=80, d=12, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.array([f"g{i // 4}" for i in range(n)])  # 4 rows per group, one label per group
    y = np.array([int(g[1:]) % 2 for g in groups])
    x = rng.normal(size=(n, d)) + y[:, None] * 1.5
    return x, y, groups


def test_fit_head_picks_c_by_grouped_cv():
    x, y, groups = separable()
    head, params = fit_head(x, y, groups, c_grid=(0.001, 1.0), n_splits=4)
    assert isinstance(head, Pipeline)
    assert params["C"] in (0.001, 1.0)
    assert params["cv_folds"] == 4 and params["cv_grouped"]
    assert set(params["cv_scores"]) == {"0.001", "1.0"}
    assert head.named_steps["classifier"].class_weight == "balanced"
    assert (head.predict(x) == y).mean() > 0.9


def test_skops_round_trip_is_exact(tmp_path):
    x, y, groups = separable()
    head, _ = fit_head(x, y, groups, c_grid=(0.1,))
    save_head(head, tmp_path / "head.skops")
    back = load_head(tmp_path / "head.skops")
    np.testing.assert_array_equal(back.predict_proba(x), head.predict_proba(x))
    assert sio.get_untrusted_types(file=tmp_path / "head.skops") == []


def _double(x):
    return x * 2


def test_foreign_types_are_refused(tmp_path):
    x, y, _ = separable()
    evil = Pipeline([("f", FunctionTransformer(_double)), ("clf", build_head())]).fit(x, y)
    sio.dump(evil, tmp_path / "head.skops")
    with pytest.raises(UntrustedHeadError, match="_double"):
        load_head(tmp_path / "head.skops")


def test_not_a_skops_file(tmp_path):
    (tmp_path / "head.skops").write_bytes(b"\x80\x04not a zip")
    with pytest.raises(ModelLoadError, match="not a readable skops file"):
        load_head(tmp_path / "head.skops")
    with pytest.raises(ModelLoadError, match="missing"):
        load_head(tmp_path / "other.skops")


def test_check_head_against_config():
    x, y, _ = separable(d=12)
    head = build_head().fit(x, y)
    check_head(head, feature_dim=12, classes=("Normal", "Abnormal"), name="head.skops")
    with pytest.raises(ConfigMismatchError, match="12 features"):
        check_head(head, feature_dim=2048, classes=("Normal", "Abnormal"), name="head.skops")
    with pytest.raises(ConfigMismatchError, match="classes"):
        check_head(head, feature_dim=12, classes=("a", "b", "c"), name="head.skops")
    with pytest.raises(ConfigMismatchError, match="not a fitted classifier"):
        check_head(build_head(), feature_dim=12, classes=("a", "b"), name="head.skops")
