"""cervix_hf.evaluation.threshold: the operating-point rule, plain and weighted."""

import numpy as np
import pytest

from cervix_hf.errors import EvaluationError
from cervix_hf.evaluation.threshold import choose_threshold, weighted_thresholds
from cervix_hf.metrics import binary_metrics


def test_threshold_on_a_hand_made_score_list():
    y = np.array([1, 1, 1, 1, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.7, 0.2, 0.1])
    # positives sorted: 0.9, 0.8, 0.6, 0.3; 3 of 4 needed for 0.75 -> 0.6
    assert choose_threshold(y, p, 0.75) == 0.6
    assert choose_threshold(y, p, 0.76) == 0.3  # 0.76 * 4 = 3.04 -> all 4
    assert choose_threshold(y, p, 0.25) == 0.9
    assert choose_threshold(y, p, 1.0) == 0.3


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95, 0.99, 1.0])
@pytest.mark.parametrize("ties", [False, True])
def test_threshold_meets_the_target_and_is_the_largest_that_does(target, ties):
    rng = np.random.default_rng(2)
    y = (rng.random(200) < 0.4).astype(int)
    p = np.clip(0.35 * y + rng.normal(0.35, 0.2, size=200), 0, 1)
    p = np.round(p, 1) if ties else p
    t = choose_threshold(y, p, target)
    assert binary_metrics(y, p, t)["sensitivity"] >= target
    higher = np.unique(p[p > t])
    if len(higher):
        assert binary_metrics(y, p, higher[0])["sensitivity"] < target


def test_choose_threshold_refuses_impossible_requests():
    with pytest.raises(EvaluationError, match="Target sensitivity"):
        choose_threshold(np.array([0, 1]), np.array([0.2, 0.8]), 1.5)
    with pytest.raises(EvaluationError, match="No positive"):
        choose_threshold(np.array([0, 0]), np.array([0.2, 0.8]), 0.9)


def test_weighted_thresholds_by_hand_and_with_unit_weights():
    s = np.array([0.6, 0.9, 0.7, 0.8])
    w = np.array(
        [
            [1, 1, 1, 1],  # plain: 3 of 4 for 0.75 -> 0.7
            [1, 1, 2, 0],  # 0.9 (1), 0.8 (0), 0.7 (2): cum 1, 1, 3 >= 0.75 * 4 -> 0.7
            [3, 1, 0, 0],  # 0.9 (1), 0.6 (3): needs 3 of 4 -> 0.6
            [0, 0, 0, 0],  # nothing drawn: undefined
        ],
        dtype=float,
    )
    t = weighted_thresholds(s, w, 0.75)
    assert t[:3].tolist() == [0.7, 0.7, 0.6] and np.isnan(t[3])
    rng = np.random.default_rng(0)
    scores = rng.random(50)
    for target in (0.5, 0.9, 0.99, 1.0):
        plain = choose_threshold(np.ones(50), scores, target)
        assert weighted_thresholds(scores, np.ones((2, 50)), target).tolist() == [plain] * 2
    # integer weights are the same as repeating the scores
    counts = rng.integers(0, 3, size=50)
    repeated = np.repeat(scores, counts)
    assert weighted_thresholds(scores, counts[None, :].astype(float), 0.9)[0] == (
        choose_threshold(np.ones(len(repeated)), repeated, 0.9)
    )
