"""Model card rendered from the top-level ``model_card.md`` template with ``ModelCard``.

The YAML metadata comes from ``ModelCardData`` (``model-index`` from ``EvalResult``s: the
grouped-CV metrics when the model was cross-validated, and the held-out split's); the body
from the template, with tables prepared here from ``config.metrics``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .config import CervixConfig
from .labels import GROUPINGS
from .metrics import ECE_WARNING

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "model_card.md"
PLACEHOLDER_REPO = "<user>/<repo>"

#: metrics.json key -> (model-index metric type, label in the card's tables).
CARD_METRICS: dict[str, tuple[str, str]] = {
    "accuracy": ("accuracy", "accuracy"),
    "sensitivity": ("recall", "sensitivity (Abnormal recall)"),
    "specificity": ("specificity", "specificity"),
    "precision": ("precision", "precision (PPV at this data's prevalence)"),
    "f1": ("f1", "F1"),
    "roc_auc": ("roc_auc", "ROC AUC"),
    "brier": ("brier_score", "Brier score (lower is better)"),
    "ece": ("ece", "ECE, 10 bins (lower is better)"),
}
#: Metrics that do not depend on the decision threshold.
THRESHOLD_FREE = ("roc_auc", "brier", "ece")
#: Held-out metrics in the model-index (the held-out split has no ECE).
HELD_OUT_METRICS = ("accuracy", "sensitivity", "specificity", "precision", "f1", "roc_auc")


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


def fmt(value: float | None, digits: int = 4) -> str:
    """A metric for the card: fixed decimals, ``n/a`` for a missing value."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def fmt_ci(value: float | None, interval: list[float] | None, digits: int = 3) -> str:
    """``value (low-high)``, or the value alone without an interval."""
    if value is None:
        return "n/a"
    if not interval:
        return fmt(value, digits)
    return f"{value:.{digits}f} ({interval[0]:.{digits}f}-{interval[1]:.{digits}f})"


def _spread_text(spread: dict[str, float] | None) -> str:
    if not spread:
        return "n/a"
    return f"{spread['mean']:.3f} ± {spread['sd']:.3f} [{spread['min']:.3f}, {spread['max']:.3f}]"


def model_index_results(config: CervixConfig, dataset: str) -> list[EvalResult] | None:
    """``EvalResult``s for the model-index: grouped-CV metrics first, then the held-out split.

    Values are the ``metrics.json`` values rounded to 4 decimals; ``metric_name`` is the
    ``metrics.json`` key (``..._at_operating_point`` for the operating point).
    """
    metrics = config.metrics
    common = {
        "task_type": "image-classification",
        "task_name": "Normal vs Abnormal cell classification",
        "dataset_type": dataset if _is_hub_id(dataset) else "local",
        "dataset_name": dataset,
        "dataset_revision": config.dataset_revision,
    }
    results: list[EvalResult] = []
    cv = metrics.get("cv")
    if cv:
        split = (
            f"{cv['n_splits']}-fold CV grouped by cluster image, out-of-fold"
            if cv["grouped"]
            else f"{cv['n_splits']}-fold CV per image, out-of-fold"
        )
        for key, (mtype, _) in CARD_METRICS.items():
            value = cv["pooled"].get(key)
            if value is not None:
                results.append(
                    EvalResult(
                        **common,
                        dataset_split=split,
                        metric_type=mtype,
                        metric_name=key,
                        metric_value=round(float(value), 4),
                    )
                )
        op = cv["operating_point"]
        for key in ("sensitivity", "specificity"):
            value = op["metrics"].get(key)
            if value is not None:
                results.append(
                    EvalResult(
                        **common,
                        dataset_split=split,
                        metric_type=f"{key}_at_operating_point",
                        metric_name=f"{key}_at_operating_point",
                        metric_value=round(float(value), 4),
                        metric_args={"threshold": round(float(op["threshold"]), 6)},
                    )
                )
    test = metrics.get("test") or {}
    for key in HELD_OUT_METRICS:
        if test.get(key) is not None:
            results.append(
                EvalResult(
                    **common,
                    dataset_split="held-out",
                    metric_type=CARD_METRICS[key][0],
                    metric_name=key,
                    metric_value=round(float(test[key]), 4),
                )
            )
    return results or None


def _cv_context(cv: dict[str, Any]) -> dict[str, Any]:
    """Rows of the card's grouped-CV tables."""
    ci = cv["ci"]
    op = cv["operating_point"]
    rows = []
    for key, (_, label) in CARD_METRICS.items():
        rows.append(
            {
                "name": label,
                "pooled": fmt_ci(cv["pooled"].get(key), (ci["pooled"] or {}).get(key)),
                "folds": _spread_text(cv["fold_spread"].get(key)),
                "op": (
                    "same (no threshold)"
                    if key in THRESHOLD_FREE
                    else fmt_ci(op["metrics"].get(key), (ci["operating_point"] or {}).get(key))
                ),
            }
        )
    folds = [
        {
            "fold": f["fold"] + 1,
            "n": f["n"],
            "n_groups": "n/a" if f.get("n_groups") is None else f["n_groups"],
            "n_positive": f["n_positive"],
            "C": f.get("C"),
            "accuracy": fmt(f["accuracy"], 3),
            "sensitivity": fmt(f["sensitivity"], 3),
            "specificity": fmt(f["specificity"], 3),
            "roc_auc": fmt(f["roc_auc"], 3),
            "ece": fmt(f.get("ece"), 3),
        }
        for f in cv["folds"]
    ]
    if cv.get("c_selection") == "fixed":
        c_text = (
            f"fixed to the published head's C={cv.get('c_model')} in every fold (that C was "
            "chosen on the model's training split, which overlaps the test folds: mildly "
            "optimistic)"
        )
    else:
        c_text = (
            "chosen inside each training fold by a grouped inner cross-validation (nested; "
            "the test fold never influences it)"
        )
    pooled_ece = cv["pooled"].get("ece")
    return {
        "cv_rows": rows,
        "fold_rows": folds,
        "c_text": c_text,
        "ci_text": (
            f"{round(100 * ci['level'])}% percentile bootstrap over "
            + (
                f"the {ci['n_units']} cluster images (whole cluster images resampled with "
                "replacement, not cells)"
                if ci["unit"] == "groups"
                else f"the {ci['n_units']} cells (the data has no cluster-image groups)"
            )
            + f", {ci['n_resamples']} resamples, seed {ci['seed']}"
        ),
        "poorly_calibrated": pooled_ece is not None and pooled_ece > ECE_WARNING,
        "spec_cost": op.get("specificity_cost_vs_0_5"),
        "op_ci": ci["operating_point"] or {},
    }


