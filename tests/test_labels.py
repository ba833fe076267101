import pytest

from cervix_hf.errors import LabelError
from cervix_hf.labels import (
    CELL_TYPES,
    GROUPINGS,
    binary_label,
    classify_names,
    match_cell_type,
    match_label,
)


@pytest.mark.parametrize(
    "name",
    [
        "im_Superficial-Intermediate",
        "superficial_intermediate",
        "SUPERFICIAL INTERMEDIATE",
        "Superficial-Intermediate",
    ],
)
def test_cell_type_names_match_loosely(name):
    assert match_cell_type(name) == "Superficial-Intermediate"


def test_unknown_names_do_not_match():
    assert match_cell_type("im_Neutrophil") is None
    assert match_label("Maybe") is None
    assert classify_names(["Normal", "Koilocytotic"]) is None
    assert classify_names([]) is None


def test_classify_names():
    assert classify_names(["abnormal", "NORMAL"]) == "label"
    assert classify_names([f"im_{t}" for t in CELL_TYPES]) == "cell_type"


def test_groupings_differ_only_on_metaplastic():
    clinical, seed = GROUPINGS["clinical"], GROUPINGS["seed"]
    assert set(clinical) == set(seed) == set(CELL_TYPES)
    assert [t for t in CELL_TYPES if clinical[t] != seed[t]] == ["Metaplastic"]
    assert binary_label("Metaplastic", "clinical") == "Normal"
    assert binary_label("Metaplastic", "seed") == "Abnormal"
    assert binary_label("Koilocytotic", "clinical") == "Abnormal"
    assert binary_label("Parabasal", "seed") == "Normal"


def test_binary_label_errors_name_the_choices():
    with pytest.raises(LabelError, match="clinical"):
        binary_label("Parabasal", "strict")
    with pytest.raises(LabelError, match="Dyskeratotic"):
        binary_label("Neutrophil", "clinical")
