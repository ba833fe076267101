"""Which engine and precision extract fastest here: measured once, cached, logged in one line.

On a CPU, the candidates the user allows (:func:`cervix_hf.features.plan.candidates`: torch
fp32 channels_last; torch bf16 autocast where the CPU has bf16 hardware; ONNX Runtime fp32,
batches side by side as extraction runs them) are timed on random batches of their own batch
size, alternating round by round, for a few seconds. The rates (images/s, the best round of
each) are cached as JSON under ``<cache>/engine-probe/``, keyed by the CPU model and flags,
threads, backbone, input size and library versions, and reused on later runs.

The decision (:func:`decide`) takes the fastest fp32 candidate, and bf16 only when it is at
least :data:`BF16_MARGIN` times faster than that: bf16 changes the features beyond float
noise (own feature-cache entry; the saved model records its training precision and how well
the fp32 serving path reproduces it), which a gain inside the noise of a probe does not pay
for. The margin keeps ``auto`` within 0.95x of the fastest candidate.

``CERVIX_HF_ENGINE_PROBE=0`` skips measuring (the rule of :func:`plan.rule_choice` applies);
``CERVIX_HF_ENGINE_PROBE=fresh`` measures again and replaces the cached rates.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ..errors import EngineError
from . import hardware
from .parallel import batch_parallel
from .plan import CPU_BATCH_SIZE, ONNX_BATCH_SIZE, Candidate, plan_for

logger = logging.getLogger(__name__)

PROBE_ENV = "CERVIX_HF_ENGINE_PROBE"
PROBE_FORMAT = 1
BF16_MARGIN = 1.05  # bf16 must beat the best fp32 candidate by this factor
BUDGET_S = 8.0  # timed rounds stop once this long has been spent (after MIN_ROUNDS)
MIN_ROUNDS = 2
MAX_ROUNDS = 5
WARMUP_BATCH = 2


def probe_mode() -> str:
    """``"cached"`` (default), ``"fresh"`` or ``"off"``, from ``CERVIX_HF_ENGINE_PROBE``.

    Raises:
        EngineError: a value other than 0/1/off/on/fresh.
    """
    value = os.environ.get(PROBE_ENV, "1").strip().lower()
    if value in ("0", "off", "false", "no"):
        return "off"
    if value in ("", "1", "on", "true", "yes"):
        return "cached"
    if value == "fresh":
        return "fresh"
    raise EngineError(f"{PROBE_ENV}={value!r}: use 0 (rule), 1 (measure once) or fresh.")


@dataclass(frozen=True)
class EngineChoice:
    """The engine and precision chosen, how, and the rates behind it (images/s)."""

    candidate: Candidate
    how: str  # "measured" now, "cached" (measured earlier), "rule", or "only" candidate
    rates: Mapping[Candidate, float] = field(default_factory=dict)
    measured_at: str | None = None
    note: str = ""

    def summary(self) -> str:
        """The one log line: ``engine: torch bf16, 29.1 img/s vs onnx fp32 13.4, ...``."""
        if not self.rates:
            why = f"{self.how}: {self.note}" if self.note else self.how
            return f"engine: {self.candidate.label} ({why})"
        ranked = sorted(self.rates.items(), key=lambda kv: -kv[1])
        others = ", ".join(f"{c.label} {r:.1f}" for c, r in ranked if c != self.candidate)
        when = "measured now" if self.how == "measured" else f"measured {self.measured_at}"
        rate = self.rates.get(self.candidate, float("nan"))
        return f"engine: {self.candidate.label}, {rate:.1f} img/s vs {others} ({when})"


def decide(rates: Mapping[Candidate, float], margin: float = BF16_MARGIN) -> Candidate:
    """The candidate to run, from measured rates (images/s): see the module docstring.

    Ties keep the order of ``rates`` (the rule's choice first).

    Raises:
        ValueError: no rates.
    """
    if not rates:
        raise ValueError("no candidate was measured")
    order = list(rates)

    def best(pool: list[Candidate]) -> Candidate | None:
        return max(pool, key=lambda c: (rates[c], -order.index(c))) if pool else None

    fp32 = best([c for c in order if c.precision == "fp32"])
    other = best([c for c in order if c.precision != "fp32"])
    if fp32 is None:
        return other  # type: ignore[return-value]
    if other is not None and rates[other] >= margin * rates[fp32]:
        return other
    return fp32


@dataclass(frozen=True)
class Trial:
    """One candidate, ready to time: ``warm()`` once, then ``run()`` returns images done."""

    warm: Callable[[], object]
    run: Callable[[], int]


def measure(
    trials: Mapping[Candidate, Trial],
    *,
    budget_s: float = BUDGET_S,
    min_rounds: int = MIN_ROUNDS,
    max_rounds: int = MAX_ROUNDS,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[Candidate, float]:
    """Images/s of each trial: the best of several rounds, candidates alternating.

    Each round runs every trial once, back to back, so host noise hits them alike; rounds
    go on until ``budget_s`` is spent (at least ``min_rounds``, at most ``max_rounds``).
    """
    for trial in trials.values():
        trial.warm()
    best = dict.fromkeys(trials, 0.0)
    start = clock()
    for done in range(1, max_rounds + 1):
        for cand, trial in trials.items():
            t = clock()
            n = trial.run()
            dt = clock() - t
            best[cand] = max(best[cand], n / dt if dt > 0 else math.inf)
        if done >= min_rounds and clock() - start >= budget_s:
            break
    return best


def backbone_trials(
    model: torch.nn.Module,
    input_size: tuple[int, ...],
    device: torch.device,
    allowed: Sequence[Candidate],
    trunk: Callable[[torch.Tensor], torch.Tensor] | None,
) -> dict[Candidate, Trial]:
    """Trials that run each candidate as extraction would: its batch size, channels_last
    and autocast for torch, ``threads`` batches side by side for ONNX Runtime."""
    size = tuple(int(s) for s in input_size[-3:])
    trials: dict[Candidate, Trial] = {}
    for cand in allowed:
        plan = plan_for(device, cand)
        x = torch.randn(plan.batch_size, *size, generator=torch.Generator().manual_seed(0))
        if cand.engine == "torch":
            x = x.to(device, memory_format=torch.channels_last)
            autocast = cand.precision == "bf16"

            def forward(batch: torch.Tensor, autocast: bool = autocast) -> int:
                ctx = (
                    torch.autocast(device.type, dtype=torch.bfloat16)
                    if autocast
                    else contextlib.nullcontext()
                )
                with torch.inference_mode(), ctx:
                    model.forward_features(batch)
                return len(batch)

            trials[cand] = Trial(
                warm=lambda f=forward, x=x: f(x[:WARMUP_BATCH]), run=lambda f=forward, x=x: f(x)
            )
        elif trunk is not None:
            side_by_side = max(1, plan.threads)  # as extract_into runs ONNX Runtime

            def run_onnx(batches: list[torch.Tensor], workers: int) -> int:
                for _ in batch_parallel(trunk, batches, workers):
                    pass
                return sum(len(b) for b in batches)

            batches = [x] * side_by_side
            trials[cand] = Trial(
                warm=lambda x=x: trunk(x[:WARMUP_BATCH]),
                run=lambda b=batches, w=side_by_side: run_onnx(b, w),
            )
    return trials


def probe_key(name: str, input_size: tuple[int, ...], threads: int) -> dict[str, Any]:
    """What the rates depend on: CPU model and flags, threads, backbone, input size,
    library versions, batch sizes."""
    cpu = hardware.cpu_info()
    return {
        "format": PROBE_FORMAT,
        "cpu_model": cpu.model,
        "cpu_flags": cpu.speed_flags,
        "cpu_flags_sha256": cpu.flags_sha256,
        "threads": threads,
        "backbone": name,
        "input_size": [int(s) for s in input_size[-3:]],
        "batch_sizes": {"torch": CPU_BATCH_SIZE, "onnx": ONNX_BATCH_SIZE},
        "versions": {d: hardware.version_of(d) for d in ("torch", "timm", "onnxruntime", "onnx")},
    }


def probe_file(root: str | os.PathLike, key: Mapping[str, Any]) -> Path:
    """The cache file of the rates measured under ``key``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    name = f"{key.get('backbone', 'backbone')}-{digest}"
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)
    return Path(root) / "engine-probe" / f"{safe}.json"


