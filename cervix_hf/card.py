"""Model card rendered from the ``model_card.md`` template with ``ModelCard``.

The template ships inside the package (``cervix_hf/templates/model_card.md``, package data, so
an installed wheel renders cards); the top-level ``model_card.md`` of a checkout is a link to it.

The body reads the typed evaluation report (:class:`~cervix_hf.evaluation.report.
EvaluationReport`) and any external validation reports. The YAML ``model-index`` lists, for
the published head, its held-out figures at the threshold ``predict`` uses (recorded in each
entry's args) plus the threshold-free AUC; the nested-CV estimate of the recipe at the same
operating-point rule; and each current external validation under that dataset's own name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .config import CervixConfig
from .evaluation.external import file_sha256, load_external
from .evaluation.report import (
    FEW_CLUSTERS,
    AtThreshold,
    EvaluationReport,
    ExternalReport,
    Performance,
)
from .evaluation.serialise import has_legacy_report, report_from_metrics
from .evaluation.text import fmt, fmt_estimate, fmt_spread, method_text
from .labels import GROUPINGS
from .metrics import ECE_WARNING
from .reuse import reuse_snippet

TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / "model_card.md"
PLACEHOLDER_REPO = "<user>/<repo>"
CARD_NAME = "README.md"

#: Threshold-dependent figures in the model-index: AtThreshold field -> (type, name).
INDEX_METRICS: dict[str, tuple[str, str]] = {
    "sensitivity": ("recall", "sensitivity"),
    "specificity": ("specificity", "specificity"),
    "ppv": ("precision", "ppv"),
    "npv": ("npv", "npv"),
    "accuracy": ("accuracy", "accuracy"),
}
#: Held-out metrics of a model without an evaluation report (``metrics["test"]``).
HELD_OUT_METRICS = ("accuracy", "sensitivity", "specificity", "precision", "f1", "roc_auc")


def _template_path() -> Path:
    if not TEMPLATE_PATH.is_file():
        raise FileNotFoundError(
            f"Model card template {TEMPLATE_PATH} is missing: reinstall cervix_hf (the wheel "
            "ships it as package data)."
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


def is_current(ext: ExternalReport, config: CervixConfig, head_sha256: str | None) -> bool:
    """Whether an external report describes the model as it is now (threshold and head)."""
    same_head = head_sha256 is None or ext.head_sha256 == head_sha256
    return same_head and abs(ext.threshold - config.decision_threshold) < 1e-12


def _entries(
    common: dict[str, Any], split: str, at: AtThreshold, auc: float | None, args: dict
) -> list[EvalResult]:
    """Model-index entries for one scored set: threshold figures with ``args``, then AUC."""
    out = []
    for key, (mtype, name) in INDEX_METRICS.items():
        value = getattr(at, key).value
        if value is not None:
            out.append(
                EvalResult(
                    **common,
                    dataset_split=split,
                    metric_type=mtype,
                    metric_name=name,
                    metric_value=round(float(value), 4),
                    metric_args=dict(args),
                )
            )
    if auc is not None:
        out.append(
            EvalResult(
                **common,
                dataset_split=split,
                metric_type="roc_auc",
                metric_name="roc_auc",
                metric_value=round(float(auc), 4),
            )
        )
    return out


def _common(dataset: str, revision: str | None, task: str) -> dict[str, Any]:
    return {
        "task_type": "image-classification",
        "task_name": task,
        "dataset_type": dataset if _is_hub_id(dataset) else "local",
        "dataset_name": dataset,
        "dataset_revision": revision,
    }


def held_out_split_name(perf: Performance) -> str:
    """The model-index split name of the published head's held-out score."""
    at = perf.at_threshold
    return f"held-out split, published head ({at.n} images, {at.n_groups} cluster images)"


def nested_split_name(report: EvaluationReport) -> str:
    """The model-index split name of the nested-CV estimate."""
    n = report.nested
    return f"nested {n.n_splits}-fold CV grouped by cluster image (the training recipe)"