def _seed_rows(seed: dict[str, Any], cv: dict[str, Any], grouping: str) -> list[dict[str, Any]]:
    """Rows of the protocol comparison: the original protocol, then grouped CVs."""
    split = seed["split"]
    gcv = seed["grouped_cv"]

    def row(name: str, grouping_: str, how: str, n: int, m: dict, ci: dict | None) -> dict:
        ci = ci or {}
        return {
            "name": name,
            "grouping": grouping_,
            "how": how,
            "n": n,
            **{k: fmt_ci(m.get(k), ci.get(k)) for k in ("accuracy", "sensitivity", "specificity")},
            "roc_auc": fmt_ci(m.get("roc_auc"), ci.get("roc_auc")),
        }

    leak = split.get("test_cells_with_cluster_in_train")
    leak_text = (
        f"; {100 * leak:.0f}% of test cells share a cluster image with training cells"
        if (leak is not None)
        else ""
    )
    return [
        row(
            "original project's protocol (leaky)",
            "seed",
            f"{split['description']}{leak_text}; CI over cells",
            split["test_size"],
            split["test"],
            split["ci"],
        ),
        row(
            "same grouping, grouped CV",
            "seed",
            f"{gcv['description']}; CI over cluster images",
            gcv["pooled"]["n"],
            gcv["pooled"],
            gcv["ci"],
        ),
        row(
            "this model's protocol (headline)",
            grouping,
            f"{cv['n_splits']}-fold CV grouped by cluster image; CI over cluster images",
            cv["n"],
            cv["pooled"],
            cv["ci"]["pooled"],
        ),
    ]


def not_measured(config: CervixConfig) -> list[str]:
    """What this card's numbers do not cover, for the last section."""
    metrics = config.metrics
    out = [
        "Performance with the real pretrained backbone on the real SIPaKMeD data, unless the "
        "Evaluation section above comes from such a run.",
        "Performance on other labs, stains, scanners or magnifications (no external validation).",
        "Performance per patient or per slide (SIPaKMeD has no patient ids; cluster images "
        "are the closest grouping available).",
        "Positive predictive value at screening prevalence: the data's Abnormal share is set "
        "by how the dataset was collected, not by a screening population.",
        "Agreement between cytologists on the labels (no inter-observer data).",
    ]
    if metrics.get("cv"):
        out += [
            "The published head itself on unseen data: cross-validation estimates the "
            "training recipe; the head was refitted on the training split.",
            "The operating point on independent data: it was chosen on the same out-of-fold "
            "predictions it is reported on, and its intervals hold the threshold fixed.",
        ]
    else:
        out.append(
            "Grouped cross-validation, confidence intervals, calibration and an operating point "
            "(not computed for this model: run scripts/evaluate.py)."
        )
    return out


def render_model_card(config: CervixConfig, repo_id: str = PLACEHOLDER_REPO) -> str:
    """Render the card: YAML metadata (with ``model-index``) and the sections."""
    metrics = config.metrics
    test: dict[str, Any] = metrics.get("test", {})
    cv: dict[str, Any] | None = metrics.get("cv")
    seed: dict[str, Any] | None = metrics.get("protocol_seed")
    dataset = config.dataset or "unknown"
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
    if config.synthetic_data:
        tags.append("synthetic-data")
    card_data = ModelCardData(
        license="apache-2.0",
        library_name="cervix_hf",
        pipeline_tag="image-classification",
        tags=tags,
        datasets=[dataset] if _is_hub_id(dataset) else None,
        base_model=base_model_id(config),
        model_name=repo_id.split("/")[-1],
        eval_results=model_index_results(config, dataset),
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
    calibration = config.head_params.get("calibration") or {}
    card = ModelCard.from_template(
        card_data,
        template_path=str(_template_path()),
        model_name=f"cervix_hf: {config.backbone} + logistic regression",
        config=config,
        repo_id=repo_id,
        space_id=(
            f"{repo_id.split('/')[0]}/<space>" if repo_id != PLACEHOLDER_REPO else "<user>/<space>"
        ),
        warnings=card_warnings(config),
        test=test,
        cv=cv,
        seed=seed,
        seed_rows=_seed_rows(seed, cv, config.grouping) if seed and cv else None,
        calibration=calibration,
        ece_warning=ECE_WARNING,
        fmt=fmt,
        fmt_ci=fmt_ci,
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
                if metrics.get("split_grouped")
                else "per image (the data had no groups)."
            )
        ),
        not_measured=not_measured(config),
        **(_cv_context(cv) if cv else {}),
    )
    return str(card)
