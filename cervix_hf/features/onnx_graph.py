"""ONNX graphs on disk, verified before they run: SHA-256 records, sessions, agreement.

An exported graph is a file anyone with write access to the cache (or a model directory) can
replace. Each export therefore writes a record beside it (``<graph>.json``: the file's
SHA-256 and size, the backbone, its weights hash, the input size and the exporting versions).
A graph is only ever run after its bytes matched the record (and the file was not swapped
while ONNX Runtime read it); one without a record, or whose bytes differ, is refused with
:class:`~cervix_hf.errors.OnnxGraphError` naming the file to delete. Never silently replaced:
a planted file is someone's doing.

Imports neither torch nor timm, so a torch-free serving path can verify and run a shipped
graph with the same functions.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import sha256_file
from ..errors import EngineError, OnnxGraphError
from . import hardware

RECORD_FORMAT = 1
AGREEMENT_COSINE = 0.9999  # smallest per-row cosine between ONNX Runtime and torch outputs


@dataclass(frozen=True)
class ExportRecord:
    """What an exported graph file is and what it was exported from."""

    sha256: str
    size_bytes: int
    backbone: str
    weights_sha256: str
    input_size: tuple[int, int, int]
    opset: int
    export_format: int
    versions: dict[str, str] = field(default_factory=dict)
    agreement_cosine: float | None = None  # against torch, measured when it was exported
    format: int = RECORD_FORMAT

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["input_size"] = list(self.input_size)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> ExportRecord:
        """Read a record back, checking every field's type.

        Raises:
            ValueError: not a record this version writes.
        """
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            raise ValueError("not an export record of this cervix_hf version")
        expected = {f: (str,) for f in ("sha256", "backbone", "weights_sha256")}
        expected |= {"size_bytes": (int,), "opset": (int,), "export_format": (int,)}
        for name, types in expected.items():
            if not isinstance(data.get(name), types) or isinstance(data.get(name), bool):
                raise ValueError(f"field {name!r} missing or of the wrong type")
        sha = data["sha256"]
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ValueError("sha256 is not 64 lowercase hex digits")
        size = data.get("input_size")
        if not (isinstance(size, list) and len(size) == 3 and all(type(s) is int for s in size)):
            raise ValueError("input_size is not three whole numbers")
        versions = data.get("versions", {})
        if not isinstance(versions, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in versions.items()
        ):
            raise ValueError("versions is not a mapping of names to strings")
        cosine = data.get("agreement_cosine")
        if cosine is not None and not isinstance(cosine, (int, float)):
            raise ValueError("agreement_cosine is not a number")
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        return cls(
            sha256=sha,
            size_bytes=data["size_bytes"],
            backbone=data["backbone"],
            weights_sha256=data["weights_sha256"],
            input_size=(size[0], size[1], size[2]),
            opset=data["opset"],
            export_format=data["export_format"],
            versions=dict(versions),
            agreement_cosine=None if cosine is None else float(cosine),
        )


def record_path(graph: str | os.PathLike) -> Path:
    """Where the record of ``graph`` lives: ``<graph>.json`` beside it."""
    graph = Path(graph)
    return graph.with_name(graph.name + ".json")


def write_record(graph: str | os.PathLike, record: ExportRecord) -> Path:
    """Write ``graph``'s record atomically (temporary file + ``os.replace``)."""
    path = record_path(graph)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    try:
        tmp.write_text(json.dumps(record.to_dict(), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _refuse(graph: Path, why: str) -> OnnxGraphError:
    return OnnxGraphError(
        f"The ONNX graph {graph} {why}. It is refused and was not run. Delete {graph} and "
        f"{record_path(graph).name} beside it (cervix_hf exports it again), or find out who "
        "changed it."
    )


def read_record(graph: str | os.PathLike) -> ExportRecord:
    """The record of ``graph``.

    Raises:
        OnnxGraphError: the record is missing, unreadable or not a record.
    """
    graph = Path(graph)
    path = record_path(graph)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise _refuse(graph, f"has no export record ({path.name})") from None
    except OSError as exc:
        raise _refuse(graph, f"has an unreadable export record ({exc.strerror})") from None
    try:
        return ExportRecord.from_dict(json.loads(text))
    except (ValueError, json.JSONDecodeError) as exc:
        raise _refuse(graph, f"has an invalid export record {path.name} ({exc})") from None


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def verify_file(graph: str | os.PathLike, record: ExportRecord) -> tuple[int, int, int, int]:
    """Check ``graph``'s size and SHA-256 against ``record``, reading it in chunks (memory
    stays flat); return the file's identity (device, inode, size, mtime) for
    :func:`verified_session` to check again once ONNX Runtime has read it.

    Raises:
        OnnxGraphError: the file is missing, of another size, or its hash differs.
    """
    graph = Path(graph)
    try:
        before = graph.stat()
        if before.st_size != record.size_bytes:
            raise _refuse(graph, f"has {before.st_size} bytes; its record says {record.size_bytes}")
        got = sha256_file(graph)
    except OSError as exc:
        raise _refuse(graph, f"cannot be read ({exc.strerror})") from None
    if got != record.sha256:
        raise _refuse(
            graph,
            f"does not match its recorded SHA-256 (file {got[:16]}..., record "
            f"{record.sha256[:16]}...): it was changed after export",
        )
    return _identity(before)


def _onnxruntime() -> Any:
    ort = hardware.onnxruntime_module()
    if ort is None:
        raise EngineError(f"The onnx engine needs onnxruntime: {hardware.INSTALL_HINT}.")
    return ort


def session_options(threads: int, optimize: bool = True) -> Any:
    """All graph optimisations (or none, for a graph optimised already), ``threads``
    intra-op threads without spinning, sequential."""
    ort = _onnxruntime()
    so = ort.SessionOptions()
    levels = ort.GraphOptimizationLevel
    so.graph_optimization_level = levels.ORT_ENABLE_ALL if optimize else levels.ORT_DISABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    # no busy-waiting between runs: same throughput (measured), and idle threads leave the
    # cores to the decoding workers and to the web server
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


def create_session(model: str | bytes, threads: int) -> Any:
    """An ONNX Runtime CPU session with every graph optimisation, holding one copy of the
    weights; verify a file first (:func:`verified_session` does both).

    A session optimised at load keeps the graph's original weights beside the rewritten ones
    (for ResNet152, ~430 MB instead of ~190 MB, measured). So the graph is optimised once into
    a private temporary file and the session is made from that file with no further
    optimisation: same graph, same speed, half the memory. That file is hardware-specific
    (ONNX Runtime says so), which is why it is never kept.
    """
    ort = _onnxruntime()
    providers = ["CPUExecutionProvider"]
    with tempfile.TemporaryDirectory(prefix="cervix-ort-") as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        so = session_options(threads)
        so.optimized_model_filepath = str(optimized)
        ort.InferenceSession(model, sess_options=so, providers=providers)
        return ort.InferenceSession(
            str(optimized),
            sess_options=session_options(threads, optimize=False),
            providers=providers,
        )


def verified_session(
    graph: str | os.PathLike, threads: int, record: ExportRecord | None = None
) -> tuple[Any, ExportRecord]:
    """A session for ``graph`` after its record (read beside it unless given) and SHA-256
    check out. The file's identity (inode, size, mtime) must be the same after ONNX Runtime
    has read it, so it cannot be swapped between the check and the load.

    Raises:
        OnnxGraphError: missing or invalid record, changed bytes, a file replaced while it was
            loaded, or a file ONNX Runtime cannot load although its hash matches.
    """
    _onnxruntime()
    graph = Path(graph)
    record = record or read_record(graph)
    identity = verify_file(graph, record)
    errors = ort_errors()
    try:
        session = create_session(str(graph), threads)
    except errors as exc:
        raise _refuse(graph, f"cannot be loaded by ONNX Runtime ({exc})") from None
    try:
        unchanged = _identity(graph.stat()) == identity
    except OSError:
        unchanged = False
    if not unchanged:
        raise _refuse(graph, "was replaced or changed while it was being loaded")
    return session, record


def ort_errors() -> tuple[type[BaseException], ...]:
    """The exception types ONNX Runtime raises for bad graphs and failed runs."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile")
    names += ("NotImplemented", "RuntimeException", "EPFail")
    return tuple(getattr(state, n) for n in names if hasattr(state, n))


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(smallest per-row cosine similarity, max |a - b| / max |b|) of two batches."""
    if a.shape != b.shape:
        return float("nan"), float("inf")
    a2 = a.reshape(len(a), -1).astype(np.float64)
    b2 = b.reshape(len(b), -1).astype(np.float64)
    cos = (a2 * b2).sum(1) / (np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1) + 1e-30)
    rel = float(np.abs(a2 - b2).max() / (np.abs(b2).max() + 1e-30))
    return float(cos.min()), rel


def refuse_disagreement(graph: Path, cosine: float) -> OnnxGraphError:
    """The error for a graph on disk whose outputs are not the backbone's."""
    return _refuse(
        graph,
        f"does not compute this backbone's feature map (cosine {cosine:.6f} against torch, "
        f"needs >= {AGREEMENT_COSINE})",
    )
