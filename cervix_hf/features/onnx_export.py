"""The backbone trunk exported to ONNX, cached, and run only after it is verified.

The trunk (``forward_features``, up to the last feature map) is exported once with the
legacy ``torch.onnx.export`` (opset 17, dynamic batch axis) into ``<cache>/onnx/``, keyed by
backbone name, weights hash, input size, opset and the torch and onnx versions. Exporting is
atomic (temporary file + ``os.replace``) and serialised between processes by a lock file; a
new export is compared with torch before it is moved into place, and its SHA-256 is recorded
beside it (:mod:`cervix_hf.features.onnx_graph`).

Every load, not only the first, checks the file against its record and then compares the
session's output with torch on a random batch: a changed, planted or foreign graph is refused
with :class:`~cervix_hf.errors.OnnxGraphError` (naming the file to delete), never run on
data and never silently replaced.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import EngineError, OnnxGraphError
from ..filelock import file_lock
from . import hardware, onnx_graph
from .onnx_graph import AGREEMENT_COSINE, ExportRecord
from .parallel import in_single_thread_worker

logger = logging.getLogger(__name__)

ONNX_OPSET = 17
EXPORT_FORMAT = 2  # bump when the exported graph or its record changes (2: SHA-256 record)


class _Trunk(torch.nn.Module):
    """``forward_features`` of a timm model as a module: the graph that is exported."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(pixel_values)


def export_versions() -> dict[str, str]:
    """Versions of what shapes the exported graph."""
    return {"torch": torch.__version__, "onnx": hardware.version_of("onnx")}


def onnx_trunk_path(
    cache_root: str | os.PathLike, name: str, weights_sha256: str, input_size: tuple[int, ...]
) -> Path:
    """Cache file of an exported trunk: one per backbone, weights, input size and exporter."""
    size = "x".join(str(int(s)) for s in input_size[-2:])
    versions = f"opset{ONNX_OPSET}-torch{torch.__version__}-onnx{hardware.version_of('onnx')}"
    stem = f"{name}-{weights_sha256[:16]}-{size}-{versions}-f{EXPORT_FORMAT}"
    return Path(cache_root) / "onnx" / (re.sub(r"[^A-Za-z0-9_.-]", "_", stem) + ".onnx")


def export_trunk(model: torch.nn.Module, path: Path, input_size: tuple[int, ...]) -> None:
    """Export ``model.forward_features`` to ONNX at ``path`` (dynamic batch axis)."""
    c, h, w = (int(s) for s in input_size[-3:])
    dummy = torch.randn(2, c, h, w)
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter is deprecated in favour of dynamo=True, which needs
        # onnxscript and takes ~5x longer here for the same graph and speed
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            _Trunk(model).eval(),
            (dummy,),
            str(path),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["pixel_values"],
            output_names=["feature_map"],
            dynamic_axes={"pixel_values": {0: "batch"}, "feature_map": {0: "batch"}},
            do_constant_folding=True,
        )


