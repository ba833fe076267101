import logging

import numpy as np
import pytest

from cervix_hf.errors import SplitError
from cervix_hf.split import make_folds, train_test_split


def grouped_data(n_groups=40, seed=0):
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    for g in range(n_groups):
        label = g % 2
        for _ in range(rng.integers(2, 6)):
            labels.append(label)
            groups.append(f"{'AB'[label]}/{g:03d}")
    return np.array(labels), np.array(groups)


def test_no_group_on_both_sides_and_stratified():
    labels, groups = grouped_data()
    split = train_test_split(labels, groups, test_size=0.2, seed=3)
    assert split.grouped
    assert set(groups[split.train]).isdisjoint(groups[split.test])
    assert len(split.train) + len(split.test) == len(labels)
    assert 0.1 < len(split.test) / len(labels) < 0.3
    for c in (0, 1):  # each class near its share of the data on the test side
        share = (labels[split.test] == c).mean()
        assert abs(share - (labels == c).mean()) < 0.15


def test_split_ignores_row_order():
    labels, groups = grouped_data()
    a = train_test_split(labels, groups, seed=1)
    perm = np.random.default_rng(9).permutation(len(labels))
    b = train_test_split(labels[perm], groups[perm], seed=1)
    assert set(groups[a.test]) == set(groups[perm][b.test])
    c = train_test_split(labels, groups, seed=2)
    assert set(groups[c.test]) != set(groups[a.test])  # the seed matters


def test_folds_partition_rows_with_whole_groups():
    labels, groups = grouped_data()
    folds = make_folds(labels, groups, 5, seed=0)
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests) == list(range(len(labels)))
    for tr, te in folds:
        assert set(groups[tr]).isdisjoint(groups[te])
        assert set(labels[te]) == {0, 1}


def test_too_few_groups_is_our_error():
    labels = np.array([0, 0, 0, 1, 1, 1])
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    with pytest.raises(SplitError, match="Groups per class"):
        make_folds(labels, groups, 3)
    with pytest.raises(SplitError, match="two classes"):
        make_folds(np.zeros(6, int), None, 2)


def test_without_groups_falls_back_with_warning(caplog):
    labels = np.array([0, 1] * 20)
    with caplog.at_level(logging.WARNING, logger="cervix_hf.split"):
        split = train_test_split(labels, None, test_size=0.25, seed=0)
    assert not split.grouped
    assert len(split.test) == 10
    assert "no groups" in caplog.text


def typed_data(seed=0):
    """Cluster images of one cell type each: 3 normal types (label 0), 2 abnormal (label 1);
    Metaplastic (type 2) is rare: 5 of 60 clusters."""
    rng = np.random.default_rng(seed)
    types_g = np.array([0] * 15 + [1] * 15 + [2] * 5 + [3] * 13 + [4] * 12)
    sizes = rng.integers(2, 6, size=len(types_g))
    g = np.repeat(np.arange(len(types_g)), sizes)
    types = types_g[g]
    return (types >= 3).astype(int), np.array([f"c{i:03d}" for i in g]), types


def test_stratifying_by_cell_type_keeps_every_type_on_both_sides():
    labels, groups, types = typed_data()
    for seed in range(10):
        split = train_test_split(labels, groups, 0.2, seed, strata=types)
        assert set(groups[split.train]).isdisjoint(groups[split.test])
        assert set(types[split.test]) == set(range(5))  # the rare type is held out too
        assert set(types[split.train]) == set(range(5))
    folds = make_folds(labels, groups, 5, 0, strata=types)
    for _, te in folds:
        assert set(types[te]) == set(range(5))  # 5 Metaplastic clusters, one per fold


def test_strata_that_cannot_keep_labels_fall_back_to_the_labels():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    groups = np.array(["a", "b", "c", "d", "e", "f", "g", "h"])
    strata = np.arange(8)  # every row its own type: no fold can hold them all
    folds = make_folds(labels, groups, 2, 0, strata=strata)
    for _, te in folds:
        assert set(labels[te]) == {0, 1}