@dataclass(frozen=True)
class ProbeRecord:
    """Rates measured under a key, as cached on disk."""

    key: dict[str, Any]
    rates: dict[Candidate, float]
    measured_at: str
    seconds: float
    load_average: float | None = None  # 1-minute load average when the probe started

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "key": self.key,
            "rates": {c.key: round(r, 3) for c, r in self.rates.items()},
            "measured_at": self.measured_at,
            "seconds": round(self.seconds, 2),
            "load_average": self.load_average,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ProbeRecord:
        """Read a record back.

        Raises:
            ValueError: not a probe record (wrong types, unknown candidates, bad rates).
        """
        if not isinstance(data, dict) or not isinstance(data.get("key"), dict):
            raise ValueError("not a probe record")
        raw = data.get("rates")
        if not isinstance(raw, dict) or not raw:
            raise ValueError("no rates")
        rates = {}
        for k, v in raw.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v < math.inf:
                raise ValueError(f"rate of {k!r} is not a positive number")
            rates[Candidate.from_key(k)] = float(v)
        when, seconds = data.get("measured_at"), data.get("seconds", 0.0)
        load = data.get("load_average")
        if not isinstance(when, str) or not isinstance(seconds, (int, float)):
            raise ValueError("measured_at or seconds of the wrong type")
        if load is not None and not isinstance(load, (int, float)):
            raise ValueError("load_average of the wrong type")
        return cls(data["key"], rates, when, float(seconds), load)


