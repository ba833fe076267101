"""app.py as a user starts it: model from env/flags, clear errors, a pushed model at a sha."""

import logging

import numpy as np

import app
from cervix_hf import CervixClassifier


def test_bad_revision_stops_with_one_line(caplog, monkeypatch):
    monkeypatch.setenv("CERVIX_MODEL", "tester/whatever")
    monkeypatch.setenv("CERVIX_MODEL_REVISION", "main")
    with caplog.at_level(logging.ERROR):
        assert app.main([]) == 2
    assert "40-character commit sha" in caplog.text


def test_missing_hub_model_stops_with_what_to_set(hub, caplog):
    with caplog.at_level(logging.ERROR):
        assert app.main(["--model", "tester/no-such-model", "--revision", "d" * 40]) == 2
    assert "not found" in caplog.text and "Traceback" not in caplog.text


def test_an_unpinned_hub_model_is_refused_at_start(caplog, monkeypatch):
    monkeypatch.delenv("CERVIX_ALLOW_UNPINNED", raising=False)
    with caplog.at_level(logging.ERROR):
        assert app.main(["--model", "tester/some-model"]) == 2
    assert "no revision is pinned" in caplog.text and "--allow-unpinned" in caplog.text
    monkeypatch.setenv("CERVIX_ALLOW_UNPINNED", "1")
    assert app.parse_args([]).allow_unpinned


def test_serves_a_model_pushed_to_the_hub_at_a_pinned_sha(hub, hub_repo_id, trained_model_dir):
    from gradio_client import Client, handle_file

    from cervix_hf.serving import load_served_model
    from cervix_hf.webapp import build_app, launch_kwargs, write_examples

    local = CervixClassifier.from_pretrained(trained_model_dir)
    sha = local.push_to_hub(hub_repo_id)
    model, info = load_served_model(hub_repo_id, sha)
    assert info.revision == sha and not info.demo
    examples = write_examples(trained_model_dir.parent)
    server = build_app(model, info)
    _, url, _ = server.launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(None, None))
    try:
        details = Client(url, verbose=False).predict(handle_file(examples[0]), api_name="/predict")
    finally:
        server.close()
    assert details["model"]["repo_id"] == hub_repo_id and details["model"]["revision"] == sha
    np.testing.assert_allclose(
        details["p_abnormal"], local.predict_proba([examples[0]])[0, 1], rtol=1e-5
    )


def test_one_torch_free_process_that_sigterm_stops_cleanly(trained_model_dir, tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    from gradio_client import Client, handle_file

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, CERVIX_MODEL=str(trained_model_dir), GRADIO_ANALYTICS_ENABLED="False")
    env["TMPDIR"] = str(tmp_path)  # the app's own files go here; they must be gone at exit
    env.pop("CERVIX_MODEL_REVISION", None)
    root = Path(__file__).resolve().parents[1]
    log = open(tmp_path / "app.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, str(root / "app.py"), "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        end = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "app.log").read_text()[-2000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).close()
                break
            except OSError:
                assert time.monotonic() < end, "app.py did not come up"
                time.sleep(0.2)
        example = tmp_path / "cell.png"
        example.write_bytes(Path(_example(tmp_path)).read_bytes())
        details = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            handle_file(str(example)), api_name="/predict"
        )
        assert details["label"] in ("Normal", "Abnormal")
        assert not Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "libtorch" not in maps and "onnxruntime" in maps  # one process, no torch
        assert list(tmp_path.glob("cervix-app-*"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert not list(tmp_path.glob("cervix-app-*")), "the app's temporary folder is deleted"


def _example(folder):
    from cervix_hf.webapp import write_examples

    return write_examples(folder)[3]