def model_index_results(
    config: CervixConfig,
    dataset: str,
    external: Sequence[ExternalReport] = (),
    head_sha256: str | None = None,
) -> list[EvalResult] | None:
    """``EvalResult``s: the published head's held-out figures, the nested CV, externals."""
    task = "Normal vs Abnormal cell classification"
    common = _common(dataset, config.dataset_revision, task)
    t = round(float(config.decision_threshold), 6)
    results: list[EvalResult] = []
    report = report_from_metrics(config.metrics)
    if report is not None:
        if report.held_out is not None:
            perf = report.held_out.performance
            results += _entries(
                common,
                held_out_split_name(perf),
                perf.at_threshold,
                perf.scores.roc_auc.value,
                {"threshold": t},
            )
        perf = report.nested.performance
        rule = {
            "operating_point": f"sensitivity >= {report.target_sensitivity}, threshold "
            "re-chosen in each outer fold by the rule that set the published one",
        }
        results += _entries(
            common, nested_split_name(report), perf.at_threshold, perf.scores.roc_auc.value, rule
        )
    elif not has_legacy_report(config.metrics):
        test = config.metrics.get("test") or {}
        for key in HELD_OUT_METRICS:
            if test.get(key) is not None:
                args = (
                    None if key == "roc_auc" else {"threshold": round(float(test["threshold"]), 6)}
                )
                results.append(
                    EvalResult(
                        **common,
                        dataset_split="held-out split, published head",
                        metric_type="recall" if key == "sensitivity" else key,
                        metric_name=key,
                        metric_value=round(float(test[key]), 4),
                        metric_args=args,
                    )
                )
    for ext in external:
        if is_current(ext, config, head_sha256):
            perf = ext.performance
            results += _entries(
                _common(ext.dataset, ext.dataset_revision, task),
                f"external validation ({perf.at_threshold.n} images)",
                perf.at_threshold,
                perf.scores.roc_auc.value,
                {"threshold": round(float(ext.threshold), 6)},
            )
    return results or None


def not_measured(config: CervixConfig, report: EvaluationReport | None, n_external: int) -> list:
    """What this card's numbers do not cover, for the last section."""
    out = [
        "Performance with the real pretrained backbone on the real SIPaKMeD data, unless the "
        "Evaluation section above comes from such a run.",
        "Performance per patient or per slide (SIPaKMeD has no patient ids; cluster images "
        "are the closest grouping available).",
        "Agreement between cytologists on the labels (no inter-observer data).",
    ]
    if not n_external:
        out.append(
            "Performance on other labs, stains, scanners or magnifications (no external "
            "validation recorded)."
        )
    if report is None:
        out.append(
            "Grouped cross-validation, confidence intervals, calibration and an operating point "
            "(not computed for this model: run scripts/evaluate.py)."
        )
    elif report.prevalence is None:
        out.append(
            "Positive predictive value at screening prevalence: the PPV above is at the data's "
            "Abnormal share, set by how the dataset was collected (give --prevalence)."
        )
    return out


def _context(config: CervixConfig, report: EvaluationReport | None) -> dict[str, Any]:
    """Values the template needs beyond the report itself."""
    if report is None:
        return {}
    methods = {
        e.method
        for perf in [report.nested.performance]
        + ([report.held_out.performance] if report.held_out else [])
        for e in (perf.at_threshold.sensitivity, perf.scores.roc_auc)
        if e.method
    }
    thresholds = [f.threshold for f in report.nested.folds if f.repeat == 0]
    return {
        "methods": {m: method_text(m) for m in sorted(methods)},
        "few_clusters": report.few_clusters(),
        "few_limit": FEW_CLUSTERS,
        "fold_thresholds": (
            f"{min(thresholds):.4f}-{max(thresholds):.4f}" if thresholds else "n/a"
        ),
        "poorly_calibrated": (report.nested.performance.scores.ece.value or 0.0) > ECE_WARNING,
    }