def read_probe(path: Path, key: Mapping[str, Any]) -> ProbeRecord | None:
    """The cached record at ``path`` for ``key``; None (with a warning if it is damaged)."""
    try:
        record = ProbeRecord.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
        logger.warning("Measuring again: the engine probe file %s is unreadable (%s)", path, exc)
        return None
    return record if record.key == dict(key) else None


def write_probe(path: Path, record: ProbeRecord) -> None:
    """Write a record atomically (temporary file + ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    try:
        tmp.write_text(json.dumps(record.to_dict(), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def measured_choice(
    allowed: Sequence[Candidate],
    key: Mapping[str, Any],
    root: str | os.PathLike,
    make_trials: Callable[[Sequence[Candidate]], Mapping[Candidate, Trial]],
    *,
    fresh: bool = False,
) -> EngineChoice:
    """The choice among ``allowed`` from cached rates, or from rates measured now by
    :func:`measure` (then cached). Logs the one-line summary."""
    path = probe_file(root, key)
    cached = None if fresh else read_probe(path, key)
    if cached is not None and all(c in cached.rates for c in allowed):
        rates = {c: cached.rates[c] for c in allowed}
        choice = EngineChoice(decide(rates), "cached", rates, cached.measured_at)
    else:
        load = busy_load()
        t0 = time.perf_counter()
        rates = {c: r for c, r in measure(make_trials(allowed)).items() if c in allowed}
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        write_probe(path, ProbeRecord(dict(key), rates, when, time.perf_counter() - t0, load))
        choice = EngineChoice(decide(rates), "measured", rates, when)
        if load is not None and load >= (os.cpu_count() or 1):
            logger.warning(
                "The engine probe ran on a busy machine (load average %.1f on %d CPUs): its "
                "choice may not hold on a quiet one; measure again with %s=fresh.",
                load,
                os.cpu_count() or 1,
                PROBE_ENV,
            )
    logger.info("%s", choice.summary())
    return choice


def busy_load() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
