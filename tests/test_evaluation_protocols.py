"""cervix_hf.evaluation.protocols: the original project's protocol, faithfully."""

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import create_transform
from torchvision import transforms

from cervix_hf.errors import EvaluationError, LabelError
from cervix_hf.evaluation.protocols import (
    SEED_DATA_CONFIG,
    paired_accuracy_difference,
    seed_labels,
    seed_protocol,
)
from tests.clustered import clustered


def test_seed_data_config_is_the_seeds_stretched_resize():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (180, 300, 3), dtype=np.uint8))  # not square
    ours = create_transform(**SEED_DATA_CONFIG, is_training=False)(image)
    seeds = transforms.Compose(
        [
            transforms.Resize((224, 224)),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )(image)
    assert ours.shape == (3, 224, 224)
    assert torch.equal(ours, seeds)


def test_seed_grouping_counts_metaplastic_abnormal():
    assert seed_labels(np.arange(5)).tolist() == [0, 0, 1, 1, 1]


def test_paired_difference_on_a_three_cluster_toy():
    y = np.array([1, 1, 0, 0, 1, 0])
    units = np.array([0, 0, 1, 1, 2, 2])
    a = np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.3])  # all right
    b = np.array([0.9, 0.8, 0.6, 0.7, 0.7, 0.3])  # wrong on cluster 1 (2 of 6 cells)
    est = paired_accuracy_difference(y, a, b, units, 3, 500, 0, 0.95)
    assert est.value == pytest.approx(2 / 6) and est.method == "paired-bootstrap"
    # a resample draws cluster 1 zero to three times: the difference spans 0 to 1
    assert 0.0 <= est.low <= est.value <= est.high <= 1.0


def test_seed_protocol_measures_the_leak_and_the_scatter_of_single_splits():
    x, _, g, types = clustered(n_groups=40, per_group=(3, 6), seed=1)
    out = seed_protocol(x, types, g, n_splits=3, split_seeds=5, n_resamples=200)
    y = seed_labels(types)
    assert out.n == len(y) and out.n_positive == int(y.sum()) and out.n_groups == 40
    assert out.split_seeds == 5 and out.split_accuracy.n == 5
    assert out.split_accuracy.min <= out.split_accuracy.mean <= out.split_accuracy.max
    assert out.split_leak > 0.5 and out.fold_leak > 0.5  # clusters of 3-5 cells leak
    assert out.inflation.value == pytest.approx(out.per_cell_cv.accuracy - out.grouped_cv.accuracy)
    assert "C=1" in out.head and "Resize((224, 224))" in out.preprocessing
    with pytest.raises(LabelError, match="cell types"):
        seed_protocol(x, None, g)
    with pytest.raises(EvaluationError, match="cluster-image"):
        seed_protocol(x, types, None)
