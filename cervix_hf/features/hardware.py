"""What this machine offers the backbone: CPU model and flags, cores, threads, ONNX Runtime.

Everything here is read, never assumed: the same code runs on AVX2-only CPUs, on CPUs with
AVX512-BF16, on CPUs with AMX tiles, and in containers whose cgroup quota is smaller than the
host. Imports neither torch nor timm (the torch-free serving path may use it).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import EngineError

INSTALL_HINT = "pip install onnxruntime==1.32.0 onnx==1.23.2"
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # bf16 arithmetic in hardware (not emulated)
# the flags that decide which kernels run fast: shown in logs, the README and probe files
SPEED_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as ``/proc/cpuinfo`` describes it (model name and flags of the first CPU)."""

    model: str
    flags: frozenset[str]

    @property
    def has_bf16(self) -> bool:
        """Whether bf16 arithmetic runs in hardware (AVX512-BF16 or AMX-BF16)."""
        return any(f in self.flags for f in BF16_FLAGS)

    @property
    def speed_flags(self) -> list[str]:
        """The flags among :data:`SPEED_FLAGS` this CPU has, in that order."""
        return [f for f in SPEED_FLAGS if f in self.flags]

    @property
    def flags_sha256(self) -> str:
        """A short hash of every flag: another CPU kind (or a VM masking some) differs."""
        return hashlib.sha256(" ".join(sorted(self.flags)).encode()).hexdigest()[:16]

    def describe(self) -> str:
        """One line: model name and the flags that matter."""
        return f"{self.model} ({' '.join(self.speed_flags) or 'no vector flags listed'})"


def parse_cpuinfo(text: str) -> CpuInfo:
    """Model name and flags of the first processor in a ``/proc/cpuinfo`` text."""
    model, flags = "", ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = value
        if not line.strip() and model and flags:
            break
    return CpuInfo(model or platform.processor() or platform.machine(), frozenset(flags.split()))


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU (Linux: ``/proc/cpuinfo``; elsewhere the model only, no flags)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    return parse_cpuinfo(text)


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    return cpu_info().has_bf16


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


def local_world_size() -> int:
    """Processes sharing this machine under torchrun / accelerate (1 when run alone)."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def compute_threads() -> int:
    """Intra-op threads for one process: physical cores / processes on this machine.

    ``CERVIX_HF_THREADS`` overrides it (e.g. for benchmarks).

    Raises:
        EngineError: ``CERVIX_HF_THREADS`` is not a whole number.
    """
    env = os.environ.get("CERVIX_HF_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise EngineError(f"CERVIX_HF_THREADS={env!r} is not a whole number.") from None
    return max(1, physical_cores() // local_world_size())


def onnxruntime_module() -> Any | None:
    """The ``onnxruntime`` module, or None when it cannot be imported."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def version_of(dist: str) -> str:
    """Installed version of a distribution, ``"none"`` when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"
