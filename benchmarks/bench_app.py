"""The app's start time, latency and memory against a trivial Gradio app, in one run.

    .venv/bin/python benchmarks/bench_app.py            # ~10 minutes once the demo model exists
    .venv/bin/python benchmarks/bench_app.py --quick    # ~3 minutes, no 200-image batch

Starts ``app.py`` (the offline demo model: random-init ResNet152, synthetic cells; one process,
ONNX Runtime, no torch) and a trivial Gradio app (a ``gr.File`` in, a ``gr.JSON`` out) as
subprocesses on 127.0.0.1 and measures, alternating:

  * start to first answer: each app started ``--starts`` times, one after the other, timed
    from the process start to the first answer through ``gradio_client`` (goal: the app at
    most 1.5x the trivial app's);
  * one image through ``gradio_client``: the app's ``/predict``, the trivial app's round trip
    with the same upload, and a bare ONNX forward at batch 1 in this process (same file,
    same threads). Our overhead = app - bare - trivial (goal: at most 30 ms);
  * peak RSS of the whole app (every process it has): idle after its first answer (goal
    800 MB), and after a ``/predict_batch`` of 200 generated 40-Mpx PNG images sent as one
    zip (goal 1.5 GB; skipped with ``--quick``).

The first run trains and caches the demo model (a few minutes).
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
    return {"ok": True}

with gr.Blocks() as app:
    upload = gr.File(type="filepath")
    out = gr.JSON()
    gr.Button().click(echo, upload, out, api_name="predict")
app.queue().launch(server_name="127.0.0.1", server_port=int(sys.argv[1]))
"""
BATCH_IMAGES = 200
BIG_SIZE = (6600, 6000)  # 39.6 Mpx, under the 40-Mpx limit


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


def rss_mib(pid: int, key: str = "VmHWM:") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of one process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return float("nan")


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for child in children:
        out += tree(int(child))
    return out


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def prepare_demo_model(cache: Path) -> None:
    """Train and cache the demo model once (in a separate process)."""
    code = "from cervix_hf.demo import load_demo_model; load_demo_model()"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=child_env(cache), check=True)
    log(f"demo model ready in {cache} ({time.perf_counter() - t:.1f} s)")


def stats(values: list[float], unit: str = "ms") -> str:
    scale = 1000 if unit == "ms" else 1
    v = [x * scale for x in values]
    return f"{statistics.median(v):7.1f} {unit} [{min(v):.1f}, {max(v):.1f}]"


def start(cmd: list[str], port: int, image: Path, env: dict, log_path: Path):
    """Start a server, wait for its first answer; returns (process, client, seconds)."""
    from gradio_client import Client, handle_file

    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_up(url, proc)
    except SystemExit:
        log(log_path.read_text()[-3000:])
        raise
    client = Client(url, verbose=False)
    client.predict(handle_file(str(image)), api_name="/predict")
    return proc, client, time.perf_counter() - t0


