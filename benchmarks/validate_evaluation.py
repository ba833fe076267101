"""Does the card's headline interval contain the published head's true sensitivity?

    .venv/bin/python benchmarks/validate_evaluation.py             # 100 runs per size
    .venv/bin/python benchmarks/validate_evaluation.py --runs 20   # a quick look

Statistics, not timing. Each run draws a dataset with a known truth -- Gaussian
class-conditional features with cluster effects: five cell types (two Abnormal under the
clinical grouping), cluster images of 1 + Poisson(3.2) cells (SIPaKMeD: 4,049 cells in 966
cluster images), cell = type mean + cluster effect + noise, in 8 dimensions so head fits are
fast -- and then does exactly what ``scripts/train.py --cv 5`` does: a grouped 80/20 split
stratified by cell type, the head fitted on the training split (C by grouped CV), and
:func:`cervix_hf.evaluation.evaluate_features` (operating point on the training rows'
out-of-fold predictions, the published head on the held-out split, nested CV).

The published head is affine in the features, so its true sensitivity at its threshold is
exact: the share of abnormal cells of a fresh cluster image it flags, an average of normal
CDFs over the abnormal types (checked against 20,000 fresh cluster images on the first run
of each size). For each size the table shows, over the runs, how often each 95% interval
contains that truth (coverage), its mean width, and the mean error (bias) and mean absolute
error of its point estimate:

* **held-out, card** -- the card's headline for the published head: its held-out
  sensitivity at the threshold ``predict`` uses, Clopper-Pearson on the effective sample size;
* held-out, percentile bootstrap -- the same estimate with a percentile cluster bootstrap;
* **nested, card** -- the nested-CV estimate as the card prints it (the threshold re-chosen
  in every resample), read as an interval for the published head;
* nested, percentile -- the same resamples, percentile interval;
* before issue 9 -- what the card printed before: the threshold chosen on pooled out-of-fold
  predictions over all data, its sensitivity there, percentile bootstrap at that fixed
  threshold; truth: the published head at that threshold.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cervix_hf.evaluation import (
    DataInfo,
    EvalData,
    EvalOptions,
    Published,
    choose_threshold,
    evaluate_features,
)
from cervix_hf.evaluation.bootstrap import draw_counts, unit_codes
from cervix_hf.evaluation.intervals import percentile
from cervix_hf.evaluation.scoring import CellTypes, Scoring, nested_replicates
from cervix_hf.head import fit_head
from cervix_hf.labels import CELL_TYPES, GROUPINGS
from cervix_hf.split import train_test_split

DIM = 8
CLUSTER_SD = 0.6  # cluster effect, per dimension (cell noise: 1)
SHIFT = 1.3  # abnormal type means, shifted along the diagonal
MEAN_CELLS = 4.2
SIZES = (40, 100, 300, 966)
TYPE_LABELS = tuple(GROUPINGS["clinical"][t] for t in CELL_TYPES)
POSITIVE = tuple(label == "Abnormal" for label in TYPE_LABELS)


@dataclass(frozen=True)
class World:
    """The fixed truth: one mean per cell type."""

    means: np.ndarray  # (5, DIM)


def make_world(seed: int = 1234) -> World:
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 0.6, size=(5, DIM))
    means[np.array(POSITIVE)] += SHIFT  # abnormal types shifted along the diagonal
    return World(means)


def draw(world: World, n_clusters: int, rng: np.random.Generator):
    """Cells of ``n_clusters`` fresh cluster images: features, 0/1 labels, groups, types."""
    types_g = rng.integers(0, 5, size=n_clusters)
    sizes = 1 + rng.poisson(MEAN_CELLS - 1, size=n_clusters)
    g = np.repeat(np.arange(n_clusters), sizes)
    t = types_g[g]
    x = (
        world.means[t]
        + CLUSTER_SD * rng.normal(size=(n_clusters, DIM))[g]
        + rng.normal(size=(len(g), DIM))
    )
    return x, np.array(POSITIVE)[t].astype(int), g, t


def affine(head) -> tuple[np.ndarray, float]:
    """``w, b`` with the head's decision function ``w @ x + b`` (scaler folded in)."""
    scaler, lr = head[0], head[-1]
    w = lr.coef_[0] / scaler.scale_
    return w, float(lr.intercept_[0] - w @ scaler.mean_)


def true_sensitivity(world: World, head, threshold: float) -> float:
    """Share of abnormal cells of fresh cluster images with P(Abnormal) >= threshold."""
    w, b = affine(head)
    cut = np.log(threshold) - np.log1p(-threshold)
    sd = np.linalg.norm(w) * np.sqrt(CLUSTER_SD**2 + 1.0)
    rates = [stats.norm.sf((cut - b - w @ world.means[i]) / sd) for i in range(5) if POSITIVE[i]]
    return float(np.mean(rates))  # types equally likely, cluster size independent of type


def monte_carlo_sensitivity(world: World, head, threshold: float, rng) -> float:
    x, y, _, _ = draw(world, 20000, rng)
    p = head.predict_proba(x[y == 1])[:, 1]
    return float((p >= threshold).mean())


