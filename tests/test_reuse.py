"""The card's reuse snippet runs verbatim, without this package, and agrees with it."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cervix_hf.config import CervixConfig
from cervix_hf.reuse import (
    MAX_SNIPPET_LINES,
    SNIPPET_MODULES,
    reuse_snippet,
    trusted_types,
)


@pytest.fixture(scope="module")
def pushed(hub, trained_model_dir):
    """The tiny trained model pushed to the loopback Hub: (repo_id, sha, model at that sha)."""
    from cervix_hf import CervixClassifier

    repo_id = f"tester/reuse-{uuid.uuid4().hex[:8]}"
    sha = CervixClassifier.from_pretrained(trained_model_dir).push_to_hub(repo_id)
    return repo_id, sha, CervixClassifier.from_pretrained(repo_id, revision=sha)


def _cell(path: Path, size: tuple[int, int] | None = None, seed: int = 0) -> Path:
    from cervix_hf.synthetic import make_cell

    img = make_cell("Dyskeratotic", np.random.default_rng(seed))
    if size is not None:
        img = img.resize(size, Image.Resampling.BILINEAR)
    img.convert("RGB").save(path)
    return path


def _printed(stdout: str) -> tuple[dict[str, float], str]:
    probabilities, decision = stdout.strip().splitlines()[-1].rsplit(" ", 1)
    return ast.literal_eval(probabilities), decision


def test_snippet_is_short_and_imports_only_the_reuse_libraries(pushed):
    repo_id, sha, model = pushed
    code = reuse_snippet(repo_id, sha, model.config)
    assert len(code.splitlines()) <= MAX_SNIPPET_LINES
    imported = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported == set(SNIPPET_MODULES) | {"huggingface_hub"}
    assert f'revision="{sha}"' in code and f'"{repo_id}"' in code


def test_snippet_run_verbatim_in_a_fresh_interpreter_matches_the_package(pushed, tmp_path):
    repo_id, sha, model = pushed
    (tmp_path / "snippet.py").write_text(reuse_snippet(repo_id, sha, model.config))
    cell = _cell(tmp_path / "cell.bmp")
    probe = (
        "import runpy, sys; runpy.run_path('snippet.py'); "
        "print(sorted(m for m in sys.modules if m.startswith('cervix_hf')), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == "[]"  # this package was never imported
    probabilities, decision = _printed(done.stdout)
    expected = model.predict_proba([cell])[0]
    assert list(probabilities) == list(model.classes_)
    np.testing.assert_allclose(list(probabilities.values()), expected, rtol=0, atol=1e-6)
    assert decision == model.predict([cell])[0]


@pytest.mark.parametrize(
    # (100, 102) and (102, 100) resize to 168 x 171: an odd margin where round() != floor
    "size",
    [None, (97, 131), (131, 97), (100, 102), (102, 100), (160, 160), (40, 23), (400, 401)],
    ids=str,
)
def test_snippet_preprocessing_is_the_models_for_any_shape(pushed, tmp_path, monkeypatch, size):
    repo_id, sha, model = pushed
    cell = _cell(tmp_path / "cell.bmp", size, seed=3)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(reuse_snippet(repo_id, sha, model.config), namespace)
    # the tensor the snippet feeds the graph is bit for bit the package's
    np.testing.assert_array_equal(namespace["x"][0], model.prepare(str(cell)).pixels)
    probabilities, decision = _printed(out.getvalue())
    np.testing.assert_allclose(
        list(probabilities.values()), model.predict_proba([cell])[0], rtol=0, atol=1e-6
    )
    assert decision == model.predict([cell])[0]


def test_snippet_refuses_other_crop_modes_with_a_message(hub, trained_model_dir, tmp_path):
    from huggingface_hub import HfApi

    folder = tmp_path / "model"
    folder.mkdir()
    config = json.loads((trained_model_dir / "config.json").read_text())
    config["data_config"]["crop_mode"] = "squash"
    (folder / "config.json").write_text(json.dumps(config))
    repo_id = f"tester/squash-{uuid.uuid4().hex[:8]}"
    api = HfApi()
    api.create_repo(repo_id)
    sha = api.upload_folder(repo_id=repo_id, folder_path=folder).oid
    code = reuse_snippet(repo_id, sha, CervixConfig.from_json(folder / "config.json"))
    with pytest.raises(SystemExit, match="crop_mode 'center' on square inputs only"):
        exec(code, {})


def test_unpinned_snippet_says_to_pin_and_short_shas_are_refused(pushed):
    repo_id, _, model = pushed
    code = reuse_snippet(repo_id, None, model.config)
    assert 'revision="main")  # pin a commit' in code
    with pytest.raises(ValueError, match="40-character"):
        reuse_snippet(repo_id, "main", model.config)
    with pytest.raises(ValueError, match="40-character"):
        reuse_snippet(repo_id, "abc1234", model.config)


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrated_heads_load_with_the_rendered_trusted_list(trained_model_dir, tmp_path, method):
    import skops.io
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression

    config = CervixConfig.from_json(trained_model_dir / "config.json")
    assert trusted_types(config) == []  # a plain pipeline: scikit-learn's own types only
    calibrated = config.replace(
        head_params={**config.head_params, "calibration": {"method": method}}
    )
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    head = CalibratedClassifierCV(LogisticRegression(), method=method, cv=2).fit(X, y)
    skops.io.dump(head, tmp_path / "head.skops")
    untrusted = skops.io.get_untrusted_types(file=tmp_path / "head.skops")
    assert sorted(trusted_types(calibrated)) == sorted(untrusted)
    loaded = skops.io.load(tmp_path / "head.skops", trusted=trusted_types(calibrated))
    np.testing.assert_allclose(loaded.predict_proba(X), head.predict_proba(X))


def test_the_pushed_card_opens_how_to_use_with_the_snippet_pinned_to_the_model_files(
    hub, pushed, tmp_path
):
    from cervix_hf.card import revision_from_card

    repo_id, sha, model = pushed
    now = hub.files(repo_id, revision=sha)
    card = now["README.md"].decode()
    code = card.split("## How to use")[1].split("```python\n")[1].split("```")[0]
    pinned = revision_from_card(card)
    assert pinned is not None and pinned != sha and f'revision="{pinned}"' in code
    then = hub.files(repo_id, revision=pinned)  # the commit before the card's own
    assert {k: v for k, v in then.items() if k != "README.md"} == {
        k: v for k, v in now.items() if k != "README.md"
    }
    (tmp_path / "snippet.py").write_text(code)
    cell = _cell(tmp_path / "cell.bmp", seed=3)
    done = subprocess.run(
        [sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    probabilities, decision = _printed(done.stdout)
    expected = model.predict_proba([cell])[0]
    assert [probabilities[c] for c in model.classes_] == pytest.approx(expected, abs=1e-6)
    assert decision == model.predict([cell])[0]
