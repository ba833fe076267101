"""The measured engine choice (cervix_hf.features.probe, .runtime): decisions from injected
rates, the timing loop on a fake clock, the cache of rates, and create_backbone's use of it.
No test here depends on real timings."""

import itertools
import json
import logging

import numpy as np
import pytest
import torch

from cervix_hf.errors import EngineError
from cervix_hf.features import create_backbone, hardware, probe
from cervix_hf.features.plan import Candidate

TINY = "test_resnet"
ONNX = Candidate("onnx", "fp32")
TORCH = Candidate("torch", "fp32")
BF16 = Candidate("torch", "bf16")


# -- the decision ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rates", "chosen"),
    [
        ({ONNX: 5.6, TORCH: 4.2}, ONNX),  # Zen3, AVX2 only (README): no bf16 candidate
        ({ONNX: 13.4, TORCH: 14.9, BF16: 29.6}, BF16),  # Xeon with AMX (issue 12)
        ({ONNX: 13.4, TORCH: 14.9}, TORCH),  # same CPU, --precision fp32
        ({ONNX: 10.0, TORCH: 9.0, BF16: 10.4}, ONNX),  # bf16 4% faster: not worth the contract
        ({ONNX: 10.0, TORCH: 9.0, BF16: 10.5}, BF16),  # 5% faster: taken
        ({ONNX: 10.0, TORCH: 10.0}, ONNX),  # a tie keeps the rule's order
        ({BF16: 3.0}, BF16),  # --precision bf16: the only candidate
    ],
)
def test_decide_takes_the_fastest_fp32_and_bf16_only_when_clearly_faster(rates, chosen):
    assert probe.decide(rates) == chosen


def test_auto_is_within_the_goal_of_the_fastest_candidate():
    # the goal: auto >= 0.95x the fastest candidate measured in the same run
    rng = np.random.default_rng(0)
    for _ in range(500):
        pool = [ONNX, TORCH, BF16][: rng.integers(1, 4)]
        rates = {c: float(rng.uniform(0.5, 50)) for c in pool}
        assert rates[probe.decide(rates)] >= 0.95 * max(rates.values())
    with pytest.raises(ValueError):
        probe.decide({})


# -- the timing loop (fake clock) ------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def fake_trials(clock, seconds_per_image, calls):
    """Trials that advance the fake clock by their time per image (twice that in round 1)."""

    def trial(cand, per_image, batch=16):
        def run():
            calls.append(cand)
            rounds = calls.count(cand)
            clock.now += batch * per_image * (2.0 if rounds == 1 else 1.0)  # first round noisy
            return batch

        return probe.Trial(warm=lambda: calls.append(("warm", cand)), run=run)

    return {c: trial(c, s) for c, s in seconds_per_image.items()}


def test_measure_alternates_and_keeps_each_candidates_best_round():
    clock, calls = FakeClock(), []
    trials = fake_trials(clock, {ONNX: 0.1, BF16: 0.05}, calls)
    rates = probe.measure(trials, budget_s=5.0, min_rounds=2, max_rounds=5, clock=clock)
    assert rates == {ONNX: pytest.approx(10.0), BF16: pytest.approx(20.0)}  # the quiet rounds
    assert calls[:2] == [("warm", ONNX), ("warm", BF16)]  # warmed up, untimed
    timed = calls[2:]
    assert timed[:4] == [ONNX, BF16, ONNX, BF16]  # alternating, round by round
    # round 1: 3.2 + 1.6 s; round 2: 1.6 + 0.8 s -> 7.2 s >= 5 s budget: stop after 2 rounds
    assert len(timed) == 4


def test_measure_runs_at_least_min_and_at_most_max_rounds():
    clock, calls = FakeClock(), []
    probe.measure(fake_trials(clock, {TORCH: 10.0}, calls), budget_s=0.0, min_rounds=3, clock=clock)
    assert calls.count(TORCH) == 3
    clock, calls = FakeClock(), []
    probe.measure(fake_trials(clock, {TORCH: 1e-6}, calls), budget_s=1e9, max_rounds=4, clock=clock)
    assert calls.count(TORCH) == 4


def test_trials_run_each_candidate_as_extraction_does(tiny_backbone, monkeypatch):
    monkeypatch.setattr(hardware, "compute_threads", lambda: 2)
    size = tiny_backbone.data_config["input_size"]
    trials = probe.backbone_trials(
        tiny_backbone.model, size, torch.device("cpu"), [ONNX, TORCH, BF16], tiny_backbone.runner
    )
    assert set(trials) == {ONNX, TORCH, BF16}
    for trial in trials.values():
        trial.warm()
    assert trials[TORCH].run() == 16 and trials[BF16].run() == 16  # torch's batch
    assert trials[ONNX].run() == 2 * 8  # two batches of 8 side by side, one per thread
    no_trunk = probe.backbone_trials(
        tiny_backbone.model, size, torch.device("cpu"), [ONNX, TORCH], None
    )
    assert set(no_trunk) == {TORCH}


