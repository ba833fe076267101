"""How many CPU cores this process may use (stdlib only: serving imports it without torch)."""

from __future__ import annotations

import math
import os
from pathlib import Path

from .errors import EngineError


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
