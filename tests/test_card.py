import json
import math

import numpy as np
import pytest
import yaml
from huggingface_hub import ModelCard, ModelCardData

from cervix_hf.card import CARD_METRICS, base_model_id, render_model_card
from cervix_hf.config import CervixConfig

SECTIONS = [
    "## Model details",
    "## Intended use",
    "### Out of scope",
    "## Data and grouping",
    "## Training procedure and hyper-parameters",
    "## Evaluation",
    "## Calibration and operating point",
    "## Limitations and risks",
    "## How to use",
    "## What was not measured",
]


def section(text: str, title: str) -> str:
    """The body of one ``## title`` section."""
    body = text.split(f"\n{title}\n", 1)[1]
    return body.split("\n## ", 1)[0]


def check_card(text: str, metrics: dict) -> dict:
    """Check a rendered card's metadata like the Hub would, and against ``metrics.json``.

    Returns the parsed YAML metadata.
    """
    card = ModelCard(text)  # parses the front matter; an invalid model-index raises
    meta = yaml.safe_load(text.split("---")[1])
    assert ModelCardData(**meta).to_dict() == card.data.to_dict()  # huggingface_hub's checks
    assert meta["license"] == "apache-2.0" and meta["library_name"] == "cervix_hf"
    assert meta["pipeline_tag"] == "image-classification"
    assert all(isinstance(t, str) for t in meta["tags"])
    index = meta["model-index"]
    assert isinstance(index, list) and len(index) == 1 and isinstance(index[0]["name"], str)
    results = {}
    for result in index[0]["results"]:
        assert result["task"]["type"] == "image-classification"
        assert isinstance(result["dataset"]["name"], str)
        assert isinstance(result["dataset"]["type"], str)
        for m in result["metrics"]:
            assert isinstance(m["type"], str) and isinstance(m["value"], (int, float))
            assert math.isfinite(m["value"])
        results[result["dataset"]["split"]] = {m["name"]: m["value"] for m in result["metrics"]}
    held_out = results.pop("held-out")
    for key, value in held_out.items():
        assert value == round(metrics["test"][key], 4), key
    if "cv" in metrics:
        (split, cv_values), *rest = results.items()
        assert not rest and "CV grouped by cluster image" in split
        pooled = metrics["cv"]["pooled"]
        op = metrics["cv"]["operating_point"]["metrics"]
        for key in CARD_METRICS:
            assert cv_values[key] == round(pooled[key], 4), key
        for key in ("sensitivity", "specificity"):
            assert cv_values[f"{key}_at_operating_point"] == round(op[key], 4)
        first = index[0]["results"][0]
        assert first["dataset"]["split"] == split  # the grouped CV comes first
    else:
        assert not results
    return meta


def test_card_of_a_trained_model(trained_model_dir):
    text = (trained_model_dir / "README.md").read_text()
    metrics = json.loads((trained_model_dir / "metrics.json").read_text())
    meta = check_card(text, metrics)
    assert "base_model" not in meta  # random init
    for title in SECTIONS:
        assert f"\n{title}\n" in text
    body = text.split("---", 2)[2].strip().splitlines()
    # a random-init model on generated cells says so at the very top
    assert "RANDOMLY INITIALISED" in "\n".join(body[:4])
    assert "SYNTHETIC" in "\n".join(body[:6])
    assert "not a diagnostic device" in section(text, "## Intended use")
    assert "Metaplastic" in section(text, "## Data and grouping")
    usage = section(text, "## How to use")
    assert "from_pretrained(" in usage and "gradio_client" in usage
    # without --cv the card says what it lacks instead of inventing it
    assert "Not measured for this model" in section(text, "## Calibration and operating point")
    assert "Grouped cross-validation, confidence intervals" in text
    assert "### Held-out split" in text


def test_card_metadata_for_a_pretrained_hub_model(trained_model_dir):
    cfg = CervixConfig.from_json(trained_model_dir / "config.json").replace(
        pretrained=True,
        init_seed=None,
        backbone="resnet152.tv2_in1k",
        dataset="someone/sipakmed",
        synthetic_data=False,
    )
    text = render_model_card(cfg, repo_id="someone/cervix-model")
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["base_model"] == "timm/resnet152.tv2_in1k"
    assert meta["datasets"] == ["someone/sipakmed"]
    assert "WARNING" not in text
    assert 'from_pretrained("someone/cervix-model")' in text
    assert 'Client("someone/<space>")' in text
    assert base_model_id(cfg.replace(backbone="hf-hub:org/net@abc")) == "org/net"


@pytest.fixture(scope="module")
def evaluated_config(trained_model_dir):
    """The trained model's config after evaluate_model on generated features (fast)."""
    from cervix_hf import CervixClassifier
    from cervix_hf.evaluation import EvalOptions, evaluate_model

    model = CervixClassifier.from_pretrained(trained_model_dir)
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(30), 3)
    types = rng.integers(0, 5, size=30)[g]
    y = (types >= 3).astype(int)  # clinical: Koilocytotic, Dyskeratotic
    x = rng.normal(size=(len(g), 8)) + y[:, None] + 0.5 * (types == 2)[:, None]
    opts = EvalOptions(folds=3, protocol="seed", c_selection="fixed", n_resamples=200)
    out = evaluate_model(
        model, x, y, g.astype(str), opts=opts, cell_types=types, dataset="someone/sipakmed"
    )
    return out.config


def test_card_with_grouped_cv_intervals_operating_point_and_protocols(evaluated_config):
    cfg = evaluated_config
    text = render_model_card(cfg, repo_id="someone/cervix-model")
    check_card(text, cfg.metrics)
    cv = cfg.metrics["cv"]
    evaluation = section(text, "## Evaluation")
    assert "**grouped by\ncluster image**" in evaluation
    assert "95% percentile bootstrap over the 30 cluster images" in evaluation
    assert "chosen inside each training fold" not in evaluation  # fixed C here
    assert "fixed to the published head's C=" in evaluation
    pooled_acc = cv["pooled"]["accuracy"]
    low, high = cv["ci"]["pooled"]["accuracy"]
    assert f"| accuracy | {pooled_acc:.3f} ({low:.3f}-{high:.3f}) |" in evaluation
    assert evaluation.count("\n| 1 | ") == 1 and "\n| 3 | " in evaluation  # per-fold rows
    assert "![Out-of-fold confusion matrix at the operating point](confusion_matrix.png)" in text
    assert "(roc_curve.png)" in text
    # both protocols, on the same data, in one table
    assert "original project's protocol (leaky)" in evaluation
    assert "same grouping, grouped CV" in evaluation and "this model's protocol" in evaluation
    calib = section(text, "## Calibration and operating point")
    threshold = cv["operating_point"]["threshold"]
    assert cfg.decision_threshold == threshold
    assert f"**{threshold:.4f}**" in calib and "optimistic" in calib
    assert "![Reliability diagram](reliability.png)" in calib
    assert f"{cv['pooled']['ece']:.3f}" in calib
    assert "specificity compared with threshold 0.5" in calib
    not_measured = section(text, "## What was not measured")
    assert "chosen on the same out-of-fold" in not_measured
    assert "not computed for this model" not in not_measured


def test_card_validates_on_the_hub_endpoint(hub, evaluated_config):
    card = ModelCard(render_model_card(evaluated_config, repo_id="tester/cervix"))
    card.validate()  # POST /api/validate-yaml (the loopback hub accepts valid YAML)
    assert card.data.eval_results[0].dataset_split.startswith("3-fold CV grouped")
