"""``CervixClassifier``: a frozen timm backbone plus a skops-saved scikit-learn head.

In the spirit of SetFit: ``from_pretrained`` / ``save_pretrained`` / ``push_to_hub``, a JSON
config beside the weights, and a model card rendered from a template -- but the head is saved
with skops, never pickled.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import hub
from .analysis import CellAnalysis
from .config import CONFIG_NAME, METRICS_NAME, CervixConfig
from .errors import ConfigMismatchError
from .explain import contribution_maps, linear_form
from .features import DEFAULT_BATCH_SIZE, Backbone, check_backbone, create_backbone, spatial_std
from .head import check_head, load_head, save_head
from .images import ImageInput
from .novelty import is_blank, novelty_scores

logger = logging.getLogger(__name__)


def _as_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]  # one path, PIL image, array or bytes


class CervixClassifier:
    """Normal vs Abnormal classifier for single-cell Pap-smear images.

    Args:
        config: the model's :class:`CervixConfig`.
        backbone: the feature extractor it was trained with.
        head: fitted scikit-learn pipeline on the binary labels (``classes_`` = 0, 1).
        cell_type_head: optional fitted pipeline on the five cell types.
        novelty: optional unusual-image detector (see :mod:`cervix_hf.novelty`).
        source: where the model was loaded from (``path``, or ``repo_id`` and ``revision``).
    """

    def __init__(
        self,
        config: CervixConfig,
        backbone: Backbone,
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
        return self.backbone.embed(_as_list(images))

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

    def analyze(
        self, images: ImageInput | Sequence[ImageInput], batch_size: int = DEFAULT_BATCH_SIZE
    ) -> list[CellAnalysis]:
        """Everything the app shows, from ONE backbone pass per image.

        Probabilities, the decision at the model's threshold, cell-type probabilities (when
        the model has that head), the unusual-image score and flag (when it has a detector)
        and the exact per-location logit contributions for the heat map.

        Raises:
            ImageLoadError: for an input that is not a readable image.
        """
        items = _as_list(images)
        out: list[CellAnalysis] = []
        pos = self.config.positive_index
        for start in range(0, len(items), batch_size):
            batch = self.backbone.preprocess(items[start : start + batch_size])
            fmap = self.backbone.feature_map(batch)
            pooled = self.backbone.pool(fmap).float().cpu().numpy()
            views = self.backbone.to_images(batch)
            proba = self.head.predict_proba(pooled)
            types = None
            if self.cell_type_head is not None:
                types = self.cell_type_head.predict_proba(pooled)
            scores = None
            if self.novelty is not None and self.config.novelty_threshold:
                stats = np.concatenate([pooled, spatial_std(fmap)], axis=1)
                scores = novelty_scores(self.novelty, stats) / self.config.novelty_threshold
            contrib = None
            if self._linear is not None:
                contrib = contribution_maps(fmap.float().cpu().numpy(), self._linear[0])
            for i in range(len(pooled)):
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
                            bool(scores[i] > 1.0 or is_blank(views[i]))
                            if scores is not None
                            else None
                        ),
                        contributions=contrib[i] if contrib is not None else None,
                        intercept=self._linear[1] if self._linear is not None else None,
                        view=views[i],
                    )
                )
        return out

    def _decide(self, p_positive: float) -> str:
        neg = next(label for label in self.config.labels if label != self.config.positive_label)
        return self.config.positive_label if p_positive >= self.config.decision_threshold else neg

    # -- persistence ---------------------------------------------------------------------

    def save_pretrained(
        self, save_directory: str | Path, *, model_card: bool = True, repo_id: str | None = None
    ) -> Path:
        """Write the heads (``*.skops``), config, metrics, plots and the card (``README.md``).

        Args:
            save_directory: where to write (created if needed).
            model_card: also render ``README.md`` from the ``model_card.md`` template.
            repo_id: the Hub id to show in the card's usage snippet.
        """
        from .card import render_model_card

        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        save_head(self.head, out / self.config.head)
        if self.cell_type_head is not None and self.config.cell_type_head:
            save_head(self.cell_type_head, out / self.config.cell_type_head)
        if self.novelty is not None and self.config.novelty_detector:
            save_head(self.novelty, out / self.config.novelty_detector)
        self.config.to_json(out / CONFIG_NAME)
        if self.config.metrics:
            import json

            (out / METRICS_NAME).write_text(json.dumps(self.config.metrics, indent=2) + "\n")
        if self.config.metrics.get("cv"):  # the card embeds these plots
            from .plots import write_plots

            write_plots(self.config.metrics, out, labels=self.config.labels)
        if model_card:
            (out / "README.md").write_text(
                render_model_card(self.config, repo_id=repo_id or "<user>/<repo>")
            )
        logger.info("Saved model to %s", out)
        return out

    @classmethod
    def from_pretrained(
        cls,
        repo_id_or_dir: str | Path,
        revision: str | None = None,
        *,
        device: str | None = None,
        weights_file: str | Path | None = None,
        backbone: Backbone | None = None,
        engine: str = "auto",
    ) -> CervixClassifier:
        """Load a model from a local directory or a Hub repo.

        Args:
            repo_id_or_dir: a directory written by :meth:`save_pretrained` or a Hub model id.
            revision: Hub branch, tag or commit sha (a sha pins the exact model).
            device: torch device for the backbone.
            weights_file: local backbone weights to use instead of downloading them.
            backbone: an already-built backbone to reuse (checked against the config).
            engine: ``"auto"`` (ONNX Runtime on the CPU, torch on CUDA), ``"torch"`` or
                ``"onnx"``; see :func:`cervix_hf.engines.plan_execution`.

        Raises:
            ModelLoadError / HubError: with what to fix (missing files, untrusted head types,
                config/head/backbone mismatch, no connection).
        """
        path = Path(repo_id_or_dir)
        source: dict[str, str | None]
        if path.is_dir():
            config = CervixConfig.from_json(path / CONFIG_NAME)
            files = {name: path / name for name in _head_files(config)}
            source = {"path": str(path.resolve())}
        else:
            repo_id = str(repo_id_or_dir)
            cfg_path = hub.download_file(repo_id, CONFIG_NAME, revision)
            commit = hub.commit_of(cfg_path, revision)
            config = CervixConfig.from_json(cfg_path)
            files = {name: hub.download_file(repo_id, name, commit) for name in _head_files(config)}
            source = {"repo_id": repo_id, "revision": commit}
        head = load_head(files[config.head])
        check_head(head, feature_dim=config.feature_dim, classes=config.labels, name=config.head)
        cell_head = None
        if config.cell_type_head:
            cell_head = load_head(files[config.cell_type_head])
            check_head(
                cell_head,
                feature_dim=config.feature_dim,
                classes=config.cell_types or (),
                name=config.cell_type_head,
            )
        novelty = None
        if config.novelty_detector:
            novelty = load_head(files[config.novelty_detector])
            if not hasattr(novelty, "steps") or not hasattr(novelty[-1], "kneighbors"):
                raise ConfigMismatchError(
                    f"{config.novelty_detector} is not a cervix_hf unusual-image detector."
                )
        if backbone is None:
            backbone = create_backbone(
                config.backbone,
                pretrained=config.pretrained,
                revision=config.backbone_revision,
                init_seed=config.init_seed if config.init_seed is not None else 0,
                weights_file=weights_file,
                data_config=config.data_config,
                device=device,
                engine=engine,
            )
        check_backbone(config, backbone)
        return cls(config, backbone, head, cell_head, novelty=novelty, source=source)

    def push_to_hub(
        self, repo_id: str, *, private: bool = False, commit_message: str | None = None
    ) -> str:
        """Create the repo if needed and upload the model in one commit.

        Returns:
            The commit sha, to pin with ``from_pretrained(repo_id, revision=sha)``.
        """
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, repo_id=repo_id)
            return hub.upload_dir(
                tmp,
                repo_id,
                private=private,
                commit_message=commit_message or f"Upload cervix_hf model ({self.config.backbone})",
            )


def _head_files(config: CervixConfig) -> list[str]:
    names = [config.head, config.cell_type_head, config.novelty_detector]
    return [n for n in names if n]
