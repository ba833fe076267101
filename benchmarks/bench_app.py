"""Serving latency of the Gradio app against a bare forward and Gradio's own round trip.

    .venv/bin/python benchmarks/bench_app.py          # 2-3 minutes once the demo model is cached

Starts ``app.py`` (the offline demo model: random-init ResNet152, synthetic cells) and a
trivial Gradio app (a file in, a string out) as subprocesses on 127.0.0.1, then measures,
alternating, rep after rep:

  * one image through ``gradio_client`` against the app (``/predict``: probabilities,
    decision, cell types, unusual-image score and flag, the heat map as its exact
    contribution grid; one dict, no file for the client to fetch);
  * the trivial app's round trip with the same upload;
  * a bare backbone forward at batch 1 in this process (same engine, same weights);
  * ``model.analyze`` in this process (everything ``/predict`` computes, without Gradio).

Our overhead = app latency - bare forward - trivial round trip (goal: at most 50 ms). Also
the time from starting ``app.py`` to its first prediction with everything cached (``--starts``
fresh starts, one after the other), and the peak RSS of the app's two processes (web and
model). The first run trains and caches
the demo model (a minute or two).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRIVIAL_APP = """
import sys
import gradio as gr

def echo(path):
    return "ok"

with gr.Blocks() as app:
    upload = gr.File(type="filepath")
    out = gr.Textbox()
    gr.Button().click(echo, upload, out, api_name="predict")
app.queue().launch(server_name="127.0.0.1", server_port=int(sys.argv[1]))
"""


def log(msg: str) -> None:
    print(msg, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CERVIX_MODEL", None)
    env.pop("CERVIX_MODEL_REVISION", None)
    env.update(
        {
            "CERVIX_HF_CACHE": str(cache),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up in {timeout:.0f} s")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (app.py's model process)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def prepare_demo_model(cache: Path) -> None:
    """Train and cache the demo model (and its ONNX trunk) once, in a separate process."""
    code = "from cervix_hf.demo import load_demo_model; load_demo_model()"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=child_env(cache), check=True)
    log(f"demo model ready in {cache} ({time.perf_counter() - t:.1f} s)")


def stats(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):7.1f} ms [{min(ms):.1f}, {max(ms):.1f}]"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=10, help="alternating repetitions (default 10)")
    p.add_argument("--starts", type=int, default=3, help="fresh app starts timed (default 3)")
    p.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "cervix_hf-bench-app",
        help="CERVIX_HF_CACHE of the app (the demo model is trained there once)",
    )
    args = p.parse_args(argv)
    load = os.getloadavg()
    log(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    args.cache.mkdir(parents=True, exist_ok=True)
    prepare_demo_model(args.cache)
    os.environ.update(child_env(args.cache))  # this process reuses the same cached files

    import numpy as np
    from gradio_client import Client, handle_file

    from cervix_hf.demo import demo_model_dir
    from cervix_hf.modeling import CervixClassifier
    from cervix_hf.synthetic import make_cell

    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        image = Path(tmp) / "cell.png"
        make_cell("Koilocytotic", np.random.default_rng(7)).save(image)
        trivial_script = Path(tmp) / "trivial_app.py"
        trivial_script.write_text(TRIVIAL_APP)
        try:
            # the app: time from start to its first prediction (weights and ONNX cached)
            firsts: list[float] = []
            for attempt in range(args.starts):
                port = free_port()
                url = f"http://127.0.0.1:{port}/"
                app_log = open(Path(tmp) / "app.log", "w")  # noqa: SIM115 (closed below)
                t0 = time.perf_counter()
                app = subprocess.Popen(
                    [sys.executable, str(ROOT / "app.py"), "--port", str(port)],
                    env=child_env(args.cache),
                    stdout=app_log,
                    stderr=subprocess.STDOUT,
                )
                procs.append(app)
                try:
                    wait_until_up(url, app)
                except SystemExit:
                    log((Path(tmp) / "app.log").read_text()[-3000:])
                    raise
                t_up = time.perf_counter() - t0
                client = Client(url, verbose=False)
                client.predict(handle_file(str(image)), api_name="/predict")
                firsts.append(time.perf_counter() - t0)
                log(
                    f"app.py start {attempt + 1}/{args.starts}: serving after {t_up:.1f} s, "
                    f"first prediction after {firsts[-1]:.1f} s"
                )
                app_log.close()
                if attempt + 1 < args.starts:
                    stop(app)
                    procs.remove(app)

            tport = free_port()
            turl = f"http://127.0.0.1:{tport}/"
            trivial = subprocess.Popen(
                [sys.executable, str(trivial_script), str(tport)],
                env=child_env(args.cache),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(trivial)
            wait_until_up(turl, trivial)
            tclient = Client(turl, verbose=False)
            tclient.predict(handle_file(str(image)), api_name="/predict")

            model = CervixClassifier.from_pretrained(demo_model_dir())
            backbone = model.backbone
            batch = backbone.preprocess([str(image)])
            backbone.feature_map(batch)  # warm-up
            model.analyze([str(image)])
            log(f"engine: {backbone.engine}, threads {backbone.plan.threads}")

            keys = ("app", "trivial", "bare", "analyze")
            times: dict[str, list[float]] = {k: [] for k in keys}
            for _ in range(args.reps):
                for key in times:
                    time.sleep(0.2)  # let the other process's threads settle
                    t = time.perf_counter()
                    if key == "app":
                        client.predict(handle_file(str(image)), api_name="/predict")
                    elif key == "trivial":
                        tclient.predict(handle_file(str(image)), api_name="/predict")
                    elif key == "bare":
                        backbone.feature_map(batch)
                    else:
                        model.analyze([str(image)])
                    times[key].append(time.perf_counter() - t)
            rss = peak_rss_mib(app.pid)
            rss_children = [peak_rss_mib(c) for c in child_pids(app.pid)]
        finally:
            for proc in procs:
                stop(proc)
    med = {k: statistics.median(v) for k, v in times.items()}
    overhead = med["app"] - med["bare"] - med["trivial"]
    log(f"\n== single image, {args.reps} reps alternating: median [min, max] ==")
    log(f"app /predict via gradio_client        {stats(times['app'])}")
    log(f"trivial Gradio app round trip         {stats(times['trivial'])}")
    log(f"bare backbone forward, batch 1        {stats(times['bare'])}")
    log(f"model.analyze (all outputs), in-proc  {stats(times['analyze'])}")
    log(
        f"our overhead beyond both: {overhead * 1000:.1f} ms (goal <= 50 ms): "
        f"{'met' if overhead <= 0.050 else 'NOT met'}"
    )
    log(
        f"app start to first prediction, {args.starts} starts: median "
        f"{statistics.median(firsts):.1f} s [{min(firsts):.1f}, {max(firsts):.1f}] "
        f"(goal <= 20 s)"
    )
    log(
        f"app peak RSS: web process {rss:.0f} MiB, model process "
        + " + ".join(f"{r:.0f}" for r in rss_children)
        + " MiB"
    )
    load = os.getloadavg()
    log(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