class OnnxTrunk:
    """An ONNX Runtime session computing a backbone's last feature map.

    Call it like ``model.forward_features``: a float batch (N, C, H, W) in, a CPU tensor
    (N, C', h, w) out. Build it with :meth:`load`; ``record`` describes the verified file.
    """

    def __init__(self, session: Any, path: Path, threads: int, record: ExportRecord) -> None:
        self.session = session
        self.path = path
        self.threads = threads
        self.record = record
        self.input_name = session.get_inputs()[0].name
        self._single: Any = None
        self._lock = threading.Lock()

    def single_thread_session(self) -> Any:
        """A second session on one intra-op thread, for ``batch_parallel`` (made once, from
        the file verified again)."""
        with self._lock:
            if self._single is None:
                self._single, _ = onnx_graph.verified_session(self.path, 1, self.record)
            return self._single

    @classmethod
    def load(
        cls,
        model: torch.nn.Module,
        path: Path,
        input_size: tuple[int, ...],
        threads: int,
        *,
        backbone: str = "",
        weights_sha256: str = "",
    ) -> OnnxTrunk:
        """Session for the trunk cached at ``path``, exporting it first if it is missing.

        An existing file is verified (record, SHA-256, the record's weights and input size,
        agreement with ``model``) before it runs. A new export is checked against ``model``
        (cosine >= 0.9999) before it and its record are moved into place, so the cache only
        ever holds checked, whole files.

        Raises:
            OnnxGraphError: the cached file fails verification (delete it, as it says).
            EngineError: export or session creation failed, or a new export disagrees.
        """
        if hardware.onnxruntime_module() is None:
            raise EngineError(f"The onnx engine needs onnxruntime: {hardware.INSTALL_HINT}.")
        size = tuple(int(s) for s in input_size[-3:])
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            return cls._verified(model, path, size, threads, weights_sha256)
        errors = (RuntimeError, ValueError, TypeError, NotImplementedError, OSError)
        errors += onnx_graph.ort_errors()
        try:
            with file_lock(path.with_name(path.name + ".lock")):
                if path.exists():  # another process exported it while we waited
                    return cls._verified(model, path, size, threads, weights_sha256)
                return cls._export(model, path, size, threads, backbone, weights_sha256)
        except EngineError:
            raise
        except errors as exc:
            raise EngineError(
                f"Could not export or load the ONNX trunk {path.name} "
                f"({type(exc).__name__}: {exc}); use --engine torch."
            ) from exc

    @classmethod
    def _verified(
        cls,
        model: torch.nn.Module,
        path: Path,
        size: tuple[int, ...],
        threads: int,
        weights_sha256: str,
    ) -> OnnxTrunk:
        session, record = onnx_graph.verified_session(path, threads)
        if weights_sha256 and record.weights_sha256 != weights_sha256:
            raise OnnxGraphError(
                f"The ONNX graph {path} records other weights ({record.weights_sha256[:12]}) "
                f"than this backbone's ({weights_sha256[:12]}). It is refused and was not run; "
                "delete it and its .json record (cervix_hf exports it again)."
            )
        trunk = cls(session, path, threads, record)
        try:
            cos, _ = trunk.check(model, size)
        except onnx_graph.ort_errors() as exc:
            raise onnx_graph.refuse_disagreement(path, float("nan")) from exc
        if not cos >= AGREEMENT_COSINE:
            raise onnx_graph.refuse_disagreement(path, cos)
        return trunk

    @classmethod
    def _export(
        cls,
        model: torch.nn.Module,
        path: Path,
        size: tuple[int, ...],
        threads: int,
        backbone: str,
        weights_sha256: str,
    ) -> OnnxTrunk:
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
        try:
            t0 = time.perf_counter()
            export_trunk(model, tmp, size)
            record = ExportRecord(
                sha256=onnx_graph.sha256_file(tmp),
                size_bytes=tmp.stat().st_size,
                backbone=backbone,
                weights_sha256=weights_sha256,
                input_size=(size[0], size[1], size[2]),
                opset=ONNX_OPSET,
                export_format=EXPORT_FORMAT,
                versions=export_versions(),
            )
            trunk = cls(onnx_graph.create_session(str(tmp), threads), path, threads, record)
            cos, rel = trunk.check(model, size)
            if not cos >= AGREEMENT_COSINE:
                raise EngineError(
                    f"The ONNX export disagrees with torch (cosine {cos:.6f} < "
                    f"{AGREEMENT_COSINE}); use --engine torch."
                )
            trunk.record = record = dataclasses.replace(record, agreement_cosine=cos)
            onnx_graph.write_record(path, record)
            os.replace(tmp, path)
            logger.info(
                "Exported the backbone trunk to ONNX in %.1f s (cosine to torch %.7f, max "
                "relative error %.1e): %s",
                time.perf_counter() - t0,
                cos,
                rel,
                path,
            )
            return trunk
        finally:
            tmp.unlink(missing_ok=True)

    def check(self, model: torch.nn.Module, input_size: tuple[int, ...]) -> tuple[float, float]:
        """(smallest cosine, max relative error) against torch on a random batch of 2."""
        x = torch.randn(2, *(int(s) for s in input_size[-3:]), generator=torch.Generator())
        with torch.inference_mode():
            ref = model.forward_features(x.to(memory_format=torch.channels_last)).float().numpy()
        cos, rel = onnx_graph.agreement(self(x).numpy(), ref)
        logger.debug("ONNX vs torch: cosine %.7f, max relative error %.2e", cos, rel)
        return cos, rel

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Feature map (N, C', h, w) of a preprocessed batch, as a CPU float32 tensor."""
        x = np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())
        single = in_single_thread_worker() and self.threads > 1
        session = self.single_thread_session() if single else self.session
        (out,) = session.run(None, {self.input_name: x})
        return torch.from_numpy(out)
