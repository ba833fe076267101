"""Features: a frozen timm backbone turned into pooled vectors, as fast as the machine allows.

One module per concern:

* :mod:`.backbone` -- the timm model, its preprocessing, pooled features (:class:`Backbone`,
  :func:`create_backbone`); :mod:`.checks` -- what a backbone must be (NCHW, mean-pooled; the
  one a saved model was trained with);
* :mod:`.hardware` -- CPU model and flags, cores, threads; :mod:`.plan` -- candidates
  (engine x precision) and the execution plan; :mod:`.probe` -- the measured choice, cached;
  :mod:`.runtime` -- from the user's flags to what runs;
* :mod:`.onnx_graph` -- verified ONNX graphs and sessions (torch-free); :mod:`.onnx_export`
  -- the exported, cached, verified trunk; :mod:`.parallel` -- batches side by side;
* :mod:`.loader` -- decoding ahead of the backbone; :mod:`.cache` -- the feature cache;
  :mod:`.scaleout` -- sharded extraction over processes;
* :mod:`.precision` -- the precision contract of a saved model (serving agreement).

Every public name is importable from ``cervix_hf.features``; they load on first use, so
importing ``cervix_hf.features.onnx_graph`` (or ``.precision``, ``.hardware``) does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "backbone": (
        "CACHE_FORMAT",
        "DEFAULT_BACKBONE",
        "DEFAULT_BATCH_SIZE",
        "Backbone",
        "backbone_for_config",
        "create_backbone",
        "spatial_std",
        "weights_fingerprint",
    ),
    "checks": ("check_backbone", "check_feature_map", "training_precision"),
    "cache": (
        "FeatureCacheEntry",
        "atomic_arrays",
        "dataset_feature_stats",
        "dataset_features",
        "default_cache_dir",
        "extract_into",
        "feature_cache_entry",
    ),
    "loader": ("ImageBatches", "image_loader"),
    "hardware": (
        "INSTALL_HINT",
        "CpuInfo",
        "available_cpus",
        "compute_threads",
        "cpu_has_bf16",
        "cpu_info",
        "local_world_size",
        "onnxruntime_module",
        "physical_cores",
    ),
    "plan": (
        "CPU_BATCH_SIZE",
        "CUDA_BATCH_SIZE",
        "ENGINES",
        "MAX_CUDA_WORKERS",
        "ONNX_BATCH_SIZE",
        "PRECISIONS",
        "Candidate",
        "ExecutionPlan",
        "candidates",
        "loader_workers",
        "plan_execution",
        "plan_for",
        "resolve_device",
        "rule_choice",
    ),
    "probe": ("BF16_MARGIN", "PROBE_ENV", "EngineChoice", "decide", "measure", "probe_mode"),
    "runtime": ("choose_runtime",),
    "parallel": ("batch_parallel",),
    "onnx_graph": (
        "AGREEMENT_COSINE",
        "ExportRecord",
        "agreement",
        "read_record",
        "record_path",
        "sha256_file",
        "verified_session",
    ),
    "onnx_export": ("EXPORT_FORMAT", "ONNX_OPSET", "OnnxTrunk", "export_trunk", "onnx_trunk_path"),
    "precision": (
        "MAX_DELTA_P",
        "PrecisionRecord",
        "ServingAgreement",
        "head_agreement",
        "sample_rows",
        "serving_agreement",
        "serving_twin",
    ),
    "scaleout": ("extract_sharded", "shard_files"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cervix_hf.features' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
