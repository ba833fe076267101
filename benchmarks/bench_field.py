"""Whole-field analysis speed: seconds per field against the number of cells, locator vs
classification share, and the field against classifying its cells' crops alone.

    .venv/bin/python benchmarks/bench_field.py [--model DIR] [--reps 3] [--cells 5 10 20 40]

For each cell count N, a generated 1000x800 field with N cells (SYNTHETIC, touching and
overlapping, as in cervix_hf.synthetic.fields) is analysed with ``analyze_field`` (locate,
cut crops, ONE batched ``model.analyze`` call), alternating rep by rep with
``model.analyze`` on the crops of the field's annotated cells alone (cut by the same
convention, one batch). Goal: with 20 cells, field / crops <= 1.5. Then the locator alone on
a 3264x2448 field (8 Mpx) in a fresh process (seconds and peak RSS), the memory bound of the largest
field it accepts by default.

Without --model, the offline demo model (random-init ResNet152 on synthetic cells; trained
and cached on first use, minutes) is used. Run it on a quiet machine: on shared cores the
figures swing.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# peak RSS from /proc (VmHWM): getrusage's ru_maxrss survives fork + exec on Linux
MEMORY_PROBE = """
import re, sys, time
from cervix_hf.fields import ClassicalLocator
from cervix_hf.images import load_image
def hwm():
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\\s+(\\d+)", f.read()).group(1)) / 1024
image = load_image(sys.argv[1])
before = hwm()
t0 = time.perf_counter()
cells = ClassicalLocator().locate(image)
dt = time.perf_counter() - t0
print(f"{dt:.2f} {before:.0f} {hwm():.0f} {len(cells)}")
"""


def log(msg: str) -> None:
    print(msg, flush=True)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}]"


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints the tables, returns 0."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", help="model directory (default: the cached offline demo model)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--cells", type=int, nargs="+", default=[5, 10, 20, 40])
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the 8 Mpx run")
    args = p.parse_args(argv)

    import numpy as np

    from cervix_hf import CervixClassifier
    from cervix_hf.fields import ClassicalLocator, analyze_field, crop_box
    from cervix_hf.fields.geometry import outline_box
    from cervix_hf.synthetic import make_field

    if args.model:
        model = CervixClassifier.from_pretrained(args.model)
    else:
        from cervix_hf.demo import load_demo_model

        model = load_demo_model()
    locator = ClassicalLocator()
    log(
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"model {model.config.backbone} (pretrained: {model.config.pretrained}), "
        f"{args.reps} reps, alternating"
    )
    log("")
    log(
        "| cells in field | found | field s | locator s | classify s | locator share "
        "| crops alone s | field / crops |"
    )
    log("|---|---|---|---|---|---|---|---|")
    ratios_20: list[float] = []
    for n in args.cells:
        field = make_field(
            ["Superficial-Intermediate", "Parabasal", "Koilocytotic", "Dyskeratotic"],
            np.random.default_rng([2024, n]),
            (1000, 800),
            n_cells=n,
        )
        crops = [
            field.image.crop(
                crop_box(outline_box(c, field.image.size), field.image.size, locator.params)
            )
            for c in field.cytoplasm
        ]
        analyze_field(model, field.image, locator)  # warm-up (engine, caches)
        model.analyze(crops)
        total, loc, cls, alone, ratio = [], [], [], [], []
        found = 0
        for _ in range(args.reps):
            t0 = time.perf_counter()
            result = analyze_field(model, field.image, locator)
            t1 = time.perf_counter()
            model.analyze(crops)
            t2 = time.perf_counter()
            total.append(t1 - t0)
            loc.append(result.locator_seconds)
            cls.append(result.classify_seconds)
            alone.append(t2 - t1)
            ratio.append((t1 - t0) / (t2 - t1))
            found = len(result.cells)
        if n == 20:
            ratios_20 = ratio
        share = statistics.median(loc) / statistics.median(total)
        log(
            f"| {len(field.cytoplasm)} | {found} | {spread(total)} | {spread(loc)} | {spread(cls)} "
            f"| {share:.0%} | {spread(alone)} | {spread(ratio)} |"
        )
    if ratios_20:
        r = statistics.median(ratios_20)
        log("")
        verdict = "met" if r <= 1.5 else "NOT met"
        reps = ", ".join(f"{x:.2f}" for x in ratios_20)
        log(
            f"20-cell field / its 20 crops alone: {r:.2f} (goal <= 1.5: {verdict}); "
            f"rep by rep {reps}"
        )
    if args.memory:
        import tempfile

        size = (3264, 2448)  # 7.99 Mpx: the largest the locator takes by default (8 Mpx)
        big = make_field("Superficial-Intermediate", np.random.default_rng(0), size, 100)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "field.png"
            big.image.save(path)
            out = subprocess.run(
                [sys.executable, "-c", MEMORY_PROBE, str(path)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            ).stdout.split()
        dt, before, peak, found = out
        log("")
        log(
            f"Locator alone on a 3264x2448 field (8 Mpx, {len(big.cytoplasm)} cells) in a fresh "
            f"process: {dt} s, {found} cells found, peak RSS {peak} MiB ({before} MiB with the "
            "field loaded, before locating)."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