def render_model_card(
    config: CervixConfig,
    repo_id: str = PLACEHOLDER_REPO,
    external: Sequence[ExternalReport] = (),
    head_sha256: str | None = None,
    revision: str | None = None,
    locator: dict[str, Any] | None = None,
) -> str:
    """Render the card: YAML metadata (with ``model-index``) and the sections.

    Args:
        config: the model's config (its metrics hold the evaluation report).
        repo_id: the Hub id for the usage snippets.
        external: external validation reports (see :mod:`cervix_hf.evaluation.external`).
        head_sha256: hash of the current head file, to tell stale external reports.
        revision: the commit holding the model's files, pinned in the reuse snippet (a card
            cannot name the commit that adds it: :func:`cervix_hf.modeling.publish_directory`
            pushes the files, then the card that pins them).
        locator: the model directory's locator evaluation
            (:func:`cervix_hf.fields.evaluate.load_locator_evaluation`), if any.
    """
    metrics = config.metrics
    report = report_from_metrics(metrics)
    dataset = config.dataset or "unknown"
    tags = [
        "image-classification",
        "medical",
        "cytology",
        "pap-smear",
        "cervical-cancer",
        "sipakmed",
        "skops",
        "scikit-learn",
        "onnx",
        "cervix_hf",
    ]
    if not config.pretrained:
        tags.append("random-init")
    if config.synthetic_data:
        tags.append("synthetic-data")
    card_data = ModelCardData(
        # no library_name: the Hub's snippet for sklearn imports the removed skops.hub_utils,
        # timm's cannot load this repo, and an unknown name gets none; the card's own
        # reuse snippet (cervix_hf.reuse) is the one that works. Tags naming a registered
        # library (timm, sklearn) would bring a wrong snippet back, so there are none.
        license="apache-2.0",
        pipeline_tag="image-classification",
        tags=tags,
        datasets=[dataset] if _is_hub_id(dataset) else None,
        base_model=base_model_id(config),
        model_name=repo_id.split("/")[-1],
        eval_results=model_index_results(config, dataset, external, head_sha256),
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
    current = [e for e in external if is_current(e, config, head_sha256)]
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
        test=metrics.get("test", {}),
        report=report,
        legacy=has_legacy_report(metrics),
        external=current,
        stale_external=[e for e in external if e not in current],
        calibration=config.head_params.get("calibration") or {},
        ece_warning=ECE_WARNING,
        fmt=fmt,
        e=fmt_estimate,
        spread=fmt_spread,
        reuse_snippet=reuse_snippet(repo_id, revision, config),
        locator=locator,
        data_config_text=", ".join(f"{k}={v}" for k, v in config.data_config.items()),
        precision_text=(
            config.precision.card_sentence(config.positive_label)
            if config.precision is not None
            else "fp32 features (not recorded: a model saved before cervix_hf recorded it)"
        ),
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
                "grouped by cluster image (no cluster on both sides)"
                if metrics.get("split_grouped")
                else "per image (the data had no groups)"
            )
            + (
                ", stratified by cell type."
                if metrics.get("split_strata") == "cell_type"
                else ", stratified by label."
            )
        ),
        not_measured=not_measured(config, report, len(current)),
        **_context(config, report),
    )
    return str(card)


def repo_id_from_card(text: str) -> str | None:
    """The repo id a rendered card's usage snippet names, if it names one."""
    match = re.search(r'CervixClassifier\.from_pretrained\("([^"<>]+)"\)', text)
    return match.group(1) if match else None


def revision_from_card(text: str) -> str | None:
    """The commit a rendered card's reuse snippet pins, if it pins one."""
    match = re.search(r'hf_hub_download\([^)]*revision="([0-9a-f]{40})"', text)
    return match.group(1) if match else None


def write_card(
    model_dir: str | Path,
    config: CervixConfig,
    repo_id: str | None = None,
    revision: str | None = None,
    *,
    keep_revision: bool = True,
) -> Path:
    """Render ``README.md`` in a model directory with what the directory holds beside the
    model: external validation reports and a locator evaluation.

    Without ``repo_id``, the id in the current card's snippets is kept; without ``revision``
    the commit the current card pins is kept, unless ``keep_revision`` is False (the model's
    files changed: the old commit no longer holds them).
    """
    from .fields.evaluate import load_locator_evaluation

    model_dir = Path(model_dir)
    path = model_dir / CARD_NAME
    current = path.read_text() if path.is_file() else ""
    if repo_id is None:
        repo_id = repo_id_from_card(current)
    if revision is None and keep_revision:
        revision = revision_from_card(current)
    head = model_dir / config.head
    text = render_model_card(
        config,
        repo_id=repo_id or PLACEHOLDER_REPO,
        external=load_external(model_dir),
        head_sha256=file_sha256(head) if head.is_file() else None,
        revision=revision,
        locator=load_locator_evaluation(model_dir),
    )
    path.write_text(text)
    return path
