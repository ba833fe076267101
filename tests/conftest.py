# ---------------------------------------------------------------------------------------------
# Loopback Hugging Face Hub (tests/loopback_hub.py) -- keep this block FIRST in this file.
#
# huggingface_hub and datasets read HF_ENDPOINT / HF_HUB_DISABLE_XET / HF_HOME / ... once, at
# import time, so the environment is set here at module top level, before any test module (or
# fixture) imports them. Every Hub call of the test session then goes to a LoopbackHub served on
# 127.0.0.1:<HUB_PORT> (session fixture `hub`); nothing is sent anywhere else.
# ---------------------------------------------------------------------------------------------
from __future__ import annotations

import atexit
import os
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator

import pytest

from tests.loopback_hub import LoopbackHub  # stdlib only: safe before the env is set

if "huggingface_hub" in sys.modules or "datasets" in sys.modules:
    raise RuntimeError(
        "huggingface_hub/datasets were imported before tests/conftest.py could point them at the "
        "loopback hub; they would talk to the real Hub. Import them inside tests instead."
    )


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


HUB_PORT = _free_loopback_port()
HUB_URL = f"http://127.0.0.1:{HUB_PORT}"
HUB_TOKEN = "hf_loopback_test_token"
_HF_TMP = tempfile.mkdtemp(prefix="cervix-hf-home-")
atexit.register(shutil.rmtree, _HF_TMP, ignore_errors=True)

os.environ.update(
    {
        "HF_ENDPOINT": HUB_URL,
        "HF_HUB_DISABLE_XET": "1",  # force the plain LFS upload / HTTP download paths
        "HF_HOME": _HF_TMP,
        "HF_DATASETS_CACHE": os.path.join(_HF_TMP, "datasets"),
        "HF_TOKEN": HUB_TOKEN,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "CERVIX_HF_CACHE": os.path.join(_HF_TMP, "cervix_hf"),  # feature cache of the session
        # engine "auto" by rule, not by timing (tests of the probe inject their own timings)
        "CERVIX_HF_ENGINE_PROBE": "0",
    }
)
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackHub]:
    """The running `tests.loopback_hub.LoopbackHub` that HF_ENDPOINT points at (session-wide)."""
    with LoopbackHub(tmp_path_factory.mktemp("loopback-hub"), port=HUB_PORT) as server:
        assert server.url == HUB_URL
        yield server


@pytest.fixture
def hub_repo_id() -> str:
    """A fresh, unused repo id on the loopback hub, e.g. "tester/repo-1a2b3c4d"."""
    return f"tester/repo-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------------------------
# End of the loopback hub block.
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Shared data and model fixtures: generated cells (never medical data) and a tiny backbone.
# ---------------------------------------------------------------------------------------------
TINY_BACKBONE = "test_resnet"  # timm's 0.37M-parameter test model: 96-D features at 160 px


@pytest.fixture(scope="session")
def raw_cells(tmp_path_factory: pytest.TempPathFactory):
    """A raw SIPaKMeD-layout tree of generated cells (12 per type)."""
    from cervix_hf.synthetic import write_raw_sipakmed

    out = tmp_path_factory.mktemp("raw") / "sipakmed"
    counts = write_raw_sipakmed(out, per_type=12, seed=0)
    return out, counts


@pytest.fixture(scope="session")
def cells_dir(raw_cells, tmp_path_factory: pytest.TempPathFactory):
    """The generated cells prepared as a saved ``datasets`` dataset (its directory)."""
    from cervix_hf.sipakmed import build_dataset

    out = tmp_path_factory.mktemp("prepared") / "cells"
    build_dataset(raw_cells[0]).save_to_disk(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_backbone():
    """A randomly initialised ``test_resnet`` backbone on the CPU."""
    from cervix_hf.features import create_backbone

    return create_backbone(TINY_BACKBONE, pretrained=False, init_seed=0, device="cpu")


@pytest.fixture(scope="session")
def trained_model_dir(cells_dir, tmp_path_factory: pytest.TempPathFactory):
    """A model trained by scripts/train.py on the generated cells with the tiny backbone."""
    from scripts import train as train_script

    out = tmp_path_factory.mktemp("model") / "model"
    argv = [
        "--dataset",
        str(cells_dir),
        "--out",
        str(out),
        "--backbone",
        TINY_BACKBONE,
        "--no-pretrained",
        "--cell-types",
        "--no-progress",
    ]
    assert train_script.main(argv) == 0
    return out


@pytest.fixture(scope="session")
def served(trained_model_dir, tmp_path_factory):
    """The Gradio app serving the tiny trained model on 127.0.0.1: (url, model, examples)."""
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio"))
    from cervix_hf.serving import load_served_model
    from cervix_hf.webapp import AppFiles, build_app, launch_kwargs, write_examples

    model, info = load_served_model(str(trained_model_dir), None)
    examples = write_examples(tmp_path_factory.mktemp("examples"))
    files = AppFiles()
    app = build_app(model, info, examples=examples, files=files)
    kwargs = launch_kwargs(None, None)
    assert kwargs["server_name"] == "127.0.0.1"
    _, url, _ = app.launch(prevent_thread_lock=True, quiet=True, **kwargs)
    yield url, model, examples
    app.close()
    files.close()
