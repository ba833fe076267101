"""Orchestration: evaluate a model on its data, or validate it on other data, and save.

* :func:`evaluate_model` -- the statistics of :func:`~cervix_hf.evaluation.pipeline.
  evaluate_features` for a :class:`~cervix_hf.CervixClassifier` on its training data, and the
  model with the chosen threshold and the report in its metrics (nothing saved).
* :func:`save_evaluated` -- ``save_pretrained`` into a directory, the card re-rendered with
  any external validations there, and the directory pushed.
* :func:`evaluate_directory` -- a saved model on a dataset: its own training data (same
  fingerprint) is re-evaluated in place; any other data (or ``external=True``) is an external
  validation that changes nothing of the model and adds ``external/<name>.json`` and the
  card's "External validation" section.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import EvaluationError
from ..head import C_GRID
from ..labels import CELL_TYPES, GROUPINGS
from ..metrics import ECE_WARNING, binary_metrics
from .cv import fit_calibrated_head
from .external import file_sha256, load_external, score_external, write_external
from .pipeline import (
    DataInfo,
    EvalData,
    EvalOptions,
    EvaluationResult,
    Published,
    evaluate_features,
)
from .protocols import SEED_DATA_CONFIG
from .report import REPORT_KEY, EvaluationReport, ExternalReport
from .scoring import CellTypes
from .text import external_lines, summary_lines

if TYPE_CHECKING:
    from ..config import CervixConfig
    from ..modeling import CervixClassifier

logger = logging.getLogger(__name__)


def cell_types_of(codes: np.ndarray | None, grouping: str, positive_label: str) -> CellTypes | None:
    """The five SIPaKMeD types of the rows and what each counts as under ``grouping``."""
    if codes is None or grouping not in GROUPINGS:
        return None
    labels = tuple(GROUPINGS[grouping][t] for t in CELL_TYPES)
    return CellTypes(
        np.asarray(codes, dtype=int), CELL_TYPES, labels, tuple(x == positive_label for x in labels)
    )


def seed_features(
    config: CervixConfig,
    dataset: Any,
    fingerprint: str,
    *,
    weights_file: str | None = None,
    cache_dir: str | None = None,
    device: str | None = None,
    engine: str = "auto",
    progress: bool = True,
) -> np.ndarray:
    """Features of the model's backbone under the seed's preprocessing (stretched resize).

    They get their own feature-cache entry (the data config is part of the key).

    Raises:
        EvaluationError: the rebuilt backbone's weights are not the model's.
    """
    from ..features import create_backbone, dataset_features

    backbone = create_backbone(
        config.backbone,
        pretrained=config.pretrained,
        revision=config.backbone_revision,
        init_seed=config.init_seed if config.init_seed is not None else 0,
        weights_file=weights_file,
        data_config=SEED_DATA_CONFIG,
        device=device,
        engine=engine,
    )
    if backbone.weights_sha256 != config.weights_sha256:
        raise EvaluationError(
            "The backbone rebuilt for the seed protocol has other weights than the model's; "
            "install the versions in config.json 'versions' or pass the same weights file."
        )
    return dataset_features(
        backbone, dataset, cache_dir=cache_dir, progress=progress, fingerprint=fingerprint
    )


def evaluate_model(
    model: CervixClassifier,
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    *,
    opts: EvalOptions,
    train_rows: np.ndarray,
    test_rows: np.ndarray | None,
    info: DataInfo,
    cell_types: np.ndarray | None = None,
    seed_feats: np.ndarray | None = None,
    origin: str = "scripts/evaluate.py",
) -> tuple[CervixClassifier, EvaluationResult]:
    """Evaluate a model on its training data; return it with the new threshold and report.

    The returned model's ``decision_threshold`` is the operating point (chosen on the
    training rows' out-of-fold predictions); its metrics hold the report under ``cv`` and the
    held-out split scored at that threshold under ``test``. With ``opts.calibrate`` the head
    is replaced by a calibrated one fitted on ``train_rows``.

    Args:
        labels: indices into ``model.config.labels``.
        train_rows, test_rows: the rows the head was fitted on / held out.
    """
    from ..modeling import CervixClassifier
    from ..plots import PLOT_FILES

    opts.check()
    cfg = model.config
    pos = cfg.positive_index
    labels = np.asarray(labels).astype(int)
    y = (labels == pos).astype(int)
    c = cfg.head_params.get("C")
    if c is None:
        raise EvaluationError("config.json's head_params lack the head's C; retrain the model.")
    previous = (cfg.head_params.get("calibration") or {}).get("method")
    method = opts.calibrate or previous
    head, head_params = model.head, dict(cfg.head_params)
    rows = np.asarray(train_rows)
    strata = np.asarray(cell_types)[rows] if cell_types is not None else None
    if opts.calibrate:
        head = fit_calibrated_head(
            features[rows],
            labels[rows],
            groups[rows] if groups is not None else None,
            c=float(c),
            method=opts.calibrate,
            n_splits=opts.folds,
            seed=opts.seed,
            strata=strata,
        )
        head_params["calibration"] = {
            "method": opts.calibrate,
            "folds": len(head.calibrated_classifiers_),
            "grouped": groups is not None,
            "fitted_on": f"the model's training split ({len(rows)} images)",
        }
    scores = cfg.head_params.get("cv_scores")
    result = evaluate_features(
        EvalData(features, y, groups, cell_types_of(cell_types, cfg.grouping, cfg.positive_label)),
        Published(head, pos, float(c), method, rows, test_rows),
        opts,
        info,
        c_grid=tuple(float(v) for v in scores) if scores else C_GRID,
        seed_features=seed_feats,
        origin=origin,
    )
    report = dataclasses.replace(result.report, plots=dict(PLOT_FILES))
    metrics = dict(cfg.metrics)
    metrics[REPORT_KEY] = report.to_dict()
    threshold = report.operating_point.threshold
    if result.held_out_scores is not None and test_rows is not None:
        metrics["test"] = binary_metrics(y[test_rows], result.held_out_scores, threshold)
    for line in summary_lines(report):
        logger.info("%s", line)
    ece = report.nested.performance.scores.ece.value
    if ece is not None and ece > ECE_WARNING and not method:
        logger.warning(
            "ECE %.3f > %.2f: the probabilities are poorly calibrated; consider --calibrate.",
            ece,
            ECE_WARNING,
        )
    config = cfg.replace(decision_threshold=threshold, metrics=metrics, head_params=head_params)
    evaluated = CervixClassifier(
        config,
        model.backbone,
        head,
        model.cell_type_head,
        novelty=model.novelty,
        source=model.source,
    )
    return evaluated, dataclasses.replace(result, report=report)


def save_evaluated(
    model: CervixClassifier,
    out: str | Path,
    *,
    push_to_hub: str | None = None,
    private: bool = False,
    message: str = "Upload cervix_hf model with its evaluation",
) -> str | None:
    """``save_pretrained`` into ``out`` (card re-rendered with the external validations
    saved there), then push the directory; returns the commit sha or None."""
    from ..card import write_card
    from ..modeling import publish_directory

    model.save_pretrained(out, repo_id=push_to_hub)
    if load_external(out):
        write_card(out, model.config, repo_id=push_to_hub)
    if not push_to_hub:
        return None
    return publish_directory(out, push_to_hub, private=private, commit_message=message)


@dataclass
class EvaluateResult:
    """What :func:`evaluate_directory` produced: the report (internal) or the external one."""

    model: CervixClassifier
    out: Path
    report: EvaluationReport | None
    external: ExternalReport | None
    commit: str | None

    def lines(self) -> list[str]:
        """Lines for the CLI."""
        if self.external is not None:
            return external_lines(self.external)
        return summary_lines(self.report) if self.report is not None else []


def evaluate_directory(
    model_dir: str | Path,
    dataset: str,
    opts: EvalOptions | None = None,
    *,
    external: bool = False,
    revision: str | None = None,
    split: str | None = None,
    cache_dir: str | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    engine: str = "auto",
    progress: bool = True,
    push_to_hub: str | None = None,
    private: bool = False,
) -> EvaluateResult:
    """Evaluate a saved model on a dataset.

    On the data it was trained on (same fingerprint, ``external=False``): the evaluation is
    re-run and the directory re-saved (threshold, metrics, plots, card). On any other data:
    an external validation of the frozen model at its stored threshold; only
    ``external/<name>.json`` and the card (``README.md``) are written.

    Raises:
        EvaluationError: data labelled differently from the model's, or a held-out split
            that cannot be rebuilt.
    """
    from ..data import load_cells
    from ..features import backbone_for_config, dataset_feature_stats
    from ..modeling import CervixClassifier
    from ..split import train_test_split

    opts = opts or EvalOptions()
    opts.check()
    model_dir = Path(model_dir)
    model = CervixClassifier.from_pretrained(model_dir)
    cfg = model.config
    data = load_cells(dataset, revision=revision, split=split, grouping=cfg.grouping)
    same = data.fingerprint == cfg.dataset_fingerprint and not external
    # the training data: its features at the training precision (the head's own, cached);
    # other data: what the published model computes when it serves (fp32)
    backbone = backbone_for_config(
        cfg, device=device, engine=engine, precision=None if same else "fp32"
    )
    if data.grouping != cfg.grouping and (same or data.grouping != "given"):
        raise EvaluationError(
            f"The model was trained with grouping {cfg.grouping!r} but {dataset} gives "
            f"{data.grouping!r} labels; evaluate on data labelled like its training data."
        )
    ds = data.dataset
    columns = ds.select_columns(
        [col for col in ("label", "cell_type", "group") if col in ds.column_names]
    ).with_format("numpy")
    labels = np.asarray(columns["label"], dtype=int)
    groups = np.asarray(columns["group"]).astype(str) if data.has_groups else None
    types = np.asarray(columns["cell_type"], dtype=int) if data.has_cell_types else None
    feats, spread = dataset_feature_stats(
        backbone,
        ds,
        cache_dir=cache_dir,
        batch_size=batch_size,
        progress=progress,
        fingerprint=data.fingerprint,
    )
    info = DataInfo(data.source, data.revision, data.fingerprint, data.grouping)
    if not same:
        if opts.calibrate or opts.protocol != "grouped" or opts.repeats > 1:
            logger.warning(
                "--calibrate, --protocol and --repeats are ignored: an external validation "
                "scores the frozen model and fits nothing."
            )
        return _external(
            model,
            model_dir,
            feats,
            spread,
            labels,
            groups,
            types,
            info,
            opts,
            push_to_hub=push_to_hub,
            private=private,
        )
    train_rows, test_rows = np.arange(len(labels)), None
    if cfg.test_size:
        by_type = cfg.metrics.get("split_strata") == "cell_type" and types is not None
        held = train_test_split(
            labels, groups, cfg.test_size, cfg.split_seed or 0, types if by_type else None
        )
        expected = (cfg.metrics.get("train_size"), cfg.metrics.get("test_size"))
        if None not in expected and expected != (len(held.train), len(held.test)):
            raise EvaluationError(
                f"Cannot rebuild the model's held-out split from {dataset}: it gives "
                f"{len(held.train)}/{len(held.test)} images, the model recorded "
                f"{expected[0]}/{expected[1]}. Evaluate with the cervix_hf that trained it."
            )
        train_rows, test_rows = held.train, held.test
    seed_feats = None
    if opts.protocol == "seed" and types is not None:
        seed_feats = seed_features(
            cfg,
            ds,
            data.fingerprint,
            cache_dir=cache_dir,
            device=device,
            engine=engine,
            progress=progress,
        )
    model, result = evaluate_model(
        model,
        feats,
        labels,
        groups,
        opts=opts,
        train_rows=train_rows,
        test_rows=test_rows,
        info=info,
        cell_types=types,
        seed_feats=seed_feats,
    )
    commit = save_evaluated(model, model_dir, push_to_hub=push_to_hub, private=private)
    return EvaluateResult(model, model_dir, result.report, None, commit)


def _external(
    model: CervixClassifier,
    model_dir: Path,
    feats: np.ndarray,
    spread: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    types: np.ndarray | None,
    info: DataInfo,
    opts: EvalOptions,
    *,
    push_to_hub: str | None,
    private: bool,
) -> EvaluateResult:
    """Score the frozen model on other data; write only the report and the card."""
    from .. import hub
    from ..card import write_card
    from ..novelty import novelty_scores

    cfg = model.config
    pos = cfg.positive_index
    logger.info(
        "%s is not the data this model was trained on (fingerprint %s, model's %s): external "
        "validation of the frozen model at its threshold %.4f; the model is not changed.",
        info.dataset,
        info.fingerprint,
        cfg.dataset_fingerprint,
        cfg.decision_threshold,
    )
    p = model.head.predict_proba(feats)[:, pos]
    unusual = None
    if model.novelty is not None and cfg.novelty_threshold:
        stats = np.concatenate([feats, spread], axis=1)
        unusual = novelty_scores(model.novelty, stats) > cfg.novelty_threshold
    how = (
        f"Normal/Abnormal labels given by the data (the model's grouping is {cfg.grouping!r}: "
        "check that they mean the same)"
        if info.grouping == "given"
        else f"cell types mapped with the model's grouping {cfg.grouping!r}"
    )
    report = score_external(
        cfg,
        p,
        (labels == pos).astype(int),
        groups,
        info=info,
        labels=how,
        head_sha256=file_sha256(model_dir / cfg.head),
        opts=opts,
        types=cell_types_of(types, cfg.grouping, cfg.positive_label),
        unusual=unusual,
    )
    path = write_external(model_dir, report)
    write_card(model_dir, cfg, repo_id=push_to_hub)
    commit = None
    if push_to_hub:
        with tempfile.TemporaryDirectory() as tmp:
            stage = Path(tmp)
            (stage / path.parent.name).mkdir()
            (stage / path.parent.name / path.name).write_bytes(path.read_bytes())
            (stage / "README.md").write_bytes((model_dir / "README.md").read_bytes())
            commit = hub.upload_dir(
                stage,
                push_to_hub,
                private=private,
                commit_message=f"External validation on {info.dataset}",
            )
    return EvaluateResult(model, model_dir, None, report, commit)
