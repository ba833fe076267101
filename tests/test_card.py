import json
import math
import re

import numpy as np
import pytest
import yaml
from huggingface_hub import ModelCard, ModelCardData

from cervix_hf.card import base_model_id, render_model_card
from cervix_hf.config import CervixConfig
from cervix_hf.evaluation.serialise import report_from_metrics

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
#: model-index name -> AtThreshold field
THRESHOLD_FIGURES = {
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "ppv": "ppv",
    "npv": "npv",
    "accuracy": "accuracy",
}


def section(text: str, title: str) -> str:
    """The body of one ``## title`` (or ``### title``) section."""
    body = text.split(f"\n{title}\n", 1)[1]
    level = title.split(" ")[0]
    return re.split(rf"\n{level} |\n## ", body, maxsplit=1)[0]


def check_card(text: str, metrics: dict, threshold: float) -> dict:
    """Check a rendered card's metadata like the Hub would, and against ``metrics.json``.

    Every threshold-dependent model-index entry of the published head must be at
    ``threshold`` (the one ``predict`` uses) and say so in its args. Returns
    ``{split: {name: (value, args)}}``.
    """
    card = ModelCard(text)  # parses the front matter; an invalid model-index raises
    meta = yaml.safe_load(text.split("---")[1])
    assert ModelCardData(**meta).to_dict() == card.data.to_dict()  # huggingface_hub's checks
    assert meta["license"] == "apache-2.0" and "library_name" not in meta
    assert "onnx" in meta["tags"] and not {"timm", "sklearn"} & set(meta["tags"])
    assert meta["pipeline_tag"] == "image-classification"
    index = meta["model-index"]
    assert isinstance(index, list) and len(index) == 1 and isinstance(index[0]["name"], str)
    results = {}
    for result in index[0]["results"]:
        assert result["task"]["type"] == "image-classification"
        assert isinstance(result["dataset"]["name"], str)
        for m in result["metrics"]:
            assert isinstance(m["value"], (int, float)) and math.isfinite(m["value"])
            results.setdefault(result["dataset"]["split"], {})[m["name"]] = (
                m["value"],
                m.get("args"),
            )
    report = report_from_metrics(metrics)
    held = [s for s in results if s.startswith("held-out split, published head")]
    assert len(held) == 1
    figures = results[held[0]]
    for name, (_, args) in figures.items():
        if name == "roc_auc":
            assert args is None  # threshold-free
        else:
            assert args == {"threshold": round(threshold, 6)}, name
    if report is None:
        test = metrics["test"]
        assert test["threshold"] == threshold
        for name, (value, _) in figures.items():
            assert value == round(test[name], 4), name
        assert len(results) == 1
        return results
    at = report.held_out.performance.at_threshold
    assert at.threshold == threshold
    for name, field in THRESHOLD_FIGURES.items():
        assert figures[name][0] == round(getattr(at, field).value, 4), name
    assert figures["roc_auc"][0] == round(report.held_out.performance.scores.roc_auc.value, 4)
    nested = [s for s in results if s.startswith("nested")]
    assert len(nested) == 1
    nat = report.nested.performance.at_threshold
    for name, field in THRESHOLD_FIGURES.items():
        value, args = results[nested[0]][name]
        assert value == round(getattr(nat, field).value, 4)
        assert "re-chosen in each outer fold" in args["operating_point"]
    assert next(iter(results)) == held[0]  # the published head comes first
    return results


def test_card_of_a_trained_model(trained_model_dir):
    text = (trained_model_dir / "README.md").read_text()
    metrics = json.loads((trained_model_dir / "metrics.json").read_text())
    check_card(text, metrics, 0.5)
    meta = yaml.safe_load(text.split("---")[1])
    assert "base_model" not in meta  # random init
    for title in SECTIONS:
        assert f"\n{title}\n" in text
    body = text.split("---", 2)[2].strip().splitlines()
    # a random-init model on generated cells says so at the very top
    assert "RANDOMLY INITIALISED" in "\n".join(body[:4])
    assert "SYNTHETIC" in "\n".join(body[:6])
    assert "not a diagnostic device" in section(text, "## Intended use")
    assert "Metaplastic" in section(text, "## Data and grouping")
    assert "stratified by cell type" in section(text, "## Training procedure and hyper-parameters")
    usage = section(text, "## How to use")
    assert "from_pretrained(" in usage and "gradio_client" in usage
    # without an evaluation the card says what it lacks instead of inventing it
    assert "Not measured for this model" in section(text, "## Calibration and operating point")
    assert "Grouped cross-validation, confidence intervals" in text
    held = section(text, "### Held-out split")
    assert "at the threshold `predict` uses (0.5)" in held


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


def fake_data(n_groups=30, seed=0, d=8):
    """Generated features with cluster images and cell types (fast, no backbone)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), 3)
    types = (np.arange(n_groups) % 5)[g]
    y = (types >= 3).astype(int)  # clinical: Koilocytotic, Dyskeratotic
    x = rng.normal(size=(len(g), d)) + 1.5 * y[:, None] + 0.5 * (types == 2)[:, None]
    return x, y, g.astype(str), types


@pytest.fixture(scope="module")
def evaluated_config(trained_model_dir):
    """The trained model's config after evaluate_model on generated features (fast)."""
    from cervix_hf import CervixClassifier
    from cervix_hf.evaluation import DataInfo, EvalOptions, evaluate_model
    from cervix_hf.head import fit_head
    from cervix_hf.split import train_test_split

    model = CervixClassifier.from_pretrained(trained_model_dir)
    x, y, g, types = fake_data()
    split = train_test_split(y, g, 0.2, 0, strata=types)
    head, params = fit_head(x[split.train], y[split.train], g[split.train], c_grid=(0.1, 1.0))
    model.head = head
    model.config = model.config.replace(
        feature_dim=x.shape[1], head_params={**params, "C": params["C"]}
    )
    opts = EvalOptions(
        folds=3, protocol="seed", c_selection="fixed", n_resamples=200, prevalence=0.05
    )
    out, _ = evaluate_model(
        model,
        x,
        y,
        g,
        opts=opts,
        train_rows=split.train,
        test_rows=split.test,
        info=DataInfo("someone/sipakmed", None, "fp", "clinical"),
        cell_types=types,
        seed_feats=x,
    )
    return out.config


