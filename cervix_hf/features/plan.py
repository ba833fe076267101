"""Where and how the backbone runs: device, engine, precision, threads, loader workers, batch.

Two engines compute the same feature map:

* ``torch`` -- the reference: timm eager, channels_last; fp32, or bf16 autocast where the
  hardware has bf16 arithmetic (a CUDA GPU that supports it; a CPU with AVX512-BF16 or
  AMX-BF16, never where bf16 would be emulated).
* ``onnx`` -- the backbone trunk exported to ONNX and run by ONNX Runtime's CPU execution
  provider, fp32 (see :mod:`cervix_hf.features.onnx_export`). It agrees with torch fp32 to
  float noise, so the feature cache does not depend on the engine; bf16 changes the features
  beyond noise, so the cache key holds the precision.

:func:`candidates` lists what may run here under the user's constraints (an explicit choice
is honoured or refused with :class:`~cervix_hf.errors.EngineError`, never replaced).
Which candidate runs is decided by measurement (:mod:`cervix_hf.features.probe`) or, where
nothing is measured, by :func:`rule_choice`: on a CPU ONNX Runtime fp32 when it is installed,
else torch fp32; on CUDA torch with bf16 autocast where supported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..errors import EngineError
from . import hardware

if TYPE_CHECKING:
    from .probe import EngineChoice

ENGINES = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "bf16")
CPU_BATCH_SIZE = 16  # torch eager: 3.8-4.2 img/s at 8, 4.1-4.4 at 16 on 2 Zen3 cores
ONNX_BATCH_SIZE = 8  # per batch, one batch per thread in flight (ORT is flat from 1 to 32)
CUDA_BATCH_SIZE = 256
MAX_CUDA_WORKERS = 16


@dataclass(frozen=True, order=True)
class Candidate:
    """One way to run the backbone: an engine at a precision."""

    engine: str  # "torch" or "onnx"
    precision: str  # "fp32" or "bf16"

    @property
    def label(self) -> str:
        """``"torch bf16"``: how logs and the README name it."""
        return f"{self.engine} {self.precision}"

    @property
    def key(self) -> str:
        """``"torch-bf16"``: how probe files name it."""
        return f"{self.engine}-{self.precision}"

    @classmethod
    def from_key(cls, key: str) -> Candidate:
        """Inverse of :attr:`key`.

        Raises:
            ValueError: not an engine-precision pair this version knows.
        """
        engine, _, precision = key.partition("-")
        if engine not in ENGINES[1:] or precision not in PRECISIONS[1:]:
            raise ValueError(f"unknown candidate {key!r}")
        return cls(engine, precision)


@dataclass(frozen=True)
class ExecutionPlan:
    """How the backbone runs (see :func:`plan_for`); ``choice`` says how it was chosen."""

    device: torch.device
    engine: str  # "torch" or "onnx"
    precision: str  # "fp32" or "bf16"
    threads: int  # intra-op threads of the compute engine
    loader_workers: int  # DataLoader processes decoding and resizing images
    pin_memory: bool
    batch_size: int
    choice: EngineChoice | None = field(default=None, compare=False, repr=False)

    @property
    def candidate(self) -> Candidate:
        """The engine and precision of this plan."""
        return Candidate(self.engine, self.precision)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"``: CUDA when available, else the CPU; an explicit device is checked.

    Raises:
        EngineError: CUDA asked for but not available, or an unknown device name.
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
    compute threads: decoding and resizing a cell crop costs a few ms against tens to
    hundreds of ms of backbone per image, and on a 2-core machine a worker beside 2 compute
    threads cost more than decoding inline (the threads of a parallel op wait for the
    slowest; see README, Performance). On CUDA, every CPU this process has but one (up to
    16): the GPU is fed only as fast as images are decoded.
    """
    per_process = max(1, len(hardware.available_cpus()) // hardware.local_world_size())
    if device.type == "cuda":
        return max(1, min(MAX_CUDA_WORKERS, per_process - 1))
    return 1 if per_process > hardware.compute_threads() else 0


def _engines(dev: torch.device, engine: str) -> list[str]:
    if engine not in ENGINES:
        raise EngineError(f"Unknown engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    has_ort = hardware.onnxruntime_module() is not None
    if engine == "onnx":
        if dev.type != "cpu":
            raise EngineError(
                f"The onnx engine runs on the CPU only (device {dev}); use --engine torch "
                "on a GPU, or --device cpu."
            )
        if not has_ort:
            raise EngineError(
                f"--engine onnx needs onnxruntime, which cannot be imported: "
                f"{hardware.INSTALL_HINT} (or use --engine torch)."
            )
        return ["onnx"]
    if engine == "auto" and dev.type == "cpu" and has_ort:
        return ["onnx", "torch"]
    return ["torch"]


def _precisions(dev: torch.device, precision: str | None) -> list[str]:
    if precision is not None and precision not in PRECISIONS:
        raise EngineError(f"Unknown precision {precision!r}; choose one of {PRECISIONS}.")
    if dev.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        if precision == "bf16" and not bf16:
            raise EngineError("This GPU has no bf16 support; use fp32.")
        return ["fp32"] if precision == "fp32" or not bf16 else ["bf16"]
    if precision == "bf16" and not hardware.cpu_has_bf16():
        raise EngineError(
            "This CPU has no bf16 instructions (AVX512-BF16/AMX): bf16 would run many "
            "times slower than fp32 here; use fp32."
        )
    if precision == "bf16":
        return ["bf16"]
    if precision == "auto" and hardware.cpu_has_bf16():
        return ["fp32", "bf16"]  # measured against each other; fp32 when nothing is measured
    return ["fp32"]


def candidates(
    device: torch.device, engine: str = "auto", precision: str | None = None
) -> list[Candidate]:
    """What may run on ``device`` under the user's engine and precision, the rule's first.

    Args:
        device: a resolved device (:func:`resolve_device`).
        engine: ``"auto"``, ``"torch"`` or ``"onnx"`` (CPU only, needs onnxruntime).
        precision: ``None`` (what a served model runs: fp32 on a CPU, bf16 autocast on a CUDA
            GPU that supports it), ``"auto"`` (also bf16 on a CPU with bf16 hardware, to be
            measured), ``"fp32"`` or ``"bf16"`` (refused where the hardware has no bf16).

    Raises:
        EngineError: an unknown or impossible choice.
    """
    engines = _engines(device, engine)
    precisions = _precisions(device, precision)
    if engines == ["onnx"] and precisions == ["bf16"]:
        raise EngineError("bf16 runs on the torch engine only; use --engine torch.")
    out = [Candidate(e, p) for p in precisions for e in engines if e == "torch" or p == "fp32"]
    return out


def rule_choice(allowed: Sequence[Candidate]) -> Candidate:
    """The choice when nothing is measured: the first of :func:`candidates` (never bf16 on a
    CPU unless asked for)."""
    return allowed[0]


def plan_for(
    device: torch.device, candidate: Candidate, choice: EngineChoice | None = None
) -> ExecutionPlan:
    """The plan that runs ``candidate`` on ``device``: threads, workers, batch size."""
    threads = hardware.compute_threads()
    if device.type == "cuda":
        batch_size = CUDA_BATCH_SIZE
    elif candidate.engine == "onnx" and threads > 1:
        batch_size = ONNX_BATCH_SIZE  # batches run side by side: see parallel.batch_parallel
    else:
        batch_size = CPU_BATCH_SIZE
    return ExecutionPlan(
        device=device,
        engine=candidate.engine,
        precision=candidate.precision,
        threads=threads,
        loader_workers=loader_workers(device),
        pin_memory=device.type == "cuda",
        batch_size=batch_size,
        choice=choice,
    )


def plan_execution(
    device: str | torch.device | None = None,
    engine: str = "auto",
    precision: str | None = None,
) -> ExecutionPlan:
    """The plan chosen by rule, without measuring (see :func:`candidates`).

    Raises:
        EngineError: an unknown or impossible choice, or onnx asked for without onnxruntime.
    """
    dev = resolve_device(device)
    return plan_for(dev, rule_choice(candidates(dev, engine, precision)))
