"""The training pipeline: load -> features -> split -> head -> evaluate -> save -> push."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import CELL_TYPE_HEAD_NAME, NOVELTY_NAME, CervixConfig
from .data import load_cells
from .features import DEFAULT_BACKBONE, create_backbone, dataset_feature_stats
from .features.precision import PrecisionRecord, head_agreement, sample_rows
from .fields.params import LocatorParams
from .head import C_GRID, fit_head
from .labels import CELL_TYPES, LABELS, POSITIVE_LABEL
from .metrics import binary_metrics, multiclass_metrics
from .modeling import CervixClassifier
from .novelty import fit_novelty, novelty_scores
from .predictor.export import serving_backbone
from .split import train_test_split

logger = logging.getLogger(__name__)
SYNTHETIC_MARK = "SYNTHETIC"


@dataclass
class TrainOptions:
    """Options of :func:`train` (the CLI flags of ``scripts/train.py``)."""

    dataset: str
    out: Path
    dataset_name: str | None = None  # how config.json and the card name the data
    revision: str | None = None
    split: str | None = None
    backbone: str = DEFAULT_BACKBONE
    backbone_revision: str | None = None
    pretrained: bool = True
    weights_file: str | None = None
    init_seed: int = 0
    grouping: str = "clinical"
    seed: int = 0
    test_size: float = 0.2
    cell_types: bool = False
    c_grid: tuple[float, ...] = C_GRID
    batch_size: int | None = None  # None: chosen for the engine (CPU 8-16, CUDA 256)
    cache_dir: str | None = None
    device: str | None = None
    engine: str = "auto"  # auto: measured on a CPU, torch on CUDA (cervix_hf.features.probe)
    # fp32: the head is fitted and evaluated on the features the saved model serves with (ONNX
    # Runtime fp32); "auto" may pick bf16 where faster, and the model then records how far
    # serving differs (measured here: up to 0.017 in P(Abnormal), over the 1e-3 contract)
    precision: str = "fp32"
    push_to_hub: str | None = None
    private: bool = False
    progress: bool = True
    cv_folds: int = 0  # > 0: evaluation (operating point, held-out, nested CV; plots, card)
    target_sensitivity: float = 0.99
    calibrate: str | None = None
    protocol: str = "grouped"
    prevalence: float | None = None
    repeats: int = 1


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    model: CervixClassifier
    out: Path
    metrics: dict[str, Any]
    commit: str | None


def _dataset_revision(source: str, revision: str | None) -> str | None:
    """The commit sha of a Hub dataset, so the config pins the exact data."""
    if Path(source).exists():
        return revision
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return HfApi().dataset_info(source, revision=revision).sha or revision
    except (HfHubHTTPError, OSError) as exc:
        logger.warning("Could not resolve the dataset revision (%s); recording %r.", exc, revision)
        return revision


def with_precision_record(
    model: CervixClassifier, backbone: Any, feats: np.ndarray, ds: Any, rows: np.ndarray
) -> CervixClassifier:
    """The model with its precision contract in its config: the precision its head's
    features were computed in, and how closely the serving path (the model's ONNX backbone,
    fp32) reproduces the head's outputs on a sample of training images, at the threshold
    ``predict`` uses. Above 1e-3 in P(positive), or any flipped decision, it warns loudly
    (the card says so too).
    """
    sample = sample_rows(rows)
    images = [ds[int(i)]["image"] for i in sample]
    served = model.backbone.embed(images)
    cfg = model.config
    agreement = head_agreement(
        model.head, feats[sample], served, cfg.decision_threshold, cfg.positive_index
    )
    record = PrecisionRecord.of(backbone, agreement)
    warning = record.warning(cfg.positive_label)
    if warning:
        logger.warning("%s", warning)
    else:
        logger.info(
            "Serving agreement on %d training images: max |delta P| %.1e, %d flips",
            agreement.n,
            agreement.max_abs_delta_p,
            agreement.n_flips,
        )
    return CervixClassifier(
        cfg.replace(precision=record),
        model.backbone,
        model.head,
        model.cell_type_head,
        novelty=model.novelty,
        source=model.source,
    )


def train(opts: TrainOptions) -> TrainResult:
    """Train, evaluate on the held-out split, save and optionally push a model."""
    t0 = time.perf_counter()
    data = load_cells(
        opts.dataset, revision=opts.revision, split=opts.split, grouping=opts.grouping
    )
    ds = data.dataset
    columns = ds.select_columns(
        [c for c in ("label", "cell_type", "group") if c in ds.column_names]
    )
    columns = columns.with_format("numpy")
    labels = np.asarray(columns["label"], dtype=int)
    groups = np.asarray(columns["group"]).astype(str) if data.has_groups else None
    types = np.asarray(columns["cell_type"], dtype=int) if data.has_cell_types else None
    # stratified by cell type within cluster groups, so no type is missing from either side
    split = train_test_split(labels, groups, test_size=opts.test_size, seed=opts.seed, strata=types)

    backbone = create_backbone(
        opts.backbone,
        pretrained=opts.pretrained,
        revision=opts.backbone_revision,
        init_seed=opts.init_seed,
        weights_file=opts.weights_file,
        device=opts.device,
        engine=opts.engine,
        precision=opts.precision,
        cache_dir=opts.cache_dir,
    )
    feats, spread = dataset_feature_stats(
        backbone,
        ds,
        cache_dir=opts.cache_dir,
        batch_size=opts.batch_size,
        progress=opts.progress,
        fingerprint=data.fingerprint,
    )
    tr, te = split.train, split.test
    g_tr = groups[tr] if groups is not None else None
    t_fit = time.perf_counter()
    head, head_params = fit_head(feats[tr], labels[tr], g_tr, c_grid=opts.c_grid, seed=opts.seed)
    head_params["fit_seconds"] = round(time.perf_counter() - t_fit, 3)
    positive = LABELS.index(POSITIVE_LABEL)
    p_test = head.predict_proba(feats[te])[:, positive]
    metrics: dict[str, Any] = {
        # at 0.5, the threshold predict uses until an evaluation chooses an operating point
        "test": binary_metrics(labels[te] == positive, p_test),
        "train_size": len(tr),
        "test_size": len(te),
        "split_grouped": split.grouped,
        "split_strata": "cell_type" if types is not None else "label",
    }
    logger.info(
        "Held-out: accuracy %.4f, sensitivity %s, specificity %s, ROC AUC %s",
        metrics["test"]["accuracy"],
        metrics["test"]["sensitivity"],
        metrics["test"]["specificity"],
        metrics["test"]["roc_auc"],
    )
    cell_head = None
    if opts.cell_types:
        if not data.has_cell_types:
            logger.warning("--cell-types ignored: the data has no cell-type labels.")
        else:
            cell_head, cell_params = fit_head(
                feats[tr], types[tr], g_tr, c_grid=opts.c_grid, seed=opts.seed
            )
            head_params["cell_type_head"] = cell_params
            metrics["test_cell_type"] = multiclass_metrics(
                types[te], cell_head.predict(feats[te]), list(CELL_TYPES)
            )
            logger.info(
                "Cell-type head: held-out accuracy %.4f", metrics["test_cell_type"]["accuracy"]
            )
    stats = np.concatenate([feats, spread], axis=1)
    detector, novelty_threshold = fit_novelty(stats[tr], g_tr)
    metrics["novelty"] = {
        "threshold": novelty_threshold,
        "threshold_from": "leave-one-cluster-out" if g_tr is not None else "leave-one-out",
        # held-out cells: their cluster images played no part in setting the threshold
        "heldout_flagged_rate": float(
            (novelty_scores(detector, stats[te]) > novelty_threshold).mean()
        ),
    }
    description = getattr(ds.info, "description", "") or ""
    # the model serves (and is evaluated and saved) on its exported backbone.onnx
    serving, onnx_file = serving_backbone(backbone, opts.cache_dir)
    config = CervixConfig(
        backbone=backbone.name,
        backbone_revision=backbone.revision,
        pretrained=backbone.pretrained,
        init_seed=backbone.init_seed,
        weights_sha256=backbone.weights_sha256,
        backbone_onnx=onnx_file,
        data_config=dict(backbone.data_config),
        feature_dim=backbone.feature_dim,
        grouping=data.grouping,
        cell_types=CELL_TYPES if cell_head is not None else None,
        cell_type_head=CELL_TYPE_HEAD_NAME if cell_head is not None else None,
        novelty_detector=NOVELTY_NAME,
        novelty_threshold=novelty_threshold,
        locator=LocatorParams(),  # how the app finds this model's cells in whole fields
        head_params=head_params,
        dataset=opts.dataset_name or data.source,
        dataset_revision=_dataset_revision(data.source, data.revision),
        dataset_fingerprint=data.fingerprint,
        synthetic_data=description.startswith(SYNTHETIC_MARK),
        split_seed=opts.seed,
        test_size=opts.test_size,
        metrics=metrics,
    )
    model = CervixClassifier(config, serving, head, cell_head, novelty=detector)
    commit = None
    if opts.cv_folds:  # operating point, held-out score, nested CV, plots; pushes the directory
        from .evaluation import DataInfo, EvalOptions, evaluate_model, save_evaluated
        from .evaluation.run import seed_features

        eval_opts = EvalOptions(
            folds=opts.cv_folds,
            seed=opts.seed,
            target_sensitivity=opts.target_sensitivity,
            calibrate=opts.calibrate,
            protocol=opts.protocol,
            prevalence=opts.prevalence,
            repeats=opts.repeats,
        )
        eval_opts.check()
        seed_feats = None
        if opts.protocol == "seed" and types is not None:
            seed_feats = seed_features(
                config,
                ds,
                data.fingerprint,
                weights_file=opts.weights_file,
                cache_dir=opts.cache_dir,
                device=opts.device,
                engine=opts.engine,
                progress=opts.progress,
            )
        model, _ = evaluate_model(
            model,
            feats,
            labels,
            groups,
            opts=eval_opts,
            train_rows=tr,
            test_rows=te,
            info=DataInfo(
                config.dataset or data.source,
                config.dataset_revision,
                data.fingerprint,
                data.grouping,
            ),
            cell_types=types,
            seed_feats=seed_feats,
            origin="scripts/train.py --cv",
        )
        model = with_precision_record(model, backbone, feats, ds, tr)
        commit = save_evaluated(model, opts.out, push_to_hub=opts.push_to_hub, private=opts.private)
    else:
        model = with_precision_record(model, backbone, feats, ds, tr)
        model.save_pretrained(opts.out, repo_id=opts.push_to_hub)
        if opts.push_to_hub:
            commit = model.push_to_hub(opts.push_to_hub, private=opts.private)
    logger.info("Done in %.1f s: model in %s", time.perf_counter() - t0, opts.out)
    return TrainResult(model, Path(opts.out), model.config.metrics, commit)
