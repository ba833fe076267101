"""From the user's engine and precision to what runs: candidates, measurement or rule, ONNX.

:func:`choose_runtime` is what :func:`~cervix_hf.features.backbone.create_backbone` calls once
the model is built: it lists the candidates (:func:`plan.candidates`), measures them where
there is a choice to make on a CPU (:mod:`~cervix_hf.features.probe`), loads or exports the
verified ONNX trunk when ONNX Runtime runs, and returns the plan.

What is measured: only when the caller gives a precision (``"auto"``, ``"fp32"`` or
``"bf16"``). ``precision=None`` is what a served model asks for (fp32 on a CPU, chosen by
rule: ONNX Runtime when installed), so loading a model for prediction never runs a probe.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..errors import EngineError, OnnxGraphError
from . import hardware, probe
from .onnx_export import OnnxTrunk, onnx_trunk_path
from .plan import Candidate, ExecutionPlan, candidates, plan_for, rule_choice

logger = logging.getLogger(__name__)


def choose_runtime(
    model: torch.nn.Module,
    name: str,
    input_size: tuple[int, ...],
    weights_sha256: str,
    device: torch.device,
    engine: str,
    precision: str | None,
    cache_root: Path,
) -> tuple[ExecutionPlan, OnnxTrunk | None]:
    """The plan for ``model`` on ``device``, and the ONNX trunk when the plan runs it.

    Args:
        model: the built timm model (eval, on ``device``).
        name, input_size, weights_sha256: the backbone's name, input size and weights hash
            (they key the ONNX export and the probe).
        device: a resolved device.
        engine, precision: the user's choice (see :func:`plan.candidates`).
        cache_root: where ONNX exports and probe files are cached.

    Raises:
        EngineError: an explicit choice that cannot run here.
        OnnxGraphError: the cached ONNX graph fails verification (never replaced).
    """
    allowed = candidates(device, engine, precision)
    trunk: OnnxTrunk | None = None

    def load_trunk() -> OnnxTrunk:
        nonlocal trunk
        if trunk is None:
            path = onnx_trunk_path(cache_root, name, weights_sha256, input_size)
            trunk = OnnxTrunk.load(
                model,
                path,
                input_size,
                hardware.compute_threads(),
                backbone=name,
                weights_sha256=weights_sha256,
            )
        return trunk

    def without_onnx(exc: EngineError) -> list[Candidate]:
        if engine != "auto" or isinstance(exc, OnnxGraphError):
            raise exc
        logger.warning("Using the torch engine: %s", exc)
        return [c for c in allowed if c.engine != "onnx"] or [Candidate("torch", "fp32")]

    mode = probe.probe_mode()
    measurable = device.type == "cpu" and precision is not None and len(allowed) > 1
    if measurable and mode != "off":
        if any(c.engine == "onnx" for c in allowed):
            try:
                load_trunk()
            except EngineError as exc:
                allowed = without_onnx(exc)
        if len(allowed) > 1:
            key = probe.probe_key(name, input_size, hardware.compute_threads())
            choice = probe.measured_choice(
                allowed,
                key,
                cache_root,
                lambda cands: probe.backbone_trials(model, input_size, device, cands, trunk),
                fresh=mode == "fresh",
            )
        else:
            choice = probe.EngineChoice(allowed[0], "only", note="the ONNX export failed")
    elif len(allowed) == 1:
        choice = probe.EngineChoice(allowed[0], "only")
    else:
        note = f"{probe.PROBE_ENV}=0" if measurable else "not measured"
        choice = probe.EngineChoice(rule_choice(allowed), "rule", note=note)
    if choice.candidate.engine == "onnx":
        try:
            load_trunk()
        except EngineError as exc:
            fallback = without_onnx(exc)[0]
            choice = probe.EngineChoice(fallback, "only", note="the ONNX export failed")
    else:
        trunk = None  # measured but not chosen: free its sessions
    plan = plan_for(device, choice.candidate, choice)
    logger.debug("Backbone %s: %s; %s", name, plan, choice.summary())
    return plan, trunk
