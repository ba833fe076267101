"""Evaluation plots (PNG, for the model directory and its card), drawn with matplotlib.

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``) and saved with
its Agg renderer. pyplot is never imported: no global backend switch in the importing process
(a notebook keeps its own), no global figure registry to leak in a long-running app, and
thread safety as matplotlib documents for web servers. PNGs are written without the
version stamp, so the same data gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .errors import EvaluationError

#: Plot name -> file name in the model directory (and the card's image links).
PLOT_FILES: dict[str, str] = {
    "confusion_matrix": "confusion_matrix.png",
    "roc": "roc_curve.png",
    "reliability": "reliability.png",
}
DPI = 110
OPERATING_POINT_LABEL = "operating point"


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write a figure as a PNG without metadata that changes between versions."""
    path = Path(path)
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def confusion_matrix_figure(
    cm: dict[str, int],
    labels: Sequence[str] = ("Normal", "Abnormal"),
    threshold: float = 0.5,
    title: str = "Out-of-fold confusion matrix, operating point",
) -> Figure:
    """2x2 confusion matrix (rows true, columns predicted) with counts and row shares.

    Args:
        cm: ``{"tn", "fp", "fn", "tp"}`` counts.
        labels: negative and positive class names.
        threshold: the decision threshold the counts are at (shown in the title).
    """
    counts = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]], dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig = Figure(figsize=(3.8, 3.4), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(2):
        for j in range(2):
            ax.text(
                j,
                i,
                f"{int(counts[i, j])}\n({100 * share[i, j]:.1f}%)",
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.6 else "black",
                fontsize=10,
            )
    ax.set_xticks([0, 1], [f"pred. {labels[0]}", f"pred. {labels[1]}"], fontsize=8)
    ax.set_yticks([0, 1], [f"true {labels[0]}", f"true {labels[1]}"], fontsize=8)
    ax.set_title(f"{title}\nthreshold {threshold:.4f}", fontsize=9)
    return fig


def roc_figure(
    fpr: Sequence[float],
    tpr: Sequence[float],
    auc: float | None,
    operating_point: tuple[float, float] | None = None,
    threshold: float | None = None,
) -> Figure:
    """ROC curve with the chance line and the operating point marked.

    Args:
        fpr, tpr: the curve (false and true positive rates).
        auc: its area, for the legend.
        operating_point: ``(1 - specificity, sensitivity)`` at the chosen threshold.
        threshold: that threshold, for the legend.
    """
    fig = Figure(figsize=(3.8, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="0.6", label="chance")
    auc_text = "n/a" if auc is None else f"{auc:.3f}"
    ax.plot(fpr, tpr, lw=1.6, color="C0", label=f"out-of-fold ROC (AUC {auc_text})")
    if operating_point is not None:
        x, y = operating_point
        t_text = "" if threshold is None else f" t={threshold:.3f}"
        ax.plot(
            [x],
            [y],
            marker="o",
            ms=7,
            ls="none",
            color="C3",
            label=f"{OPERATING_POINT_LABEL}{t_text}\n(sens {y:.3f}, spec {1 - x:.3f})",
        )
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("1 - specificity", fontsize=9)
    ax.set_ylabel("sensitivity (Abnormal recall)", fontsize=9)
    ax.set_title("ROC curve, grouped CV", fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def reliability_figure(bins: Sequence[dict[str, Any]], ece: float | None) -> Figure:
    """Reliability diagram (observed vs predicted per bin) over a histogram of the bins.

    Args:
        bins: ``{"low", "high", "n", "mean_predicted", "fraction_positive"}`` per bin, as
            :func:`cervix_hf.metrics.reliability` returns them.
        ece: expected calibration error, for the title.
    """
    fig = Figure(figsize=(3.8, 4.4), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], ls="--", lw=0.8, color="0.6", label="perfect calibration")
    full = [b for b in bins if b["n"]]
    top.plot(
        [b["mean_predicted"] for b in full],
        [b["fraction_positive"] for b in full],
        marker="o",
        lw=1.4,
        color="C0",
        label="out-of-fold",
    )
    top.set_xlim(0, 1)
    top.set_ylim(-0.02, 1.02)
    top.set_ylabel("observed fraction Abnormal", fontsize=9)
    ece_text = "n/a" if ece is None else f"{ece:.3f}"
    top.set_title(f"Reliability diagram (ECE {ece_text})", fontsize=9)
    top.legend(loc="upper left", fontsize=7)
    top.grid(alpha=0.3)
    widths = [b["high"] - b["low"] for b in bins]
    bottom.bar(
        [b["low"] for b in bins],
        [b["n"] for b in bins],
        width=widths,
        align="edge",
        color="C0",
        alpha=0.6,
        edgecolor="white",
    )
    bottom.set_xlabel("predicted P(Abnormal)", fontsize=9)
    bottom.set_ylabel("images", fontsize=9)
    return fig


def write_plots(
    metrics: dict[str, Any], out_dir: str | Path, labels: Sequence[str] = ("Normal", "Abnormal")
) -> dict[str, Path]:
    """Draw the three plots of ``metrics["cv"]`` into ``out_dir`` (names: :data:`PLOT_FILES`).

    The confusion matrix and the marked ROC point are at the operating point.

    Raises:
        EvaluationError: if the metrics have no ``cv`` section.
    """
    cv = metrics.get("cv")
    if not cv:
        raise EvaluationError("No cross-validation results to plot (run scripts/evaluate.py).")
    out = Path(out_dir)
    names = cv.get("plots") or PLOT_FILES
    op = cv["operating_point"]
    at = op["metrics"]
    written = {}
    fig = confusion_matrix_figure(at["confusion_matrix"], labels, op["threshold"])
    written["confusion_matrix"] = save_figure(fig, out / names["confusion_matrix"])
    point = None
    if at["sensitivity"] is not None and at["specificity"] is not None:
        point = (1.0 - at["specificity"], at["sensitivity"])
    fig = roc_figure(
        cv["roc_curve"]["fpr"],
        cv["roc_curve"]["tpr"],
        cv["pooled"]["roc_auc"],
        point,
        op["threshold"],
    )
    written["roc"] = save_figure(fig, out / names["roc"])
    fig = reliability_figure(cv["reliability"]["bins"], cv["reliability"]["ece"])
    written["reliability"] = save_figure(fig, out / names["reliability"])
    return written
