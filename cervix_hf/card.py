"""Model card rendered from the top-level ``model_card.md`` template with ``ModelCard``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .config import CervixConfig
from .labels import GROUPINGS

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "model_card.md"


def _template_path() -> Path:
    if not TEMPLATE_PATH.is_file():
        raise FileNotFoundError(
            f"Model card template {TEMPLATE_PATH} is missing: run from a cervix_hf checkout "
            "(pip install -e .)."
        )
    return TEMPLATE_PATH


def _is_hub_id(source: str | None) -> bool:
    return bool(source) and not Path(source).exists() and source.count("/") == 1


def base_model_id(config: CervixConfig) -> str | None:
    """The Hub id of the backbone's pretrained weights, or None for a random init."""
    if not config.pretrained:
        return None
    name = config.backbone
    if name.startswith("hf-hub:"):
        return name[len("hf-hub:") :].split("@")[0]
    return f"timm/{name}" if "." in name else None


def card_warnings(config: CervixConfig) -> list[str]:
    """Bold lines for the top of the card when the model says nothing about real cells."""
    out = []
    if not config.pretrained:
        out.append(
            "WARNING: this model's backbone is RANDOMLY INITIALISED (no pretrained weights); it "
            "exists to test the pipeline offline and its numbers say nothing about real cells."
        )
    if config.synthetic_data:
        out.append(
            "WARNING: trained on SYNTHETIC generated cell images, not medical data; it must not "
            "be used on real slides."
        )
    return out


def render_model_card(config: CervixConfig, repo_id: str = "<user>/<repo>") -> str:
    """Render the card: YAML metadata (with ``model-index``) and the sections."""
    test: dict[str, Any] = config.metrics.get("test", {})
    dataset = config.dataset or "unknown"
    eval_results = None
    if test:
        metric_names = {
            "accuracy": "accuracy",
            "sensitivity": "recall",
            "specificity": "specificity",
            "precision": "precision",
            "f1": "f1",
            "roc_auc": "roc_auc",
        }
        eval_results = [
            EvalResult(
                task_type="image-classification",
                dataset_type=dataset if _is_hub_id(dataset) else "local",
                dataset_name=dataset,
                dataset_split="held-out",
                dataset_revision=config.dataset_revision,
                metric_type=mtype,
                metric_name=key,
                metric_value=round(float(test[key]), 4),
            )
            for key, mtype in metric_names.items()
            if test.get(key) is not None
        ]
    tags = [
        "image-classification",
        "medical",
        "cytology",
        "pap-smear",
        "cervical-cancer",
        "sipakmed",
        "skops",
        "timm",
        "scikit-learn",
        "cervix_hf",
    ]
    if not config.pretrained:
        tags.append("random-init")
    card_data = ModelCardData(
        license="apache-2.0",
        library_name="cervix_hf",
        pipeline_tag="image-classification",
        tags=tags,
        datasets=[dataset] if _is_hub_id(dataset) else None,
        base_model=base_model_id(config),
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results,
    )
    if config.grouping in GROUPINGS:
        mapping = GROUPINGS[config.grouping]
        grouping_text = (
            "; ".join(
                f"{label}: {', '.join(t for t, lab in mapping.items() if lab == label)}"
                for label in config.labels
            )
            + "."
        )
    else:
        grouping_text = "The data was labelled Normal/Abnormal before training (no cell types)."
    not_measured = [
        "Performance with the real pretrained backbone on the real SIPaKMeD data, unless the "
        "Evaluation section above comes from such a run.",
        "Performance on other labs, stains, scanners or magnifications (no external validation).",
        "Performance per patient or per slide (SIPaKMeD has no patient ids).",
        "Confidence intervals and calibration (not computed in this run).",
    ]
    card = ModelCard.from_template(
        card_data,
        template_path=str(_template_path()),
        model_name=f"cervix_hf: {config.backbone} + logistic regression",
        config=config,
        repo_id=repo_id,
        warnings=card_warnings(config),
        test=test,
        fmt=lambda v: "n/a" if v is None else f"{v:.4f}",
        data_config_text=", ".join(f"{k}={v}" for k, v in config.data_config.items()),
        dataset_text=(
            f"`{dataset}`"
            + (f" at revision `{config.dataset_revision}`" if config.dataset_revision else "")
            + (
                f" (fingerprint `{config.dataset_fingerprint}`)"
                if config.dataset_fingerprint
                else ""
            )
        ),
        grouping_text=grouping_text,
        split_text=(
            f"{100 * (config.test_size or 0):.0f}% held out, seed {config.split_seed}, "
            + (
                "grouped by cluster image (no cluster on both sides)."
                if config.metrics.get("split_grouped")
                else "per image (the data had no groups)."
            )
        ),
        not_measured=not_measured,
    )
    return str(card)