# -- the cache of rates ----------------------------------------------------------------------


def measuring(monkeypatch, rates):
    """probe.measure replaced by injected rates; returns the list of measured candidate sets."""
    seen = []

    def fake(trials):
        seen.append(list(trials))
        return {c: rates[c] for c in trials}

    monkeypatch.setattr(probe, "measure", fake)
    monkeypatch.setattr(probe, "busy_load", lambda: 0.0)  # not this machine's real load
    return seen


def key(threads=2):
    return probe.probe_key(TINY, (3, 160, 160), threads)


def test_rates_are_cached_keyed_and_logged_in_one_line(tmp_path, monkeypatch, caplog):
    seen = measuring(monkeypatch, {ONNX: 13.4, TORCH: 14.9, BF16: 29.6})
    trials = {c: None for c in (ONNX, TORCH, BF16)}
    with caplog.at_level(logging.INFO, logger="cervix_hf.features.probe"):
        first = probe.measured_choice([ONNX, TORCH, BF16], key(), tmp_path, lambda cs: trials)
    assert (first.candidate, first.how) == (BF16, "measured")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "engine: torch bf16, 29.6 img/s vs torch fp32 14.9, onnx fp32 13.4 (measured now)"
    ]
    files = list((tmp_path / "engine-probe").iterdir())
    assert len(files) == 1
    stored = json.loads(files[0].read_text())
    assert stored["rates"] == {"onnx-fp32": 13.4, "torch-fp32": 14.9, "torch-bf16": 29.6}
    assert stored["key"]["cpu_model"] == hardware.cpu_info().model
    assert stored["key"]["threads"] == 2 and stored["key"]["backbone"] == TINY

    again = probe.measured_choice([ONNX, TORCH, BF16], key(), tmp_path, lambda cs: trials)
    assert (again.candidate, again.how, again.measured_at) == (BF16, "cached", first.measured_at)
    # --precision fp32 reuses the same measurement, restricted to the fp32 candidates
    fp32 = probe.measured_choice([ONNX, TORCH], key(), tmp_path, lambda cs: trials)
    assert (fp32.candidate, fp32.how) == (TORCH, "cached")
    assert len(seen) == 1

    probe.measured_choice([ONNX, TORCH], key(threads=4), tmp_path, lambda cs: trials)
    assert len(seen) == 2 and len(list((tmp_path / "engine-probe").iterdir())) == 2
    probe.measured_choice([ONNX, TORCH, BF16], key(), tmp_path, lambda cs: trials, fresh=True)
    assert len(seen) == 3


def test_a_damaged_or_partial_cache_is_measured_again(tmp_path, monkeypatch, caplog):
    seen = measuring(monkeypatch, {ONNX: 5.0, TORCH: 4.0, BF16: 9.0})
    trials = {c: None for c in (ONNX, TORCH, BF16)}
    probe.measured_choice([ONNX, TORCH], key(), tmp_path, lambda cs: trials)
    # the cached file lacks bf16: asking for it measures every allowed candidate again
    choice = probe.measured_choice([ONNX, TORCH, BF16], key(), tmp_path, lambda cs: trials)
    assert choice.candidate == BF16 and seen[-1] == [ONNX, TORCH, BF16]
    path = probe.probe_file(tmp_path, key())
    for junk in ("{", '{"key": {}, "rates": {"onnx-fp32": -1}}', '{"rates": {"gpu-int4": 1}}'):
        path.write_text(junk)
        with caplog.at_level(logging.WARNING, logger="cervix_hf.features.probe"):
            choice = probe.measured_choice([ONNX, TORCH], key(), tmp_path, lambda cs: trials)
        assert choice.how == "measured"
    assert "unreadable" in caplog.text


def test_probe_mode_from_the_environment(monkeypatch):
    for value, mode in [("0", "off"), ("off", "off"), ("1", "cached"), ("fresh", "fresh")]:
        monkeypatch.setenv(probe.PROBE_ENV, value)
        assert probe.probe_mode() == mode
    monkeypatch.delenv(probe.PROBE_ENV)
    assert probe.probe_mode() == "cached"
    monkeypatch.setenv(probe.PROBE_ENV, "sometimes")
    with pytest.raises(EngineError, match=probe.PROBE_ENV):
        probe.probe_mode()


# -- create_backbone decides with it ---------------------------------------------------------


@pytest.fixture
def probing(monkeypatch, tmp_path):
    monkeypatch.setenv(probe.PROBE_ENV, "1")
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: True)
    return tmp_path


