"""``CervixClassifier``: the published model, run without torch.

In the spirit of SetFit: ``from_pretrained`` / ``save_pretrained`` / ``push_to_hub``, a JSON
config beside the weights, a model card rendered from a template -- but the heads are saved
with skops, never pickled, and the backbone travels with the model as ``backbone.onnx``
(its SHA-256 in ``config.json``, checked before ONNX Runtime opens it). Predicting needs
onnxruntime, numpy, Pillow, scikit-learn and skops only; training needs torch and timm
(:mod:`cervix_hf.training`).
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from . import hub
from .analysis import CellAnalysis
from .artifacts import copy_verified, load_heads, save_skops
from .config import CONFIG_NAME, METRICS_NAME, CervixConfig
from .errors import ConfigMismatchError, ModelLoadError
from .explain import contribution_maps, linear_form
from .images import ImageInput
from .novelty import is_blank, novelty_scores
from .predictor.onnx_backbone import OnnxBackbone, spatial_mean, spatial_std
from .predictor.preprocess import Prepared, stack

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8


def _as_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]  # one path, PIL image, array or bytes


class CervixClassifier:
    """Normal vs Abnormal classifier for single-cell Pap-smear images.

    Args:
        config: the model's :class:`CervixConfig`.
        backbone: the model's ONNX backbone (see :mod:`cervix_hf.predictor`).
        head: fitted scikit-learn pipeline on the binary labels (``classes_`` = 0, 1).
        cell_type_head: optional fitted pipeline on the five cell types.
        novelty: optional unusual-image detector (see :mod:`cervix_hf.novelty`).
        source: where the model was loaded from (``path``, or ``repo_id`` and ``revision``).
    """

    def __init__(
        self,
        config: CervixConfig,
        backbone: OnnxBackbone,
        head: Any,
        cell_type_head: Any | None = None,
        *,
        novelty: Any | None = None,
        source: dict[str, str | None] | None = None,
    ) -> None:
        self.config = config
        self.backbone = backbone
        self.head = head
        self.cell_type_head = cell_type_head
        self.novelty = novelty
        self.source = source or {}
        self._linear = linear_form(head)

    @property
    def classes_(self) -> tuple[str, ...]:
        """Class names in the column order of :meth:`predict_proba`."""
        return self.config.labels

    @property
    def has_cell_types(self) -> bool:
        """Whether the model has the five-cell-type head."""
        return self.cell_type_head is not None

    @property
    def logit_name(self) -> str:
        """What the heat map decomposes: the head's logit, or for a calibrated head the mean
        pre-calibration logit of its fold heads."""
        if hasattr(self.head, "calibrated_classifiers_"):
            return "mean pre-calibration logit of the calibrated head's folds"
        return "logit"

    def features(self, images: ImageInput | Sequence[ImageInput]) -> np.ndarray:
        """Pooled backbone features (N, D)."""
        return self.backbone.embed(_as_list(images), DEFAULT_BATCH_SIZE)

    def predict_proba(self, images: ImageInput | Sequence[ImageInput]) -> np.ndarray:
        """Probabilities (N, 2) in :attr:`classes_` order for one image or a list."""
        return self.head.predict_proba(self.features(images))

    def predict(self, images: ImageInput | Sequence[ImageInput]) -> list[str]:
        """Label names at the model's decision threshold on P(positive)."""
        p = self.predict_proba(images)[:, self.config.positive_index]
        return [self._decide(float(pi)) for pi in p]

    def predict_cell_type_proba(self, images: ImageInput | Sequence[ImageInput]) -> np.ndarray:
        """Probabilities (N, 5) over ``config.cell_types``.

        Raises:
            ConfigMismatchError: if the model has no cell-type head.
        """
        if self.cell_type_head is None:
            raise ConfigMismatchError("This model has no cell-type head (train with --cell-types).")
        return self.cell_type_head.predict_proba(self.features(images))

    def prepare(self, image: ImageInput) -> Prepared:
        """Read and preprocess one image (the crop the backbone will see).

        Raises:
            ImageLoadError: for an input that is not a readable image.
        """
        return self.backbone.prepare(image)

    def analyze(
        self, images: ImageInput | Sequence[ImageInput], batch_size: int = DEFAULT_BATCH_SIZE
    ) -> list[CellAnalysis]:
        """Everything the app shows, from ONE backbone pass per image.

        Probabilities, the decision at the model's threshold, cell-type probabilities (when
        the model has that head), the unusual-image score and flag (when it has a detector)
        and the exact per-location logit contributions for the heat map. Images are read one
        at a time and only their crops are kept, so memory does not grow with their size.

        Raises:
            ImageLoadError: for an input that is not a readable image.
        """
        items = _as_list(images)
        out: list[CellAnalysis] = []
        for start in range(0, len(items), batch_size):
            chunk = [self.prepare(img) for img in items[start : start + batch_size]]
            out += self.analyze_prepared(chunk)
        return out

    def analyze_prepared(self, prepared: Sequence[Prepared]) -> list[CellAnalysis]:
        """:meth:`analyze` for images already read by :meth:`prepare`, in one batch."""
        if not prepared:
            return []
        fmap = self.backbone.feature_map(stack(prepared))
        pooled = spatial_mean(fmap)
        proba = self.head.predict_proba(pooled)
        types = self.cell_type_head.predict_proba(pooled) if self.cell_type_head else None
        scores = None
        if self.novelty is not None and self.config.novelty_threshold:
            stats = np.concatenate([pooled, spatial_std(fmap)], axis=1)
            scores = novelty_scores(self.novelty, stats) / self.config.novelty_threshold
        contrib = None
        if self._linear is not None:
            contrib = contribution_maps(fmap, self._linear[0])
        pos = self.config.positive_index
        out = []
        for i, item in enumerate(prepared):
            p = float(proba[i, pos])
            out.append(
                CellAnalysis(
                    probabilities={
                        label: float(proba[i, j]) for j, label in enumerate(self.classes_)
                    },
                    p_positive=p,
                    decision=self._decide(p),
                    threshold=self.config.decision_threshold,
                    cell_types=(
                        {t: float(types[i, j]) for j, t in enumerate(self.config.cell_types)}
                        if types is not None and self.config.cell_types
                        else None
                    ),
                    novelty_score=float(scores[i]) if scores is not None else None,
                    unusual=(
                        bool(scores[i] > 1.0 or is_blank(item.view)) if scores is not None else None
                    ),
                    contributions=contrib[i] if contrib is not None else None,
                    intercept=self._linear[1] if self._linear is not None else None,
                    view=item.view,
                )
            )
        return out

    def _decide(self, p_positive: float) -> str:
        cfg = self.config
        return cfg.positive_label if p_positive >= cfg.decision_threshold else cfg.negative_label

    # -- persistence ---------------------------------------------------------------------

    def save_pretrained(
        self, save_directory: str | Path, *, model_card: bool = True, repo_id: str | None = None
    ) -> Path:
        """Write the heads (``*.skops``), ``backbone.onnx``, config, metrics, plots and card.

        Args:
            save_directory: where to write (created if needed).
            model_card: also render ``README.md`` from the card template.
            repo_id: the Hub id to show in the card's usage snippet.
        """
        from .card import PLACEHOLDER_REPO, write_card

        cfg = self.config
        if cfg.backbone_onnx is None or cfg.backbone_onnx.sha256 != self.backbone.sha256:
            raise ConfigMismatchError(
                "config.backbone_onnx does not describe this model's backbone: build the "
                "model with cervix_hf.training or CervixClassifier.from_pretrained."
            )
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        copy_verified(self.backbone.path, out / cfg.backbone_onnx.file, cfg.backbone_onnx.sha256)
        save_skops(self.head, out / cfg.head)
        if self.cell_type_head is not None and cfg.cell_type_head:
            save_skops(self.cell_type_head, out / cfg.cell_type_head)
        if self.novelty is not None and cfg.novelty_detector:
            save_skops(self.novelty, out / cfg.novelty_detector)
        cfg.to_json(out / CONFIG_NAME)
        if cfg.metrics:
            (out / METRICS_NAME).write_text(json.dumps(cfg.metrics, indent=2) + "\n")
        if cfg.metrics.get("cv"):  # the card embeds these plots
            from .plots import write_plots

            write_plots(cfg.metrics, out, labels=cfg.labels)
        if model_card:  # with the reports the directory holds; files changed: unpinned
            write_card(out, cfg, repo_id=repo_id or PLACEHOLDER_REPO, keep_revision=False)
        logger.info("Saved model to %s", out)
        return out

    @classmethod
    def from_pretrained(
        cls,
        repo_id_or_dir: str | Path,
        revision: str | None = None,
        *,
        token: str | bool | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        force_download: bool = False,
        backbone: OnnxBackbone | None = None,
        threads: int | None = None,
        warm_up: bool = False,
    ) -> CervixClassifier:
        """Load a model from a local directory or a Hub repo.

        Args:
            repo_id_or_dir: a directory written by :meth:`save_pretrained` or a Hub model id.
            revision: Hub branch, tag or commit sha (a sha pins the exact model).
            token, cache_dir, local_files_only, force_download: as for
                ``huggingface_hub.hf_hub_download``.
            backbone: an already-loaded ONNX backbone to reuse (checked against the config).
            threads: ONNX Runtime intra-op threads (default: this process's cores).
            warm_up: run one blank image once loaded (servers: the first request is then as
                fast as the next).

        Raises:
            ModelLoadError / HubError: with what to fix (missing or changed files, untrusted
                head types, config/head/backbone mismatch, no connection).
        """
        path = Path(repo_id_or_dir)
        source: dict[str, str | None]
        if path.is_dir():
            config = CervixConfig.from_json(path / CONFIG_NAME)

            def fetch(name: str) -> Path:
                return path / name

            source = {"path": str(path.resolve())}
        else:
            repo_id = str(repo_id_or_dir)
            options = hub.HubOptions(token, cache_dir, local_files_only, force_download)
            cfg_path = hub.download_file(repo_id, CONFIG_NAME, revision, options=options)
            commit = hub.commit_of(cfg_path, revision)
            config = CervixConfig.from_json(cfg_path)

            def fetch(name: str) -> Path:
                return hub.download_file(repo_id, name, commit, options=options)

            source = {"repo_id": repo_id, "revision": commit}
        with ThreadPoolExecutor(1, thread_name_prefix="cervix-backbone") as pool:
            # ONNX Runtime reads and optimises the graph outside the GIL, while this thread
            # imports skops and reads the heads
            pending = None
            if backbone is None:
                if config.backbone_onnx is None:  # saved before models carried their backbone
                    config, onnx_path = _export_backbone(config)
                    locate = functools.partial(Path, onnx_path)
                else:
                    locate = functools.partial(fetch, config.backbone_onnx.file)
                pending = pool.submit(_load_backbone, config, locate, warm_up, threads)
            elif config.backbone_onnx is None or backbone.sha256 != config.backbone_onnx.sha256:
                raise ConfigMismatchError(
                    f"The given backbone ({backbone.sha256[:12]}) is not this model's "
                    "backbone.onnx; the predictions would not be the model's."
                )
            head, cell_head, novelty = load_heads(config, fetch)
            if pending is not None:
                backbone = pending.result()
        assert backbone is not None
        return cls(config, backbone, head, cell_head, novelty=novelty, source=source)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool = False,
        commit_message: str | None = None,
    ) -> str:
        """Create the repo if needed and upload the model (see :func:`publish_directory`).

        Returns:
            The commit sha, to pin with ``from_pretrained(repo_id, revision=sha)``.
        """
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, repo_id=repo_id)
            return publish_directory(
                tmp,
                repo_id,
                private=private,
                commit_message=commit_message or f"Upload cervix_hf model ({self.config.backbone})",
            )


