"""Model files checked before use: skops heads (trusted types, plain archives) and hashes."""

import hashlib
import zipfile

import numpy as np
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from cervix_hf.artifacts import (
    check_classifier,
    load_skops,
    save_skops,
    sha256_file,
    verify_file,
)
from cervix_hf.errors import ConfigMismatchError, ModelLoadError, UntrustedHeadError
from cervix_hf.head import build_head, fit_head
from tests.test_head import separable


def test_skops_round_trip_is_exact(tmp_path):
    x, y, groups = separable()
    head, _ = fit_head(x, y, groups, c_grid=(0.1,))
    save_skops(head, tmp_path / "head.skops")
    back = load_skops(tmp_path / "head.skops")
    np.testing.assert_array_equal(back.predict_proba(x), head.predict_proba(x))
    assert sio.get_untrusted_types(file=tmp_path / "head.skops") == []


def _double(x):
    return x * 2


def test_foreign_types_are_refused(tmp_path):
    x, y, _ = separable()
    evil = Pipeline([("f", FunctionTransformer(_double)), ("clf", build_head())]).fit(x, y)
    sio.dump(evil, tmp_path / "head.skops")
    with pytest.raises(UntrustedHeadError, match="_double"):
        load_skops(tmp_path / "head.skops")


def test_not_a_skops_file(tmp_path):
    (tmp_path / "head.skops").write_bytes(b"\x80\x04not a zip")
    with pytest.raises(ModelLoadError, match="not a readable skops file"):
        load_skops(tmp_path / "head.skops")
    with pytest.raises(ModelLoadError, match="missing"):
        load_skops(tmp_path / "other.skops")


def test_check_classifier_against_config():
    x, y, _ = separable(d=12)
    head = build_head().fit(x, y)
    check_classifier(head, feature_dim=12, classes=("Normal", "Abnormal"), name="head.skops")
    with pytest.raises(ConfigMismatchError, match="12 features"):
        check_classifier(head, feature_dim=2048, classes=("Normal", "Abnormal"), name="head.skops")
    with pytest.raises(ConfigMismatchError, match="classes"):
        check_classifier(head, feature_dim=12, classes=("a", "b", "c"), name="head.skops")
    with pytest.raises(ConfigMismatchError, match="not a fitted classifier"):
        check_classifier(build_head(), feature_dim=12, classes=("a", "b"), name="head.skops")


def test_compressed_or_crowded_skops_files_are_refused_before_skops_reads_them(tmp_path):
    x, y, _ = separable()
    head = build_head().fit(x, y)
    sio.dump(head, tmp_path / "deflated.skops", compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ModelLoadError, match="compressed entries"):
        load_skops(tmp_path / "deflated.skops")
    with zipfile.ZipFile(tmp_path / "crowded.skops", "w") as zf:
        for i in range(10_001):
            zf.writestr(f"{i}.npy", b"")
    with pytest.raises(ModelLoadError, match="entries"):
        load_skops(tmp_path / "crowded.skops")


def test_hashes_are_checked_before_use(tmp_path):
    path = tmp_path / "backbone.onnx"
    path.write_bytes(b"graph bytes")
    want = hashlib.sha256(b"graph bytes").hexdigest()
    assert sha256_file(path) == want
    verify_file(path, want, "backbone.onnx")
    path.write_bytes(b"graph bytes, planted")
    with pytest.raises(ModelLoadError, match="does not match the SHA-256"):
        verify_file(path, want, "backbone.onnx")
    with pytest.raises(ModelLoadError, match="missing"):
        verify_file(tmp_path / "nope.onnx", want, "nope.onnx")


def test_loading_skops_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; from cervix_hf.artifacts import skops_io; skops_io(); "
        "print(sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_fresh_process_trusts_only_the_estimators_a_model_holds(tmp_path, trained_model_dir):
    import subprocess
    import sys

    from sklearn.ensemble import RandomForestClassifier

    from cervix_hf.evaluation.cv import fit_calibrated_head

    x, y, groups = separable(n=120)
    for method in ("sigmoid", "isotonic"):
        head = fit_calibrated_head(x, y, groups, c=0.1, method=method, n_splits=3)
        save_skops(head, tmp_path / f"{method}.skops")
    forest = Pipeline([("clf", RandomForestClassifier(n_estimators=2, random_state=0))])
    sio.dump(forest.fit(x, y), tmp_path / "forest.skops")
    code = (
        "import sys; from cervix_hf.artifacts import load_skops; "
        "from cervix_hf.errors import UntrustedHeadError\n"
        f"for name in ('sigmoid', 'isotonic'): load_skops({str(tmp_path)!r} + f'/{{name}}.skops')\n"
        f"for name in ('head', 'cell_type_head', 'novelty'): "
        f"load_skops({str(trained_model_dir)!r} + f'/{{name}}.skops')\n"
        "print(sorted(m for m in ('torch', 'timm') if m in sys.modules))\n"
        "try:\n"
        f"    load_skops({str(tmp_path / 'forest.skops')!r})\n"
        "except UntrustedHeadError as exc:\n"
        "    print('refused', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "[]"  # loading a model imported no torch
    assert lines[1].startswith("refused") and "RandomForestClassifier" in lines[1]
