"""Publishing the demo as a Space: the built folder, the Hub calls, and the folder served.

Everything runs against the loopback Hub (conftest). The slow test installs the Space's
requirements into a fresh venv from the package registry, as a Space's build does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cervix_hf import space
from cervix_hf.space_folder import (
    PYTHON_VERSION,
    SERVING_MODULES,
    SPACE_REQUIREMENTS,
    gradio_version,
    module_file,
)

ROOT = Path(__file__).resolve().parents[1]
NEVER_IN_A_SPACE = ("torch", "torchvision", "timm")
MODEL_FILES = "config.json,backbone.onnx,head.skops,cell_type_head.skops,novelty.skops"


def _space_id() -> str:
    return f"tester/space-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def pushed(hub, trained_model_dir):
    """The tiny trained model on the loopback Hub: (repo_id, commit sha)."""
    from cervix_hf import CervixClassifier

    repo_id = f"tester/served-{uuid.uuid4().hex[:8]}"
    return repo_id, CervixClassifier.from_pretrained(trained_model_dir).push_to_hub(repo_id)


DRY_RUN_SPACE = _space_id()


@pytest.fixture(scope="module")
def built(pushed, tmp_path_factory) -> Path:
    """A Space folder for the pushed model (a dry run: nothing published)."""
    repo_id, sha = pushed
    out = tmp_path_factory.mktemp("space") / "space"
    argv = [repo_id, "--revision", sha, "--space", DRY_RUN_SPACE, "--dry-run", str(out)]
    assert space.main(argv) == 0
    return out


def _front_matter(readme: str):
    from huggingface_hub import SpaceCard

    return SpaceCard(readme).data


def test_space_pins_are_the_projects_tested_pins_without_torch():
    pins = {
        line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
    }
    for requirement in SPACE_REQUIREMENTS:
        assert requirement in pins, f"{requirement} is not pinned so in requirements.txt"
    names = {r.split("==")[0].split("[")[0].lower() for r in SPACE_REQUIREMENTS}
    assert not names & {"torch", "torchvision", "timm", "accelerate", "onnx", "datasets"}
    import gradio

    assert gradio_version() == gradio.__version__
    assert all(module_file(m).is_file() for m in SERVING_MODULES)


def test_dry_run_builds_the_folder_and_publishes_nothing(hub, built, pushed):
    repo_id, sha = pushed
    files = {p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()}
    modules = {m for m in files if m.startswith("cervix_hf/")}
    assert modules == {module_file(m).relative_to(ROOT).as_posix() for m in SERVING_MODULES}
    assert files - modules == {"app.py", "requirements.txt", "README.md"}
    assert (built / "requirements.txt").read_text().split("\n")[1:-1] == list(SPACE_REQUIREMENTS)
    meta = _front_matter((built / "README.md").read_text())
    assert meta.sdk == "gradio" and meta.sdk_version == gradio_version()
    assert meta.app_file == "app.py" and meta.python_version == PYTHON_VERSION
    assert meta.models == [repo_id]
    assert meta.preload_from_hub == [f"{repo_id} {MODEL_FILES} {sha}"]
    assert len(meta.short_description) <= 60  # the Hub's limit
    readme = (built / "README.md").read_text()
    assert "Not a diagnostic device" in readme and f'Client("{DRY_RUN_SPACE}")' in readme
    assert ("space", DRY_RUN_SPACE) not in hub.repos


def test_deploy_a_model_directory_end_to_end(hub, trained_model_dir, capsys):
    from huggingface_hub import HfApi

    space_id = _space_id()
    argv = [str(trained_model_dir), "--space", space_id, "--hardware", "cpu-basic"]
    assert space.main(argv) == 0
    out = dict(line.split(": ", 1) for line in capsys.readouterr().out.strip().splitlines())
    model_repo, sha = out["model"].split(" @ ")
    assert model_repo == f"{space_id}-model" and len(sha) == 40
    assert out["space"] == f"{hub.url}/spaces/{space_id}"
    repo = hub.repos[("space", space_id)]
    assert out["commit"] == repo.branches["main"] and repo.sdk == "gradio"
    assert {k: v["value"] for k, v in repo.variables.items()} == {
        "CERVIX_MODEL": model_repo,
        "CERVIX_MODEL_REVISION": sha,
    }
    assert repo.hardware == "cpu-basic" and out["hardware requested"] == "cpu-basic"
    published = hub.files(space_id, "space")
    assert set(published) >= {".gitattributes", "app.py", "requirements.txt", "README.md"}
    meta = _front_matter(published["README.md"].decode())
    assert meta.preload_from_hub == [f"{model_repo} {MODEL_FILES} {sha}"]
    model_files = hub.files(model_repo, revision=sha)
    assert set(MODEL_FILES.split(",")) <= set(model_files)
    assert HfApi().space_info(space_id).sdk == "gradio"


def test_private_deploy_skips_the_preload_the_hub_cannot_do(hub, trained_model_dir, caplog):
    space_id = _space_id()
    model_repo = f"tester/private-{uuid.uuid4().hex[:8]}"
    argv = [str(trained_model_dir), "--space", space_id, "--model-repo", model_repo, "--private"]
    assert space.main(argv) == 0
    assert hub.repos[("space", space_id)].private and hub.repos[("model", model_repo)].private
    meta = _front_matter(hub.files(space_id, "space")["README.md"].decode())
    assert meta.models == [model_repo] and "preload_from_hub" not in meta.to_dict()
    assert "cannot preload private repos" in caplog.text and "HF_TOKEN secret" in caplog.text


def test_redeploy_serves_the_new_commit_and_drops_stale_files(hub, pushed, tmp_path, capsys):
    from huggingface_hub import HfApi

    repo_id, sha = pushed
    space_id = _space_id()
    assert space.main([repo_id, "--revision", sha, "--space", space_id]) == 0
    api = HfApi()
    (tmp_path / "stale.py").write_text("old = True\n")
    api.upload_folder(repo_id=space_id, repo_type="space", folder_path=tmp_path)
    api.add_space_variable(space_id, "CERVIX_MODEL_REVISION", "0" * 40)
    capsys.readouterr()
    assert space.main([repo_id, "--revision", sha, "--space", space_id]) == 0
    assert "hardware: none requested" in capsys.readouterr().out
    published = hub.files(space_id, "space")
    assert "stale.py" not in published and ".gitattributes" in published
    assert api.get_space_variables(space_id)["CERVIX_MODEL_REVISION"].value == sha
    assert hub.repos[("space", space_id)].hardware is None  # never requested: a choice


@pytest.mark.parametrize("revision", [None, "main", "abc1234"])
def test_an_unpinned_hub_model_is_refused(hub, pushed, caplog, revision):
    space_id = _space_id()
    argv = [pushed[0], "--space", space_id] + (["--revision", revision] if revision else [])
    assert space.main(argv) == 2
    assert "pin it with --revision <full 40-character commit sha>" in caplog.text
    assert ("space", space_id) not in hub.repos


def test_refusals_say_what_to_do(hub, pushed, trained_model_dir, tmp_path, caplog):
    repo_id, sha = pushed
    cases = [
        ([str(trained_model_dir), "--space", _space_id(), "--revision", sha], "local directory"),
        (
            [str(trained_model_dir), "--space", _space_id(), "--dry-run", str(tmp_path / "x")],
            "pushed first",
        ),
        ([repo_id, "--revision", sha, "--space", "no-owner"], "OWNER/NAME"),
        (
            [repo_id, "--revision", sha, "--space", _space_id(), "--model-repo", "a/b"],
            "--model-repo",
        ),
        (["tester/no-such-model", "--revision", sha, "--space", _space_id()], "not found"),
    ]
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    cases.append(
        (
            [repo_id, "--revision", sha, "--space", _space_id(), "--dry-run", str(occupied)],
            "not an empty folder",
        )
    )
    for argv, message in cases:
        caplog.clear()
        assert space.main(argv) == 2, argv
        assert message in caplog.text and "Traceback" not in caplog.text
    assert (occupied / "keep.txt").read_text() == "mine"


def test_a_model_without_backbone_onnx_is_refused(hub, trained_model_dir, tmp_path, caplog):
    from huggingface_hub import HfApi

    folder = tmp_path / "old"
    folder.mkdir()
    config = json.loads((trained_model_dir / "config.json").read_text())
    config.pop("backbone_onnx")
    config["format_version"] = 1
    (folder / "config.json").write_text(json.dumps(config))
    repo_id = f"tester/old-{uuid.uuid4().hex[:8]}"
    api = HfApi()
    api.create_repo(repo_id)
    sha = api.upload_folder(repo_id=repo_id, folder_path=folder).oid
    assert space.main([repo_id, "--revision", sha, "--space", _space_id()]) == 2
    assert "has no backbone.onnx" in caplog.text


def test_hardware_must_be_a_known_flavour(capsys):
    with pytest.raises(SystemExit):
        space.parse_args(["m", "--space", "a/b", "--hardware", "cpu-huge"])
    assert "invalid choice" in capsys.readouterr().err


def test_the_script_is_the_module():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "deploy_space.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "--dry-run OUT_DIR" in done.stdout


# -- the built folder, served ----------------------------------------------------------------

# Runs the Space's app.py as the Space does (``python app.py`` in the folder), and at exit
# writes every imported module with its file to $CERVIX_MODULE_DUMP.
_PROBE = """
import atexit, json, os, runpy, sys
def dump():
    with open(os.environ["CERVIX_MODULE_DUMP"], "w") as fh:
        json.dump({n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())}, fh)