def test_card_headline_is_the_published_head_and_the_nested_estimate(evaluated_config):
    cfg = evaluated_config
    text = render_model_card(cfg, repo_id="someone/cervix-model")
    check_card(text, cfg.metrics, cfg.decision_threshold)
    report = report_from_metrics(cfg.metrics)
    t = report.operating_point.threshold
    assert cfg.decision_threshold == t
    headline = section(text, "### Headline: the operating point `predict` uses")
    assert "**Which number is which:**" in headline
    assert "scores the published head itself" in headline and "training recipe" in headline
    at = report.held_out.performance.at_threshold
    sens = at.sensitivity
    row = next(ln for ln in headline.splitlines() if "published head, held-out split" in ln)
    assert f"| {t:.4f} |" in row and f"{sens.value:.3f} ({sens.low:.3f}-{sens.high:.3f})" in row
    assert "nested 3-fold grouped CV" in headline and "re-chosen per fold" in headline
    # the confusion matrix at the operating point, in the text
    c = at.confusion
    assert f"| true Normal | {c.tn} | {c.fp} |" in headline
    assert f"| true Abnormal | {c.fn} | {c.tp} |" in headline
    assert "At a prevalence of 0.05 (given with `--prevalence`)" in headline
    # 30 cluster images: the card says its intervals under-cover
    assert "Fewer than 50 cluster images" in headline
    per_type = section(text, "### Per cell type")
    for name in ("Metaplastic", "Koilocytotic", "Dyskeratotic"):
        assert f"| {name} |" in per_type
    assert "false-positive rate" in per_type and "| sensitivity |" in per_type


def test_card_never_prints_a_bare_zero_width_interval(evaluated_config):
    text = render_model_card(evaluated_config)
    for low, high in re.findall(r"\((\d\.\d{3})-(\d\.\d{3})\)", text):
        assert low != high, f"bare zero-width interval ({low}-{high})"


def test_card_shows_the_faithful_seed_comparison(evaluated_config):
    text = render_model_card(evaluated_config)
    seed = report_from_metrics(evaluated_config.metrics).seed_protocol
    comparison = section(text, "### Protocol comparison: the original project's protocol")
    assert "**All figures in this table\nare at threshold 0.5**" in comparison
    assert "stretched Resize((224, 224))" in comparison and "C=1" in comparison
    assert f"{seed.split_seeds} split seeds" in comparison
    e = seed.inflation
    assert f"**{e.value:.3f} ({e.low:.3f}" in comparison
    calib = section(text, "## Calibration and operating point")
    assert "calibration slope" in calib and "(decision_curve.png)" in calib
    assert "the held-out split played no part" in calib
    not_measured = section(text, "## What was not measured")
    assert "no external validation recorded" in not_measured


def test_card_external_validation_section_and_index(evaluated_config):
    from cervix_hf.evaluation import DataInfo, EvalOptions
    from cervix_hf.evaluation.external import score_external

    cfg = evaluated_config
    _x, y, g, _types = fake_data(seed=9)
    rng = np.random.default_rng(1)
    p = np.clip(0.4 * y + rng.normal(0.3, 0.2, len(y)), 0, 1)
    ext = score_external(
        cfg,
        p,
        y,
        g,
        info=DataInfo("lab/other-cells", "abc123", "f" * 16, "clinical"),
        labels="cell types mapped with the model's grouping 'clinical'",
        head_sha256="h",
        opts=EvalOptions(n_resamples=200),
    )
    text = render_model_card(cfg, external=[ext], head_sha256="h")
    external = section(text, "### External validation")
    assert "`lab/other-cells` @ `abc123`" in external and "nothing was refitted" in external
    meta = yaml.safe_load(text.split("---")[1])
    names = [r["dataset"]["name"] for r in meta["model-index"][0]["results"]]
    assert "lab/other-cells" in names
    entry = next(r for r in meta["model-index"][0]["results"] if r["dataset"]["name"] != names[0])
    assert entry["dataset"]["revision"] == "abc123"
    assert all(
        m["args"] == {"threshold": round(cfg.decision_threshold, 6)}
        for m in entry["metrics"]
        if m["name"] != "roc_auc"
    )
    # a report made at another threshold (or head) describes an earlier model: not indexed
    stale = render_model_card(cfg.replace(decision_threshold=0.123), external=[ext])
    assert "lab/other-cells" not in stale.split("---")[1]
    assert "Earlier external validations describe an earlier version" in stale


def test_card_of_a_legacy_evaluation_asks_to_rerun(trained_model_dir):
    cfg = CervixConfig.from_json(trained_model_dir / "config.json")
    legacy = cfg.replace(metrics={**cfg.metrics, "cv": {"pooled": {}, "operating_point": {}}})
    text = render_model_card(legacy)
    assert "recorded by an older cervix_hf" in section(text, "## Evaluation")


def test_card_validates_on_the_hub_endpoint(hub, evaluated_config):
    card = ModelCard(render_model_card(evaluated_config, repo_id="tester/cervix"))
    card.validate()  # POST /api/validate-yaml (the loopback hub accepts valid YAML)
    assert card.data.eval_results[0].dataset_split.startswith("held-out split, published head")