def publish_directory(
    folder: str | Path, repo_id: str, *, private: bool = False, commit_message: str
) -> str:
    """Upload a saved model directory, then its card pinned to that upload.

    Two commits: the model's files (and a card without a pinned commit), then the card alone,
    re-rendered so that its reuse snippet downloads the files at the first commit (a card
    cannot name the commit that adds it). Both commits hold the same model files; the local
    card is re-rendered the same way.

    Returns:
        The last commit sha (pin it, or the one the card names: same files).

    Raises:
        HubError: when the repo cannot be created or written.
    """
    from .card import CARD_NAME, write_card

    folder = Path(folder)
    config = CervixConfig.from_json(folder / CONFIG_NAME)
    commit = hub.upload_dir(folder, repo_id, private=private, commit_message=commit_message)
    card = write_card(folder, config, repo_id=repo_id, revision=commit)
    return hub.upload_file(
        card, CARD_NAME, repo_id, commit_message=f"Model card: pin the model files at {commit}"
    )


def _load_backbone(
    config: CervixConfig, fetch: Callable[[], Path], warm_up: bool, threads: int | None = None
) -> OnnxBackbone:
    assert config.backbone_onnx is not None
    return OnnxBackbone.load(
        fetch(),
        sha256=config.backbone_onnx.sha256,
        name=config.backbone,
        data_config=config.data_config,
        feature_dim=config.feature_dim,
        threads=threads,
        label=config.backbone_onnx.file,
        warm_up=warm_up,
    )


def _export_backbone(config: CervixConfig) -> tuple[CervixConfig, Path]:
    """For a model saved without ``backbone.onnx``: rebuild the torch backbone from the config
    (checked against its weights hash), export its trunk (checked against torch) and record
    the file in the config. Needs torch and timm."""
    try:
        from .predictor.export import export_backbone
    except ImportError as exc:
        raise ModelLoadError(
            f"This model was saved without backbone.onnx; exporting it needs torch and timm "
            f"({exc}). Install them, or re-save the model with a current cervix_hf."
        ) from None
    from .features import backbone_for_config

    logger.warning(
        "%s has no backbone.onnx (saved by an older cervix_hf): exporting it once from torch.",
        config.backbone,
    )
    path, record = export_backbone(backbone_for_config(config, device="cpu", engine="torch"))
    return config.replace(backbone_onnx=record), path