def build(cache, **kwargs):
    return create_backbone(TINY, pretrained=False, device="cpu", cache_dir=cache, **kwargs)


def test_auto_runs_what_the_measurement_chose(probing, monkeypatch, tiny_backbone):
    seen = measuring(monkeypatch, {ONNX: 13.4, TORCH: 14.9, BF16: 29.6})
    bf16 = build(probing / "a", precision="auto")
    assert (bf16.engine, bf16.precision, bf16.runner) == ("torch", "bf16", None)
    assert bf16.plan.choice.how == "measured" and seen == [[ONNX, TORCH, BF16]]
    assert bf16.cache_key()["precision"] == "bf16"  # its own feature-cache entry
    assert bf16.feature_map(bf16.preprocess([np.zeros((40, 30, 3), np.uint8)])).dtype == (
        torch.bfloat16
    )

    measuring(monkeypatch, {ONNX: 6.0, TORCH: 4.0, BF16: 2.0})
    onnx = build(probing / "b", precision="auto")
    assert (onnx.engine, onnx.precision) == ("onnx", "fp32") and onnx.runner is not None
    assert onnx.cache_key() == tiny_backbone.cache_key()  # shares the fp32 cache entry

    seen = measuring(monkeypatch, {ONNX: 1.0, TORCH: 2.0, BF16: 3.0})
    torch_only = build(probing / "c", engine="torch", precision="auto")
    assert seen == [[TORCH, BF16]] and torch_only.precision == "bf16"
    fp32 = build(probing / "d", precision="fp32")
    assert seen[-1] == [ONNX, TORCH] and (fp32.engine, fp32.precision) == ("torch", "fp32")


def test_no_measurement_where_there_is_nothing_to_choose_or_it_is_off(probing, monkeypatch):
    def no_probe(trials):
        raise AssertionError("measured")

    monkeypatch.setattr(probe, "measure", no_probe)
    served = build(probing, precision=None)  # what loading a model for prediction asks
    assert (served.engine, served.precision, served.plan.choice.how) == ("onnx", "fp32", "rule")
    asked = build(probing, engine="torch", precision="bf16")
    assert (asked.engine, asked.precision, asked.plan.choice.how) == ("torch", "bf16", "only")
    assert build(probing, engine="onnx", precision="auto").plan.choice.how == "only"
    monkeypatch.setenv(probe.PROBE_ENV, "0")
    ruled = build(probing, precision="auto")
    assert (ruled.engine, ruled.precision) == ("onnx", "fp32")  # never bf16 by rule on a CPU
    assert "CERVIX_HF_ENGINE_PROBE=0" in ruled.plan.choice.summary()


def test_without_bf16_hardware_bf16_is_never_measured(probing, monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: False)
    seen = measuring(monkeypatch, {ONNX: 1.0, TORCH: 2.0, BF16: 100.0})
    backbone = build(probing, precision="auto")
    assert seen == [[ONNX, TORCH]] and (backbone.engine, backbone.precision) == ("torch", "fp32")


def test_probe_keys_name_what_the_speed_depends_on():
    k = key()
    assert set(k) >= {"cpu_model", "cpu_flags", "cpu_flags_sha256", "threads", "backbone"}
    assert set(k["versions"]) == {"torch", "timm", "onnxruntime", "onnx"}
    assert k["input_size"] == [3, 160, 160]
    files = {probe.probe_file("/c", key(t)) for t in (1, 2)}
    files |= {probe.probe_file("/c", {**key(), "backbone": "resnet152"})}
    assert len(files) == 3
    for a, b in itertools.combinations(files, 2):
        assert a.parent == b.parent


def test_a_probe_on_a_busy_machine_says_so(tmp_path, monkeypatch, caplog):
    measuring(monkeypatch, {ONNX: 2.4, TORCH: 1.1, BF16: 2.1})
    trials = {c: None for c in (ONNX, TORCH, BF16)}
    monkeypatch.setattr(probe, "busy_load", lambda: 64.0)
    with caplog.at_level(logging.INFO, logger="cervix_hf.features.probe"):
        probe.measured_choice([ONNX, TORCH, BF16], key(), tmp_path, lambda cs: trials)
    assert "busy machine (load average 64.0" in caplog.text and "=fresh" in caplog.text
    stored = json.loads(probe.probe_file(tmp_path, key()).read_text())
    assert stored["load_average"] == 64.0
    caplog.clear()
    monkeypatch.setattr(probe, "busy_load", lambda: 0.0)
    with caplog.at_level(logging.INFO, logger="cervix_hf.features.probe"):
        probe.measured_choice([ONNX, TORCH], key(), tmp_path, lambda cs: trials, fresh=True)
    assert "busy" not in caplog.text
