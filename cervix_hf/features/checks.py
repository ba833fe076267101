"""What a backbone must be: checked once, with an error that names it.

* :func:`check_feature_map` -- an NCHW last feature map whose spatial mean is the pooled
  vector (what the exact heat map and the unusual-image statistics assume);
* :func:`check_backbone` -- a rebuilt backbone is the one a saved model was trained with;
* :func:`training_precision` -- which precision a saved model's features were computed in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..config import CervixConfig
from ..errors import ConfigMismatchError, ModelLoadError

if TYPE_CHECKING:
    from .backbone import Backbone


def json_ready(cfg: dict[str, Any]) -> dict[str, Any]:
    """A data config as it comes back from JSON (tuples become lists)."""
    return {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in cfg.items()}


POOL_PROBE_SIZE = (3, 5)  # h, w of the made-up feature map the pooling check feeds the head


def check_feature_map(
    model: torch.nn.Module, name: str, input_size: tuple[int, ...], device: torch.device
) -> tuple[int, int]:
    """Check that ``model`` gives an NCHW last feature map whose spatial mean is the pooled
    vector; return the map's (h, w).

    The exact heat map (a linear head's logit split over the map's cells) and the
    unusual-image statistics (the map's spatial std beside its mean) assume both. Two checks:
    one real forward pass at the input size (the layout: 4-D, channels second), and the
    model's ``forward_head(pre_logits=True)`` on a made-up NCHW map (it must return that
    map's spatial mean, whatever the content: max, attention or normalised pooling fail).

    Raises:
        ModelLoadError: naming the backbone and what it gives instead.
    """
    channels = int(model.num_features)
    needs = (
        f"cervix_hf needs an NCHW last feature map (N, {channels}, h, w) whose spatial mean "
        "is the pooled feature vector (forward_head(pre_logits=True)), as the ResNet family "
        "gives: the exact heat map and the unusual-image statistics rely on it. Choose "
        "another backbone."
    )
    x = torch.randn(1, *(int(s) for s in input_size[-3:]), generator=torch.Generator())
    try:
        with torch.inference_mode():
            fmap = model.forward_features(x.to(device, memory_format=torch.channels_last))
    except (RuntimeError, ValueError, AssertionError) as exc:
        raise ModelLoadError(
            f"Backbone {name!r} failed on a {tuple(x.shape)} input ({exc}). {needs}"
        ) from None
    shape = tuple(fmap.shape)
    if len(shape) != 4 or shape[1] != channels:
        raise ModelLoadError(
            f"Backbone {name!r} gives a last feature map of shape {shape}, not NCHW "
            f"(1, {channels}, h, w). {needs}"
        )
    g = torch.Generator().manual_seed(0)
    made_up = torch.rand(2, channels, *POOL_PROBE_SIZE, generator=g).mul(4).sub(1).to(device)
    try:
        with torch.inference_mode():
            pooled = model.forward_head(made_up, pre_logits=True).float().cpu()
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        raise ModelLoadError(
            f"Backbone {name!r}: forward_head fails on an NCHW map ({exc}). {needs}"
        ) from None
    mean = made_up.float().cpu().mean(dim=(2, 3))
    if pooled.shape != mean.shape or not torch.allclose(pooled, mean, rtol=1e-4, atol=1e-5):
        raise ModelLoadError(
            f"Backbone {name!r} does not mean-pool its feature map: forward_head(pre_logits="
            f"True) gives {tuple(pooled.shape)} values that are not the spatial mean. {needs}"
        )
    return int(shape[2]), int(shape[3])


def check_backbone(config: CervixConfig, backbone: Backbone) -> None:
    """Check a built backbone against a model's config (feature size, preprocessing, weights).

    Raises:
        ConfigMismatchError: with what differs.
    """
    if backbone.feature_dim != config.feature_dim:
        raise ConfigMismatchError(
            f"Backbone {backbone.name} gives {backbone.feature_dim} features; config.json "
            f"expects {config.feature_dim}."
        )
    if json_ready(backbone.data_config) != json_ready(config.data_config):
        raise ConfigMismatchError(
            f"Backbone preprocessing {backbone.data_config} differs from config.json's "
            f"{config.data_config}."
        )
    if backbone.weights_sha256 != config.weights_sha256:
        raise ConfigMismatchError(
            f"The rebuilt backbone {config.backbone} has other weights than the head was "
            f"trained on (sha256 {backbone.weights_sha256[:12]} != {config.weights_sha256[:12]}). "
            "Install the versions in config.json 'versions' or pin backbone_revision; the "
            "predictions would not be the model's."
        )


def training_precision(config: CervixConfig) -> str:
    """The precision of the features a model's head was trained on (``"fp32"`` when its
    config predates the record; see :class:`cervix_hf.features.precision.PrecisionRecord`)."""
    from .precision import PrecisionRecord

    record = getattr(config, "precision", None)  # a field the config gains with the record
    if isinstance(record, PrecisionRecord):
        return record.training
    if isinstance(record, dict):
        return PrecisionRecord.from_dict(record).training
    if isinstance(record, str):
        return record
    return "fp32"
