"""Engines (torch / ONNX Runtime): device, engine and precision candidates, the plan, their
agreement, batches side by side, loader overlap (cervix_hf.features.plan, .hardware,
.parallel, .loader)."""

import dataclasses
import sys

import numpy as np
import pytest
import torch

from cervix_hf.errors import EngineError, ImageLoadError
from cervix_hf.features import (
    AGREEMENT_COSINE,
    Backbone,
    ExecutionPlan,
    OnnxTrunk,
    agreement,
    available_cpus,
    compute_threads,
    create_backbone,
    dataset_feature_stats,
    hardware,
    onnx_export,
    parallel,
    physical_cores,
    plan,
    plan_execution,
)

TINY = "test_resnet"


def generated_cells(n: int, seed: int = 0):
    from cervix_hf.labels import CELL_TYPES
    from cervix_hf.synthetic import make_cell

    rng = np.random.default_rng(seed)
    return [make_cell(CELL_TYPES[i % len(CELL_TYPES)], rng) for i in range(n)]


def torch_twin(backbone: Backbone) -> Backbone:
    """The same backbone (same model object) running on the torch engine."""
    return dataclasses.replace(backbone, engine="torch", runner=None)


def assert_agree(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    cos, rel = agreement(a.float().numpy(), b.float().numpy())
    assert cos > AGREEMENT_COSINE, cos
    assert rel < 1e-4, rel


@pytest.fixture(scope="module")
def onnx_tiny():
    backbone = create_backbone(TINY, pretrained=False, init_seed=0, device="cpu", engine="onnx")
    assert backbone.engine == "onnx" and backbone.runner is not None
    return backbone


# -- choice of device, engine, precision, threads --------------------------------------------


def test_cpu_plan_uses_onnx_fp32_and_physical_cores(monkeypatch):
    monkeypatch.delenv("CERVIX_HF_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    plan = plan_execution("cpu")
    assert plan == ExecutionPlan(
        device=torch.device("cpu"),
        engine="onnx",
        precision="fp32",
        threads=physical_cores(),
        loader_workers=1 if len(available_cpus()) > physical_cores() else 0,
        pin_memory=False,
        batch_size=8 if physical_cores() > 1 else 16,  # > 1 thread: 2 batches side by side
    )
    assert 1 <= physical_cores() <= len(available_cpus())
    eager = plan_execution("cpu", "torch")
    assert (eager.engine, eager.batch_size) == ("torch", 16)


def test_threads_follow_processes_per_machine_and_override(monkeypatch):
    monkeypatch.delenv("CERVIX_HF_THREADS", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert compute_threads() == max(1, physical_cores() // 2)
    monkeypatch.setenv("CERVIX_HF_THREADS", "3")
    assert compute_threads() == 3
    monkeypatch.setenv("CERVIX_HF_THREADS", "many")
    with pytest.raises(EngineError, match="CERVIX_HF_THREADS"):
        compute_threads()


@pytest.mark.parametrize(
    ("cpus", "cores", "device", "workers"),
    [
        (2, 2, "cpu", 0),  # this machine: decoding inline beats a worker fighting 2 threads
        (1, 1, "cpu", 0),
        (4, 2, "cpu", 1),  # SMT siblings left over: one low-priority decoding worker
        (16, 16, "cuda", 15),  # a GPU is fed by every spare CPU
        (64, 32, "cuda", 16),
    ],
)
def test_decoding_workers_only_where_cpus_are_spare(monkeypatch, cpus, cores, device, workers):
    monkeypatch.delenv("CERVIX_HF_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(hardware, "available_cpus", lambda: set(range(cpus)))
    monkeypatch.setattr(hardware, "physical_cores", lambda: cores)
    assert plan.loader_workers(torch.device(device)) == workers


def test_onnx_session_uses_the_plan_threads(onnx_tiny):
    options = onnx_tiny.runner.session.get_session_options()
    assert options.intra_op_num_threads == onnx_tiny.plan.threads == compute_threads()


def test_cuda_plan_when_a_gpu_is_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    plan = plan_execution()  # auto: the GPU, torch, bf16 autocast, pinned memory, big batches
    assert plan.device == torch.device("cuda")
    assert (plan.engine, plan.precision, plan.pin_memory, plan.batch_size) == (
        "torch",
        "bf16",
        True,
        256,
    )
    assert plan.loader_workers == max(1, min(16, len(available_cpus()) - 1))
    assert plan_execution("cuda", precision="fp32").precision == "fp32"
    cpu = plan_execution("cpu")  # --device cpu overrides the GPU
    assert (cpu.device.type, cpu.engine, cpu.precision) == ("cpu", "onnx", "fp32")
    with pytest.raises(EngineError, match="CPU only"):
        plan_execution("cuda", "onnx")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert plan_execution("cuda").precision == "fp32"  # an older GPU: no bf16
    with pytest.raises(EngineError, match="no bf16"):
        plan_execution("cuda", precision="bf16")


def test_cuda_asked_without_a_gpu_is_our_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EngineError, match="no CUDA"):
        plan_execution("cuda")
    assert plan_execution().device == torch.device("cpu")


def test_unknown_choices_are_our_errors():
    with pytest.raises(EngineError, match="Unknown engine"):
        plan_execution("cpu", "tensorrt")
    with pytest.raises(EngineError, match="Unknown precision"):
        plan_execution("cpu", precision="fp8")
    with pytest.raises(EngineError, match="Unknown device"):
        plan_execution("gpu0")


def test_explicit_onnx_without_onnxruntime_is_our_error_never_a_fallback(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    assert hardware.onnxruntime_module() is None
    with pytest.raises(EngineError, match="needs onnxruntime"):
        plan_execution("cpu", "onnx")
    with pytest.raises(EngineError, match="needs onnxruntime"):
        create_backbone(TINY, pretrained=False, device="cpu", engine="onnx")
    assert plan_execution("cpu").engine == "torch"  # auto takes what is installed


def test_bf16_on_a_cpu_only_with_hardware_support(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: False)
    with pytest.raises(EngineError, match="no bf16 instructions"):
        plan_execution("cpu", "torch", "bf16")
    assert plan_execution("cpu", "torch").precision == "fp32"  # never chosen by itself
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: True)
    assert plan_execution("cpu", "torch", "bf16").precision == "bf16"
    with pytest.raises(EngineError, match="torch engine only"):
        plan_execution("cpu", "onnx", "bf16")


def test_candidates_follow_the_hardware_and_the_users_choice(monkeypatch):
    from cervix_hf.features.plan import Candidate, candidates, rule_choice

    onnx, fp32, bf16 = (
        Candidate("onnx", "fp32"),
        Candidate("torch", "fp32"),
        Candidate("torch", "bf16"),
    )
    cpu = torch.device("cpu")
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: True)  # e.g. Zen4, Sapphire Rapids
    assert candidates(cpu, "auto", "auto") == [onnx, fp32, bf16]
    assert candidates(cpu, "torch", "auto") == [fp32, bf16]
    assert candidates(cpu, "onnx", "auto") == [onnx]
    assert candidates(cpu, "auto", "bf16") == [bf16]
    assert candidates(cpu, "auto", "fp32") == candidates(cpu, "auto", None) == [onnx, fp32]
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: False)  # e.g. Zen3
    assert candidates(cpu, "auto", "auto") == [onnx, fp32]
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert candidates(cpu, "auto", "auto") == [fp32]
    for allowed in ([onnx, fp32, bf16], [fp32, bf16], [bf16]):  # the rule: first, fp32 first
        assert rule_choice(allowed) == allowed[0]


def test_bf16_autocast_path_and_its_cache_key(monkeypatch, tiny_backbone):
    # the CUDA path's autocast branch, run on the CPU (slow there, fine for the tiny model)
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: True)
    bf16 = create_backbone(TINY, pretrained=False, device="cpu", engine="torch", precision="bf16")
    batch = bf16.preprocess(generated_cells(2))
    fmap = bf16.feature_map(batch)
    assert fmap.dtype == torch.bfloat16
    cos, _ = agreement(fmap.float().numpy(), tiny_backbone.feature_map(batch).float().numpy())
    assert cos > 0.99  # close, but not float noise: bf16 features get their own cache entry
    assert bf16.cache_key()["precision"] == "bf16"
    assert "precision" not in torch_twin(tiny_backbone).cache_key()


# -- ONNX Runtime agrees with torch ----------------------------------------------------------


def test_onnx_matches_torch_on_random_and_cell_inputs(onnx_tiny):
    ref = torch_twin(onnx_tiny)
    random_batch = torch.randn(3, *onnx_tiny.data_config["input_size"])
    cells = onnx_tiny.preprocess(generated_cells(5))
    for batch in (random_batch, cells, cells[:1]):  # the batch axis is dynamic
        fmap, ref_fmap = onnx_tiny.feature_map(batch), ref.feature_map(batch)
        assert_agree(fmap, ref_fmap)
        assert_agree(onnx_tiny.pool(fmap), ref.pool(ref_fmap))
    pooled, spread = onnx_tiny.stats(cells)
    ref_pooled, ref_spread = ref.stats(cells)
    np.testing.assert_allclose(pooled, ref_pooled, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(spread, ref_spread, rtol=1e-4, atol=1e-5)


def test_cache_key_and_feature_cache_shared_between_engines(
    onnx_tiny, cells_dir, tmp_path, monkeypatch
):
    import datasets

    ds = datasets.load_from_disk(str(cells_dir)).select(range(10))
    ref = torch_twin(onnx_tiny)
    assert onnx_tiny.cache_key() == ref.cache_key()
    feats, _ = dataset_feature_stats(onnx_tiny, ds, cache_dir=tmp_path, progress=False)
    direct = ref(ref.preprocess([r["image"] for r in ds]))
    np.testing.assert_allclose(feats, direct, rtol=1e-4, atol=1e-5)

    def no_backbone(self, batch):
        raise AssertionError("the backbone ran on a cache hit")

    monkeypatch.setattr(Backbone, "stats", no_backbone)
    again, _ = dataset_feature_stats(ref, ds, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(again, feats)


@pytest.mark.slow
def test_resnet152_onnx_matches_torch():
    onnx = create_backbone("resnet152.tv2_in1k", pretrained=False, device="cpu", engine="onnx")
    ref = torch_twin(onnx)
    batch = torch.cat([torch.randn(1, 3, 224, 224), onnx.preprocess(generated_cells(2, seed=1))])
    fmap, ref_fmap = onnx.feature_map(batch), ref.feature_map(batch)
    assert fmap.shape == (3, 2048, 7, 7)
    assert_agree(fmap, ref_fmap)
    assert_agree(onnx.pool(fmap), ref.pool(ref_fmap))


# -- batches side by side, decoding overlapped with compute ----------------------------------


def test_batch_parallel_keeps_order_and_runs_single_threaded_sessions(onnx_tiny):
    import threading

    seen = []

    def fn(i):
        seen.append(threading.get_ident())
        return i * i

    assert list(parallel.batch_parallel(fn, range(7), workers=3)) == [i * i for i in range(7)]
    assert threading.get_ident() not in seen  # computed on the pool's threads
    assert list(parallel.batch_parallel(fn, range(3), workers=1)) == [0, 1, 4]

    runner = onnx_tiny.runner
    trunk = OnnxTrunk(runner.session, runner.path, threads=2, record=runner.record)
    batches = [torch.randn(2, 3, 160, 160) for _ in range(4)]
    together = list(parallel.batch_parallel(trunk, batches, workers=2))
    single = trunk._single
    assert single is not None
    assert single.get_session_options().intra_op_num_threads == 1
    for fmap, batch in zip(together, batches, strict=True):
        assert_agree(fmap, trunk(batch))  # this thread: the multi-threaded session
    with pytest.raises(ZeroDivisionError):
        list(parallel.batch_parallel(lambda i: 1 / i, [1, 0, 2], workers=2))


def test_loader_workers_give_the_same_features(onnx_tiny, cells_dir, tmp_path):
    import datasets

    ds = datasets.load_from_disk(str(cells_dir)).select(range(12))
    inline = dataset_feature_stats(
        onnx_tiny, ds, cache_dir=tmp_path / "a", batch_size=4, progress=False, workers=0
    )
    overlapped = dataset_feature_stats(
        onnx_tiny, ds, cache_dir=tmp_path / "b", batch_size=4, progress=False, workers=1
    )
    for x, y in zip(inline, overlapped, strict=True):
        np.testing.assert_array_equal(x, y)


def test_undecodable_image_in_a_worker_is_our_error(onnx_tiny, tmp_path):
    import datasets

    good = generated_cells(1)[0]
    ds = datasets.Dataset.from_dict(
        {"image": [good, good, {"bytes": b"not an image", "path": None}]},
        features=datasets.Features({"image": datasets.Image()}),
    )
    with pytest.raises(ImageLoadError):
        dataset_feature_stats(
            onnx_tiny, ds, cache_dir=tmp_path, batch_size=1, progress=False, workers=1
        )
    assert not list(tmp_path.rglob("*.npy"))


def test_novelty_fast_path_equals_the_pipeline():
    from cervix_hf.novelty import _halves, fit_novelty

    rng = np.random.default_rng(0)
    train = rng.normal(size=(40, 64))
    detector, _ = fit_novelty(train)
    query = rng.normal(size=(5, 64))
    np.testing.assert_allclose(
        _halves(detector, query), detector[:-1].transform(query), rtol=1e-12, atol=0
    )


def test_auto_falls_back_to_torch_with_a_warning_when_export_fails(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CERVIX_HF_CACHE", str(tmp_path))  # nothing exported there yet

    def broken(model, out, input_size):
        raise RuntimeError("Module onnx is not installed!")

    monkeypatch.setattr(onnx_export, "export_trunk", broken)
    with caplog.at_level("WARNING", logger="cervix_hf.features.runtime"):
        auto = create_backbone(TINY, pretrained=False, device="cpu")
    assert auto.engine == "torch" and auto.runner is None and auto.plan.engine == "torch"
    assert "onnx is not installed" in caplog.text
    with pytest.raises(EngineError, match="onnx is not installed"):
        create_backbone(TINY, pretrained=False, device="cpu", engine="onnx")