atexit.register(dump)
sys.argv = ["app.py", *sys.argv[1:]]
runpy.run_path("app.py", run_name="__main__")
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _serve_folder(
    python: str, folder: Path, env: dict[str, str], log: Path
) -> Iterator[tuple[str, int]]:
    """``python app.py --port P`` in the folder (through the probe); yields (url, pid), then
    stops it with SIGTERM, as a Space is stopped, and checks it exits cleanly."""
    port = _free_port()
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [python, "-c", _PROBE, "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        end = time.monotonic() + 300
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).close()
                break
            except OSError:
                assert time.monotonic() < end, "the Space's app did not come up"
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/", proc.pid
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _check_served(url: str, pid: int, pushed, tmp_path: Path) -> None:
    """/predict on a generated cell equals the package's predict_proba; no torch mapped."""
    from gradio_client import Client, handle_file

    from cervix_hf import CervixClassifier
    from cervix_hf.webapp import write_examples

    repo_id, sha = pushed
    cell = write_examples(tmp_path)[4]
    details = Client(url, verbose=False).predict(handle_file(cell), api_name="/predict")
    model = CervixClassifier.from_pretrained(repo_id, revision=sha)
    np.testing.assert_allclose(
        list(details["probabilities"].values()), model.predict_proba([cell])[0], rtol=0, atol=1e-6
    )
    assert (details["model"]["repo_id"], details["model"]["revision"]) == (repo_id, sha)
    # a whole field too: the Space's requirements carry the cell locator's (scikit-image)
    from cervix_hf.synthetic import make_field

    field = tmp_path / "field.png"
    make_field("Koilocytotic", np.random.default_rng(1), size=(700, 600), n_cells=3).image.save(
        field
    )
    answer = Client(url, verbose=False).predict(handle_file(str(field)), api_name="/analyze_field")
    assert answer["summary"]["cells_found"] >= 1 and answer["model"]["revision"] == sha
    maps = Path(f"/proc/{pid}/maps").read_text()
    assert "onnxruntime" in maps and "libtorch" not in maps


