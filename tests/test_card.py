import json

import yaml
from huggingface_hub import ModelCard

from cervix_hf.card import base_model_id, render_model_card
from cervix_hf.config import CervixConfig

SECTIONS = [
    "## Model details",
    "## Intended use",
    "### Out of scope",
    "## Data and grouping",
    "## Training procedure",
    "## Evaluation",
    "## Limitations and risks",
    "## How to use",
    "## What was not measured",
]


def test_card_of_a_trained_model(trained_model_dir):
    text = (trained_model_dir / "README.md").read_text()
    card = ModelCard(text)  # parses the YAML front matter like the Hub does
    data = card.data.to_dict()
    assert data["pipeline_tag"] == "image-classification"
    assert data["library_name"] == "cervix_hf" and "base_model" not in data  # random init
    metrics = json.loads((trained_model_dir / "metrics.json").read_text())["test"]
    results = {m["name"]: m["value"] for m in data["model-index"][0]["results"][0]["metrics"]}
    assert results["accuracy"] == round(metrics["accuracy"], 4)
    assert results["sensitivity"] == round(metrics["sensitivity"], 4)
    for section in SECTIONS:
        assert section in text
    body = text.split("---", 2)[2].strip().splitlines()
    # a random-init model on generated cells says so at the very top
    assert "RANDOMLY INITIALISED" in "\n".join(body[:4])
    assert "SYNTHETIC" in "\n".join(body[:6])
    assert "not a diagnostic device" in text


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
    assert base_model_id(cfg.replace(backbone="hf-hub:org/net@abc")) == "org/net"
