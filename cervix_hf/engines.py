"""Where and how the backbone runs: device, engine, precision, threads, loader workers.

Two engines compute the same feature map:

* ``torch`` -- the reference: timm eager, channels_last; on CUDA with bf16 autocast when the
  GPU supports it, pinned memory and non-blocking copies.
* ``onnx`` -- the backbone trunk (up to the last feature map) exported once with the legacy
  ``torch.onnx.export`` (opset 17, dynamic batch axis) and run by ONNX Runtime's CPU
  execution provider with all graph optimisations. On a 2-core Zen3 it is about 1.3x torch
  eager (see README, Performance). Outputs agree with torch to float noise (cosine 1.0, max
  relative error ~1e-6), checked after every export, so the feature cache does not depend
  on the engine.

``auto`` picks onnx on the CPU when onnxruntime is importable and torch on CUDA (and torch,
with a warning, when the export fails). An explicit choice is honoured or refused with
:class:`~cervix_hf.errors.EngineError`, never replaced.
The exported file is cached under ``<cache>/onnx/``, keyed by backbone name, weights hash,
input size, opset and the torch and onnx versions; exporting is atomic (temporary file +
``os.replace``) and serialised between processes by a lock file.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import math
import os
import re
import threading
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from .errors import EngineError

logger = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
_local = threading.local()  # .single_thread: this thread runs ONNX sessions on itself alone

ENGINES = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "bf16")
ONNX_OPSET = 17
EXPORT_FORMAT = 1  # bump when the exported graph (inputs, outputs, wrapper) changes
AGREEMENT_COSINE = 0.9999
CPU_BATCH_SIZE = 16  # torch eager: 3.8-4.2 img/s at 8, 4.1-4.4 at 16 on 2 cores
ONNX_BATCH_SIZE = 8  # per batch, one batch per thread in flight (ORT is flat from 1 to 32)
CUDA_BATCH_SIZE = 256
MAX_CUDA_WORKERS = 16
INSTALL_HINT = "pip install onnxruntime==1.32.0 onnx==1.23.2"


# -- hardware --------------------------------------------------------------------------------


def available_cpus() -> set[int]:
    """CPUs this process may run on (its affinity mask)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def _cgroup_cpu_limit() -> int | None:
    """CPUs allowed by a cgroup v2 quota (``cpu.max``), rounded up; None without one."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def physical_cores() -> int:
    """Physical cores this process may use: SMT siblings count once, cgroup quotas apply.

    Reads the CPU topology from sysfs (Linux); elsewhere counts the CPUs in the affinity mask.
    """
    cpus = available_cpus()
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(
                (
                    (topo / "physical_package_id").read_text().strip(),
                    (topo / "core_id").read_text().strip(),
                )
            )
        except OSError:
            cores.add(("cpu", str(cpu)))
    n = len(cores) or len(cpus) or 1
    limit = _cgroup_cpu_limit()
    return min(n, limit) if limit else n


def _local_world_size() -> int:
    """Processes sharing this machine under torchrun / accelerate (1 when run alone)."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def compute_threads() -> int:
    """Intra-op threads for one process: physical cores / processes on this machine.

    ``CERVIX_HF_THREADS`` overrides it (e.g. for benchmarks).
    """
    env = os.environ.get("CERVIX_HF_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise EngineError(f"CERVIX_HF_THREADS={env!r} is not a whole number.") from None
    return max(1, physical_cores() // _local_world_size())


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic (AVX512-BF16 or AMX-BF16), read from cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def onnxruntime_module() -> Any | None:
    """The ``onnxruntime`` module, or None when it cannot be imported."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


# -- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionPlan:
    """How the backbone runs (see :func:`plan_execution`)."""

    device: torch.device
    engine: str  # "torch" or "onnx"
    precision: str  # "fp32" or "bf16"
    threads: int  # intra-op threads of the compute engine
    loader_workers: int  # DataLoader processes decoding and resizing images
    pin_memory: bool
    batch_size: int


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"``: CUDA when available, else the CPU; an explicit device is checked.

    Raises:
        EngineError: CUDA asked for but not available.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise EngineError(f"Unknown device {device!r} ({exc}); use cpu, cuda or cuda:N.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EngineError(
            f"--device {device} asked for, but torch sees no CUDA GPU; use --device cpu."
        )
    return dev


def loader_workers(device: torch.device) -> int:
    """DataLoader workers that decode while the backbone computes.

    On the CPU, one worker (at the lowest priority) only when a CPU is left over beyond the
    compute threads: decoding and resizing a cell crop costs ~2.4 ms against ~180 ms of
    backbone per image, and on a 2-core machine a worker beside 2 compute threads cost more
    (4.0-5.1 img/s) than decoding inline (5.0-5.7 img/s, same run), because the threads of
    a parallel op wait for the slowest. On CUDA, every CPU this process has but one (up to
    16): the GPU is fed only as fast as images are decoded.
    """
    per_process = max(1, len(available_cpus()) // _local_world_size())
    if device.type == "cuda":
        return max(1, min(MAX_CUDA_WORKERS, per_process - 1))
    return 1 if per_process > compute_threads() else 0


def plan_execution(
    device: str | torch.device | None = None,
    engine: str = "auto",
    precision: str | None = None,
) -> ExecutionPlan:
    """Choose device, engine, precision, threads, loader workers and batch size.

    Args:
        device: ``None``/``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        engine: ``"auto"`` (onnx on the CPU when onnxruntime imports, torch on CUDA),
            ``"torch"`` or ``"onnx"`` (CPU only).
        precision: ``None``/``"auto"`` (bf16 on a CUDA GPU that supports it, else fp32),
            ``"fp32"`` or ``"bf16"`` (torch engine; refused on a CPU without bf16 hardware).

    Raises:
        EngineError: an unknown or impossible choice, or onnx asked for without onnxruntime.
    """
    dev = resolve_device(device)
    if engine not in ENGINES:
        raise EngineError(f"Unknown engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    if engine == "auto":
        engine = "onnx" if dev.type == "cpu" and onnxruntime_module() is not None else "torch"
    elif engine == "onnx":
        if dev.type != "cpu":
            raise EngineError(
                f"The onnx engine runs on the CPU only (device {dev}); use --engine torch "
                "on a GPU, or --device cpu."
            )
        if onnxruntime_module() is None:
            raise EngineError(
                f"--engine onnx needs onnxruntime, which cannot be imported: {INSTALL_HINT} "
                "(or use --engine torch)."
            )
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise EngineError(f"Unknown precision {precision!r}; choose one of {PRECISIONS}.")
    if precision == "auto":
        cuda_bf16 = dev.type == "cuda" and torch.cuda.is_bf16_supported()
        precision = "bf16" if cuda_bf16 else "fp32"
    elif precision == "bf16":
        if engine == "onnx":
            raise EngineError("bf16 runs on the torch engine only; use --engine torch.")
        if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise EngineError("This GPU has no bf16 support; use fp32.")
        if dev.type == "cpu" and not cpu_has_bf16():
            raise EngineError(
                "This CPU has no bf16 instructions (AVX512-BF16/AMX): bf16 would run many "
                "times slower than fp32 here; use fp32."
            )
    threads = compute_threads()
    if dev.type == "cuda":
        batch_size = CUDA_BATCH_SIZE
    elif engine == "onnx" and threads > 1:
        batch_size = ONNX_BATCH_SIZE  # batches run side by side: see batch_parallel
    else:
        batch_size = CPU_BATCH_SIZE
    return ExecutionPlan(
        device=dev,
        engine=engine,
        precision=precision,
        threads=threads,
        loader_workers=loader_workers(dev),
        pin_memory=dev.type == "cuda",
        batch_size=batch_size,
    )


# -- ONNX export and session -----------------------------------------------------------------


class _Trunk(torch.nn.Module):
    """``forward_features`` of a timm model as a module: the graph that is exported."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(pixel_values)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def onnx_trunk_path(
    cache_root: str | os.PathLike, name: str, weights_sha256: str, input_size: tuple[int, ...]
) -> Path:
    """Cache file of an exported trunk: one per backbone, weights, input size and exporter."""
    size = "x".join(str(int(s)) for s in input_size[-2:])
    versions = f"opset{ONNX_OPSET}-torch{torch.__version__}-onnx{_version('onnx')}"
    stem = f"{name}-{weights_sha256[:16]}-{size}-{versions}-f{EXPORT_FORMAT}"
    return Path(cache_root) / "onnx" / (re.sub(r"[^A-Za-z0-9_.-]", "_", stem) + ".onnx")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (POSIX ``flock``; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # Windows: os.replace alone still keeps the file whole
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ort_errors() -> tuple[type[BaseException], ...]:
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile")
    names += ("NotImplemented", "RuntimeException")
    return tuple(getattr(state, n) for n in names if hasattr(state, n))


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


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(smallest per-row cosine similarity, max |a - b| / max |b|) of two batches."""
    a2 = a.reshape(len(a), -1).astype(np.float64)
    b2 = b.reshape(len(b), -1).astype(np.float64)
    cos = (a2 * b2).sum(1) / (np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1) + 1e-30)
    rel = float(np.abs(a2 - b2).max() / (np.abs(b2).max() + 1e-30))
    return float(cos.min()), rel


class OnnxTrunk:
    """An ONNX Runtime session computing a backbone's last feature map.

    Call it like ``model.forward_features``: a float batch (N, C, H, W) in, a CPU tensor
    (N, C', h, w) out. Build it with :meth:`load`.
    """

    def __init__(self, session: Any, path: Path, threads: int) -> None:
        self.session = session
        self.path = path
        self.threads = threads
        self.input_name = session.get_inputs()[0].name
        self._single: Any = None
        self._lock = threading.Lock()

    def single_thread_session(self) -> Any:
        """A second session on one intra-op thread, for :func:`batch_parallel` (made once)."""
        with self._lock:
            if self._single is None:
                self._single = self._session(self.path, 1)
            return self._single

    @staticmethod
    def session_options(threads: int) -> Any:
        """All graph optimisations, ``threads`` intra-op threads (no spinning), sequential."""
        ort = onnxruntime_module()
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        # no busy-waiting between runs: same throughput here (measured), and idle threads
        # leave the cores to the decoding workers and to the web server
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        return so

    @classmethod
    def _session(cls, path: Path, threads: int) -> Any:
        ort = onnxruntime_module()
        return ort.InferenceSession(
            str(path), sess_options=cls.session_options(threads), providers=["CPUExecutionProvider"]
        )

    @classmethod
    def load(
        cls,
        model: torch.nn.Module,
        path: Path,
        input_size: tuple[int, ...],
        threads: int,
    ) -> OnnxTrunk:
        """Session for the trunk cached at ``path``, exporting it first if it is missing.

        A new export is checked against ``model`` on a random batch (cosine >= 0.9999)
        before it is moved into place, so the cache only ever holds checked, whole files.

        Raises:
            EngineError: export or session creation failed, or the export disagrees.
        """
        if onnxruntime_module() is None:
            raise EngineError(f"The onnx engine needs onnxruntime: {INSTALL_HINT}.")
        errors = (RuntimeError, ValueError, TypeError, NotImplementedError, OSError)
        errors += _ort_errors()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if path.exists():
                return cls(cls._session(path, threads), path, threads)
            with _file_lock(path.with_name(path.name + ".lock")):
                if path.exists():  # another process exported it while we waited
                    return cls(cls._session(path, threads), path, threads)
                tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
                try:
                    t0 = time.perf_counter()
                    export_trunk(model, tmp, input_size)
                    trunk = cls(cls._session(tmp, threads), path, threads)
                    trunk.check(model, input_size)
                    os.replace(tmp, path)
                    logger.info(
                        "Exported the backbone trunk to ONNX in %.1f s: %s",
                        time.perf_counter() - t0,
                        path,
                    )
                    return trunk
                finally:
                    tmp.unlink(missing_ok=True)
        except EngineError:
            raise
        except errors as exc:
            raise EngineError(
                f"Could not export or load the ONNX trunk {path.name} "
                f"({type(exc).__name__}: {exc}); use --engine torch."
            ) from exc

    def check(self, model: torch.nn.Module, input_size: tuple[int, ...]) -> None:
        """Compare with torch on a random batch of 2.

        Raises:
            EngineError: cosine similarity under :data:`AGREEMENT_COSINE`.
        """
        x = torch.randn(2, *(int(s) for s in input_size[-3:]), generator=torch.Generator())
        with torch.inference_mode():
            ref = model.forward_features(x.to(memory_format=torch.channels_last)).float().numpy()
        cos, rel = agreement(self(x).numpy(), ref)
        logger.debug("ONNX vs torch: cosine %.7f, max relative error %.2e", cos, rel)
        if not cos >= AGREEMENT_COSINE:
            raise EngineError(
                f"The ONNX export disagrees with torch (cosine {cos:.6f} < {AGREEMENT_COSINE}); "
                "use --engine torch."
            )

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Feature map (N, C', h, w) of a preprocessed batch, as a CPU float32 tensor."""
        x = np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())
        single = getattr(_local, "single_thread", False) and self.threads > 1
        session = self.single_thread_session() if single else self.session
        (out,) = session.run(None, {self.input_name: x})
        return torch.from_numpy(out)


def batch_parallel(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` in order, ``workers`` items at a time on threads of their own.

    Inside those threads an :class:`OnnxTrunk` runs on its single-threaded session: for
    throughput, whole batches side by side beat one batch split over the cores (2 cores:
    5.8-6.2 against 4.2-6.1 img/s, measured alternating), because no thread waits for
    another at the end of each operator, and a core taken away by the host slows one batch
    instead of every operator. The calling thread meanwhile fetches (decodes) the next
    items. Latency (one image) is better served by one multi-threaded call.
    """
    if workers <= 1:
        yield from map(fn, items)
        return

    def single_threaded() -> None:
        _local.single_thread = True

    with ThreadPoolExecutor(workers, initializer=single_threaded) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