def _check_modules(dump: Path, folder: Path) -> None:
    modules = json.loads(dump.read_text())
    ours = {name: file for name, file in modules.items() if name.split(".")[0] == "cervix_hf"}
    assert set(ours) <= set(SERVING_MODULES), set(ours) - set(SERVING_MODULES)
    assert "cervix_hf.webapp.page" in ours and "cervix_hf.modeling" in ours
    assert all(Path(file).resolve().is_relative_to(folder.resolve()) for file in ours.values())
    assert not [n for n in modules if n.split(".")[0] in NEVER_IN_A_SPACE]


def _space_env(pushed, tmp_path: Path) -> dict[str, str]:
    repo_id, sha = pushed
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CERVIX_", "PYTHON"))}
    env.update(
        CERVIX_MODEL=repo_id,
        CERVIX_MODEL_REVISION=sha,
        CERVIX_MODULE_DUMP=str(tmp_path / "modules.json"),
        GRADIO_ANALYTICS_ENABLED="False",
    )
    return env


def test_the_built_space_imports_only_its_modules_and_no_torch(built, pushed, tmp_path):
    env = _space_env(pushed, tmp_path)
    with _serve_folder(sys.executable, built, env, tmp_path / "app.log") as (url, pid):
        _check_served(url, pid, pushed, tmp_path)
    _check_modules(tmp_path / "modules.json", built)


def test_the_built_space_refuses_to_start_without_a_model(built, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERVIX_")}
    done = subprocess.run(
        [sys.executable, "app.py"], cwd=built, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "No model configured" in done.stderr


@pytest.mark.slow
def test_the_built_space_runs_from_its_requirements_in_a_fresh_venv(built, pushed, tmp_path):
    """As a Space builds it: a new venv, ``pip install -r requirements.txt`` from the package
    registry (pip's cache is used), then ``python app.py``: it serves /predict without torch."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    pip = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            "requirements.txt",
        ],
        cwd=built,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    installed = subprocess.run(
        [python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    )
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert not names & set(NEVER_IN_A_SPACE) and "cervix_hf" not in names
    env = _space_env(pushed, tmp_path)
    with _serve_folder(python, built, env, tmp_path / "app.log") as (url, pid):
        _check_served(url, pid, pushed, tmp_path)
    _check_modules(tmp_path / "modules.json", built)
