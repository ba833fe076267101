"""Scale-out extraction (scripts/extract.py, cervix_hf.features.scaleout): shards gathered into
the same cache entry as a single process, with the same features."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from cervix_hf.features import (
    Backbone,
    dataset_feature_stats,
    extract_sharded,
    feature_cache_entry,
    shard_files,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = "test_resnet"


@pytest.fixture(scope="module")
def cells(cells_dir):
    from cervix_hf.data import load_cells

    return load_cells(str(cells_dir))


def single_process(backbone, cells, cache_dir):
    return dataset_feature_stats(
        backbone, cells.dataset, cache_dir=cache_dir, progress=False, fingerprint=cells.fingerprint
    )


def test_torchrun_two_processes_match_one(tiny_backbone, cells, cells_dir, tmp_path, monkeypatch):
    two = tmp_path / "two"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(ROOT / "scripts" / "extract.py"),
        "--dataset",
        str(cells_dir),
        "--backbone",
        TINY,
        "--no-pretrained",
        "--device",
        "cpu",
        "--cache-dir",
        str(two),
        "--no-progress",
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Rank 1 of 2" in proc.stderr
    printed = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1  # the main process reports the entry
    entry_dir = Path(printed[0]["cache_entry"])

    one = tmp_path / "one"
    feats, spread = single_process(tiny_backbone, cells, one)
    expected = feature_cache_entry(
        tiny_backbone, cells.dataset, cache_dir=one, fingerprint=cells.fingerprint
    )
    # the same cache entry (key) as the single-process path, with the same features
    assert entry_dir.relative_to(two) == expected.path.relative_to(one)
    assert printed[0]["shape"] == [len(cells.dataset), 96]
    np.testing.assert_allclose(np.load(entry_dir / "features.npy"), feats, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.load(entry_dir / "spread.npy"), spread, rtol=1e-5, atol=1e-6)
    meta = json.loads((entry_dir / "meta.json").read_text())
    assert meta == json.loads((expected.path / "meta.json").read_text())
    assert sorted(p.name for p in entry_dir.iterdir()) == [
        "features.npy",
        "meta.json",
        "spread.npy",
    ]

    def no_backbone(self, batch):
        raise AssertionError("the backbone ran on a cache hit")

    monkeypatch.setattr(Backbone, "stats", no_backbone)  # training afterwards: a cache hit
    again, _ = single_process(tiny_backbone, cells, two)
    np.testing.assert_array_equal(again, np.load(entry_dir / "features.npy"))


def run_ranks(backbone, cells, cache_dir, world_size):
    """Every rank of a job in its own thread (a threading barrier stands in for gloo's)."""
    barrier = threading.Barrier(world_size, timeout=120)
    entries, errors = {}, []

    def rank_main(rank):
        try:
            entries[rank] = extract_sharded(
                backbone,
                cells.dataset,
                rank=rank,
                world_size=world_size,
                barrier=barrier.wait,
                cache_dir=cache_dir,
                fingerprint=cells.fingerprint,
                batch_size=8,
                progress=False,
                workers=0,  # no fork from a multi-threaded test process
            )
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return entries


def test_uneven_shards_are_gathered_in_order_and_finished_shards_reused(
    tiny_backbone, cells, tmp_path, monkeypatch
):
    feats, spread = single_process(tiny_backbone, cells, tmp_path / "one")
    n = len(cells.dataset)
    assert n % 3 or n % 7  # shards of different sizes below

    entries = run_ranks(tiny_backbone, cells, tmp_path / "three", 3)
    entry = entries[0]
    assert {e.path for e in entries.values()} == {entry.path}
    np.testing.assert_allclose(np.load(entry.files[0]), feats, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.load(entry.files[1]), spread, rtol=1e-5, atol=1e-6)
    assert not list(entry.path.glob("shard-*")) and not list(entry.path.glob("*.partial"))

    # a job that died after some shards were done: a rerun extracts only the missing ones
    seven = tmp_path / "seven"
    done = feature_cache_entry(
        tiny_backbone, cells.dataset, cache_dir=seven, fingerprint=cells.fingerprint
    )
    done.path.mkdir(parents=True)
    bounds = np.cumsum([0] + [len(range(r, n, 7)) for r in range(7)])  # contiguous shard sizes
    for r in (0, 5):
        rows = slice(bounds[r], bounds[r + 1])
        for path, arr in zip(shard_files(done, r, 7), (feats, spread), strict=True):
            np.save(path, arr[rows])
    calls = []
    real_stats = Backbone.stats

    def counting(self, batch):
        calls.append(len(batch))
        return real_stats(self, batch)

    monkeypatch.setattr(Backbone, "stats", counting)
    entries = run_ranks(tiny_backbone, cells, seven, 7)
    assert sum(calls) == n - (bounds[1] - bounds[0]) - (bounds[6] - bounds[5])
    np.testing.assert_allclose(np.load(entries[0].files[0]), feats, rtol=1e-5, atol=1e-6)
