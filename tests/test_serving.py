"""Which model the app serves: pinned Hub models, local directories, the demo; never torch."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cervix_hf.errors import ModelLoadError
from cervix_hf.serving import UNPINNED_NOTE, check_revision, check_source, load_served_model

ROOT = Path(__file__).resolve().parents[1]


def test_revision_must_be_a_full_sha():
    assert check_revision(None) is None and check_revision("") is None
    assert check_revision("a" * 40) == "a" * 40
    for bad in ("main", "abc123", "A" * 40, "v1.0"):
        with pytest.raises(ModelLoadError, match="40-character"):
            check_revision(bad)


def test_sources_are_checked_before_anything_loads(tmp_path):
    check_source(None, None)
    check_source(str(tmp_path), None)
    with pytest.raises(ModelLoadError, match="applies to Hub repos"):
        check_source(str(tmp_path), "b" * 40)
    with pytest.raises(ModelLoadError, match="no revision is pinned"):
        check_source("someone/model", None)
    check_source("someone/model", None, allow_unpinned=True)
    check_source("someone/model", "c" * 40)


def test_pinned_and_explicitly_unpinned_hub_models(hub, hub_repo_id, trained_model_dir):
    from cervix_hf import CervixClassifier

    sha = CervixClassifier.from_pretrained(trained_model_dir).push_to_hub(hub_repo_id)
    model, info = load_served_model(hub_repo_id, sha)
    assert info.revision == sha and UNPINNED_NOTE not in info.notes
    assert model.source == {"repo_id": hub_repo_id, "revision": sha}
    with pytest.raises(ModelLoadError, match="no revision is pinned"):
        load_served_model(hub_repo_id, None)
    model, info = load_served_model(hub_repo_id, None, allow_unpinned=True)
    assert UNPINNED_NOTE in info.notes and info.revision == sha


def test_the_demo_is_built_in_a_child_and_served_without_torch(tmp_path):
    # a fresh process: the demo model is trained in ITS child (torch there), then this process
    # loads and serves it, and must never have imported torch, timm or torchvision
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from cervix_hf.demo import load_demo_model
        from cervix_hf.webapp import AppFiles, build_app, predict_api, write_examples
        from cervix_hf.serving import ModelInfo
        model = load_demo_model({str(tmp_path)!r}, backbone="test_resnet", per_type=12)
        examples = write_examples({str(tmp_path)!r})
        app = build_app(model, ModelInfo("demo", demo=True), examples, AppFiles(prune_every=0))
        print(predict_api(model, examples[0])["label"])
        print(sorted(m for m in ("torch", "timm", "torchvision") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True
    )
    label, modules = out.stdout.strip().splitlines()[-2:]
    assert label in ("Normal", "Abnormal") and modules == "[]"
    assert (tmp_path / "demo-model" / "backbone.onnx").is_file()
