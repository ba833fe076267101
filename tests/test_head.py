import numpy as np
from sklearn.pipeline import Pipeline

from cervix_hf.head import fit_head


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