def run_once(world: World, n_clusters: int, seed: int, resamples: int, check: bool) -> dict:
    rng = np.random.default_rng(seed)
    x, y, g, t = draw(world, n_clusters, rng)
    groups = np.array([f"c{i}" for i in g])
    split = train_test_split(y, groups, 0.2, seed, strata=t)
    tr, te = split.train, split.test
    head, params = fit_head(x[tr], y[tr], groups[tr], seed=seed)
    opts = EvalOptions(folds=5, seed=seed, n_resamples=resamples)
    types = CellTypes(t, CELL_TYPES, TYPE_LABELS, POSITIVE)
    result = evaluate_features(
        EvalData(x, y, groups, types),
        Published(head, 1, float(params["C"]), None, tr, te),
        opts,
        DataInfo("simulated"),
    )
    report = result.report
    threshold = report.operating_point.threshold
    truth = true_sensitivity(world, head, threshold)
    out = {"truth": truth}
    if check:
        out["mc"] = monte_carlo_sensitivity(world, head, threshold, rng)
    held = report.held_out.performance.at_threshold.sensitivity
    out["held-out, card"] = (held.value, held.low, held.high)
    # the same held-out estimate with a percentile cluster bootstrap
    units, n_units, _ = unit_codes(groups[te], len(te))
    pos = y[te] == 1
    hit = (result.held_out_scores >= threshold) & pos
    x_u = np.bincount(units, weights=hit, minlength=n_units)
    n_u = np.bincount(units, weights=pos, minlength=n_units)
    reps = np.concatenate([(c @ x_u) / (c @ n_u) for c in draw_counts(n_units, resamples, seed)])
    out["held-out, percentile bootstrap"] = (held.value, *(percentile(reps) or (None, None)))
    nested = report.nested.performance.at_threshold.sensitivity
    out["nested, card"] = (nested.value, nested.low, nested.high)
    run = result.nested[0]
    all_units, all_n, _ = unit_codes(groups, len(y))
    reps = nested_replicates(
        y,
        run.scores,
        all_units,
        all_n,
        [f.threshold_data for f in run.folds],
        opts.target_sensitivity,
        Scoring(n_resamples=resamples, seed=seed),
    )["sensitivity"]
    out["nested, percentile"] = (nested.value, *(percentile(reps) or (None, None)))
    # before: threshold on the pooled out-of-fold scores of all data, scored on them
    old_t = choose_threshold(y, run.scores, opts.target_sensitivity)
    hit = (run.scores >= old_t) & (y == 1)
    x_u = np.bincount(all_units, weights=hit, minlength=all_n)
    n_u = np.bincount(all_units, weights=y == 1, minlength=all_n)
    reps = np.concatenate([(c @ x_u) / (c @ n_u) for c in draw_counts(all_n, resamples, seed)])
    old = float(x_u.sum() / n_u.sum())
    out["before issue 9"] = (old, *(percentile(reps) or (None, None)))
    out["truth_old"] = true_sensitivity(world, head, old_t)
    return out


def _worker_init() -> None:
    """One BLAS thread per process: the fits are tiny, and threads only fight over 2 cores."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore", RuntimeWarning)


def _run(job: tuple[int, int, int, bool]) -> dict:
    size, seed, resamples, check = job
    return run_once(make_world(), size, seed, resamples, check)


ROWS = (
    "held-out, card",
    "held-out, percentile bootstrap",
    "nested, card",
    "nested, percentile",
    "before issue 9",
)


def summarise(results: list[dict]) -> dict[str, dict[str, float]]:
    table = {}
    for name in ROWS:
        key = "truth_old" if name == "before issue 9" else "truth"
        rows = [(r[name], r[key]) for r in results if r[name][0] is not None]
        est = np.array([v[0] for v, _ in rows])
        truth = np.array([tr for _, tr in rows])
        low = np.array([v[1] for v, _ in rows], dtype=float)
        high = np.array([v[2] for v, _ in rows], dtype=float)
        table[name] = {
            "coverage": float(np.mean((low <= truth) & (truth <= high))),
            "width": float(np.mean(high - low)),
            "bias": float(np.mean(est - truth)),
            "mae": float(np.mean(np.abs(est - truth))),
            "n": len(rows),
        }
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=100, help="datasets per size (default: 100)")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="cluster images")
    p.add_argument(
        "--resamples", type=int, default=500, help="bootstrap resamples per run (default: 500)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: all CPUs)"
    )
    args = p.parse_args(argv)
    t_all = time.perf_counter()
    print(
        f"target sensitivity 0.99, 5 folds, {args.runs} runs per size, {args.resamples} "
        f"bootstrap resamples, cells per cluster image 1 + Poisson({MEAN_CELLS - 1:.1f}), "
        f"{args.jobs} processes",
        flush=True,
    )
    pool = ProcessPoolExecutor(args.jobs, initializer=_worker_init)
    lines = [
        "| cluster images (cells) | interval | coverage of 95% | mean width | mean error "
        "| mean abs. error |",
        "|---|---|---|---|---|---|",
    ]
    for size in args.sizes:
        t0 = time.perf_counter()
        jobs = [
            (size, args.seed + 1000 * size + i, args.resamples, i == 0) for i in range(args.runs)
        ]
        results = list(pool.map(_run, jobs))
        truth = np.array([r["truth"] for r in results])
        first = results[0]
        print(
            f"{size} cluster images: {time.perf_counter() - t0:.0f} s; published head's true "
            f"sensitivity mean {truth.mean():.3f}, min {truth.min():.3f}, below 0.98 in "
            f"{100 * np.mean(truth < 0.98):.0f}% of runs; exact vs 20,000 fresh cluster "
            f"images (run 1): {first['truth']:.4f} vs {first['mc']:.4f}",
            flush=True,
        )
        cells = round(size * MEAN_CELLS)
        for name, row in summarise(results).items():
            lines.append(
                f"| {size} (~{cells}) | {name} | {row['coverage']:.2f} | {row['width']:.3f} "
                f"| {row['bias']:+.4f} | {row['mae']:.4f} |"
            )
    pool.shutdown()
    print("\n".join(lines))
    print(f"total {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
