import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_image

from cervix_hf import CervixClassifier
from cervix_hf.novelty import fit_novelty, is_blank, novelty_scores
from cervix_hf.synthetic import CELL_TYPES, make_cell


def test_threshold_is_the_quantile_of_cells_not_fitted_on():
    rng = np.random.default_rng(0)

    def draw(n):  # mean half and spread half, both positive with mild variation
        return np.abs(1.0 + 0.2 * rng.normal(size=(n, 10)))

    detector, threshold = fit_novelty(draw(300), draw(300), quantile=0.9)
    # the threshold is set on held-out plus leave-one-out training distances, so new draws
    # from the same distribution pass at about the asked rate
    fresh = novelty_scores(detector, draw(2000))
    assert 0.85 <= (fresh <= threshold).mean() <= 0.95
    # rows unlike the training ones in either half (mean or spread) are far
    odd = draw(4)
    odd[:2, :3] = 0.0  # the pooled half points elsewhere
    odd[2:, 5:8] = 0.0  # the texture half points elsewhere
    assert (novelty_scores(detector, odd) > threshold).all()


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
