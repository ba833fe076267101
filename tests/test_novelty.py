import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_image

from cervix_hf import CervixClassifier
from cervix_hf.novelty import fit_novelty, held_out_distances, is_blank, novelty_scores
from cervix_hf.synthetic import CELL_TYPES, make_cell


def test_threshold_is_the_quantile_of_leave_one_cluster_out_distances():
    rng = np.random.default_rng(0)

    def draw(n_clusters, per=4):  # clusters of near-duplicates, like cells of one image
        centre = np.abs(1.0 + 0.2 * rng.normal(size=(n_clusters, 10)))
        return np.repeat(centre, per, axis=0) + 0.01 * rng.normal(size=(n_clusters * per, 10))

    train = draw(150)
    groups = np.repeat(np.arange(150), 4)
    detector, threshold = fit_novelty(train, groups, quantile=0.9)
    # cells of new cluster images pass at about the asked rate...
    fresh = novelty_scores(detector, draw(500, per=1))
    assert 0.85 <= (fresh <= threshold).mean() <= 0.95
    # ...while per-cell leave-one-out distances (a same-cluster twin is always near) would
    # have set a threshold that flags almost every new cluster's cells
    _, per_cell = fit_novelty(train, None, quantile=0.9)
    assert per_cell < 0.2 * threshold
    assert (fresh > per_cell).mean() > 0.9
    # rows unlike the training ones in either half (mean or spread) are far
    odd = draw(4)
    odd[:2, :3] = 0.0  # the pooled half points elsewhere
    odd[2:, 5:8] = 0.0  # the texture half points elsewhere
    assert (novelty_scores(detector, odd) > threshold).all()


def test_held_out_distances_skip_the_own_cluster():
    from sklearn.neighbors import NearestNeighbors
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    # on a line: a, b in cluster 0 at 0 and 1; c in cluster 1 at 3; d in cluster 2 at 10
    x = np.array([[0.0], [1.0], [3.0], [10.0]])
    detector = Pipeline([("id", FunctionTransformer()), ("nn", NearestNeighbors())]).fit(x)
    loco = held_out_distances(detector, x, np.array([0, 0, 1, 2]))
    assert loco.tolist() == [3.0, 2.0, 2.0, 7.0]  # a's nearest other-cluster cell is c
    assert held_out_distances(detector, x, None).tolist() == [1.0, 1.0, 2.0, 7.0]


def test_blank_images():
    assert is_blank(Image.new("RGB", (30, 30), (200, 190, 180)))
    cell = make_cell("Parabasal", np.random.default_rng(0))
    assert not is_blank(cell)


def test_unusual_images_are_flagged_and_cells_are_not(trained_model_dir):
    model = CervixClassifier.from_pretrained(trained_model_dir)
    rng = np.random.default_rng(123)  # cells the model never saw (another seed)
    cells = [make_cell(t, rng) for t in CELL_TYPES for _ in range(6)]
    flagged = [r.unusual for r in model.analyze(cells)]
    assert sum(flagged) <= len(cells) // 5  # most held-out cells pass

    noise = Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))
    flat = Image.new("RGB", (128, 128), (200, 200, 200))
    photo = Image.fromarray(load_sample_image("china.jpg"))
    flower = Image.fromarray(load_sample_image("flower.jpg"))
    odd = model.analyze([noise, flat, photo, flower])
    assert all(r.unusual for r in odd), [r.novelty_score for r in odd]
    assert all(r.novelty_score > 1.0 for r in (odd[0], odd[2], odd[3]))  # by features alone