def big_zip(folder: Path) -> Path:
    """A zip of BATCH_IMAGES copies of one generated 39.6-Mpx PNG (flat: small files)."""
    import zipfile

    from PIL import Image, ImageDraw

    img = Image.new("RGB", BIG_SIZE, (225, 215, 220))
    draw = ImageDraw.Draw(img)
    w, h = BIG_SIZE
    draw.ellipse((w // 3, h // 3, 2 * w // 3, 2 * h // 3), fill=(200, 120, 170))
    png = folder / "big.png"
    img.save(png, compress_level=9)
    path = folder / "big-batch.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(BATCH_IMAGES):
            zf.write(png, f"big_{i:03d}.png")
    log(f"batch: {BATCH_IMAGES} x {w}x{h} PNG ({png.stat().st_size / 1e3:.0f} kB each)")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=12, help="alternating repetitions (default 12)")
    p.add_argument("--starts", type=int, default=3, help="fresh starts of each app (default 3)")
    p.add_argument("--quick", action="store_true", help="no 200-image batch")
    p.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "cervix_hf-bench-app",
        help="CERVIX_HF_CACHE of the app (the demo model is trained there once)",
    )
    args = p.parse_args(argv)
    load = os.getloadavg()
    log(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or ''} "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    args.cache.mkdir(parents=True, exist_ok=True)
    prepare_demo_model(args.cache)
    os.environ.update(child_env(args.cache))  # this process reuses the same cached files

    import numpy as np
    from gradio_client import handle_file

    from cervix_hf.demo import demo_model_dir
    from cervix_hf.modeling import CervixClassifier
    from cervix_hf.predictor.preprocess import stack
    from cervix_hf.synthetic import make_cell

    env = child_env(args.cache)
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        image = Path(tmp) / "cell.png"
        make_cell("Koilocytotic", np.random.default_rng(7)).save(image)
        trivial_script = Path(tmp) / "trivial_app.py"
        trivial_script.write_text(TRIVIAL_APP)
        starts: dict[str, list[float]] = {"app": [], "trivial": []}
        try:
            for attempt in range(args.starts):
                for key in ("app", "trivial"):
                    port = free_port()
                    script = ROOT / "app.py" if key == "app" else trivial_script
                    cmd = [sys.executable, str(script)]
                    cmd += ["--port", str(port)] if key == "app" else [str(port)]
                    proc, client, seconds = start(cmd, port, image, env, Path(tmp) / f"{key}.log")
                    starts[key].append(seconds)
                    log(f"start {attempt + 1}/{args.starts}: {key} answered after {seconds:.1f} s")
                    if attempt + 1 < args.starts:
                        stop(proc)
                    else:
                        procs.append(proc)
                        if key == "app":
                            app, app_client = proc, client
                        else:
                            trivial_client = client
            idle = sum(rss_mib(pid, "VmRSS:") for pid in tree(app.pid))
            idle_peak = sum(rss_mib(pid) for pid in tree(app.pid))

            model = CervixClassifier.from_pretrained(demo_model_dir())
            batch = stack([model.prepare(str(image))])
            model.backbone.feature_map(batch)  # warm-up
            times: dict[str, list[float]] = {k: [] for k in ("app", "trivial", "bare")}
            for _ in range(args.reps):
                for key in times:
                    time.sleep(0.2)  # let the other process's threads settle
                    t = time.perf_counter()
                    if key == "app":
                        app_client.predict(handle_file(str(image)), api_name="/predict")
                    elif key == "trivial":
                        trivial_client.predict(handle_file(str(image)), api_name="/predict")
                    else:
                        model.backbone.feature_map(batch)
                    times[key].append(time.perf_counter() - t)
            batch_peak = batch_seconds = None
            if not args.quick:
                zpath = big_zip(Path(tmp))
                t = time.perf_counter()
                table, _ = app_client.predict(handle_file(str(zpath)), api_name="/predict_batch")
                batch_seconds = time.perf_counter() - t
                errors = [row for row in table["data"] if row[4]]
                if errors:
                    raise SystemExit(f"batch rows with errors: {errors[:3]}")
                batch_peak = sum(rss_mib(pid) for pid in tree(app.pid))
        finally:
            for proc in procs:
                stop(proc)
    med = {k: statistics.median(v) for k, v in times.items()}
    overhead = med["app"] - med["bare"] - med["trivial"]
    ratio = statistics.median(starts["app"]) / statistics.median(starts["trivial"])
    log(f"\n== start to first answer, {args.starts} fresh starts each: median [min, max] ==")
    log(f"app.py (demo model cached)            {stats(starts['app'], 's')}")
    log(f"trivial Gradio app (File -> JSON)     {stats(starts['trivial'], 's')}")
    log(f"ratio {ratio:.2f} (goal <= 1.5): {'met' if ratio <= 1.5 else 'NOT met'}")
    log(f"\n== one image, {args.reps} reps alternating: median [min, max] ==")
    log(f"app /predict via gradio_client        {stats(times['app'])}")
    log(f"trivial Gradio app round trip         {stats(times['trivial'])}")
    log(f"bare ONNX forward, batch 1            {stats(times['bare'])}")
    log(
        f"our overhead beyond both: {overhead * 1000:.1f} ms (goal <= 30 ms): "
        f"{'met' if overhead <= 0.030 else 'NOT met'}"
    )
    log("\n== memory of the whole app (all its processes) ==")
    log(f"idle after the first answer: {idle:.0f} MiB (peak so far {idle_peak:.0f}; goal 800)")
    if batch_peak is not None:
        log(
            f"peak during a {BATCH_IMAGES}-image batch of {BIG_SIZE[0]}x{BIG_SIZE[1]} PNGs: "
            f"{batch_peak:.0f} MiB (goal 1536), batch took {batch_seconds:.0f} s"
        )
    load = os.getloadavg()
    log(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
