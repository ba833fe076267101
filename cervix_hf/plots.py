"""Evaluation plots (PNG, for the model directory and its card), drawn with matplotlib.

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``) and saved with
its Agg renderer. pyplot is never imported: no global backend switch in the importing process
(a notebook keeps its own), no global figure registry to leak in a long-running app, and
thread safety as matplotlib documents for web servers. PNGs are written without the
version stamp, so the same data gives the same bytes.

:func:`write_plots` draws from the typed
:class:`~cervix_hf.evaluation.report.EvaluationReport`: the published head on the held-out
split where there is one (it is what ``predict`` runs), the nested-CV predictions beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .errors import EvaluationError
from .evaluation.report import (
    Confusion,
    DecisionCurve,
    EvaluationReport,
    Performance,
    ReliabilityBin,
)
from .evaluation.serialise import report_from_metrics

#: Plot name -> file name in the model directory (and the card's image links).
PLOT_FILES: dict[str, str] = {
    "confusion_matrix": "confusion_matrix.png",
    "roc": "roc_curve.png",
    "reliability": "reliability.png",
    "decision_curve": "decision_curve.png",
}
DPI = 110
OPERATING_POINT_LABEL = "operating point"


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write a figure as a PNG without metadata that changes between versions."""
    path = Path(path)
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def confusion_matrix_figure(
    cm: Confusion,
    labels: Sequence[str] = ("Normal", "Abnormal"),
    threshold: float | None = 0.5,
    title: str = "Held-out split, published head",
) -> Figure:
    """2x2 confusion matrix (rows true, columns predicted) with counts and row shares.

    Args:
        cm: counts at the threshold.
        labels: negative and positive class names.
        threshold: the decision threshold the counts are at (shown in the title).
    """
    counts = np.array([[cm.tn, cm.fp], [cm.fn, cm.tp]], dtype=float)
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
    t_text = "a threshold per fold" if threshold is None else f"threshold {threshold:.4f}"
    ax.set_title(f"{title}\n{t_text}", fontsize=9)
    return fig


def roc_figure(
    fpr: Sequence[float],
    tpr: Sequence[float],
    auc: float | None,
    operating_point: tuple[float, float] | None = None,
    threshold: float | None = None,
    label: str = "ROC",
    title: str = "ROC curve",
    extra: Sequence[tuple[Sequence[float], Sequence[float], str]] = (),
) -> Figure:
    """ROC curve with the chance line and the operating point marked.

    Args:
        fpr, tpr: the curve (false and true positive rates). auc: its area, for the legend.
        operating_point: ``(1 - specificity, sensitivity)`` at the threshold ``predict`` uses.
        threshold: that threshold, for the legend.
        label: the curve's legend. extra: further ``(fpr, tpr, label)`` curves.
    """
    fig = Figure(figsize=(3.8, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="0.6", label="chance")
    auc_text = "n/a" if auc is None else f"{auc:.3f}"
    ax.plot(fpr, tpr, lw=1.6, color="C0", label=f"{label} (AUC {auc_text})")
    for k, (x, y, name) in enumerate(extra):
        ax.plot(x, y, lw=1.0, ls=":", color=f"C{k + 1}", label=name)
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
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def reliability_figure(
    bins: Sequence[ReliabilityBin], ece: float | None, label: str = "predictions"
) -> Figure:
    """Reliability diagram (observed vs predicted per bin) over a histogram of the bins."""
    fig = Figure(figsize=(3.8, 4.4), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], ls="--", lw=0.8, color="0.6", label="perfect calibration")
    full = [b for b in bins if b.n]
    top.plot(
        [b.mean_predicted for b in full],
        [b.fraction_positive for b in full],
        marker="o",
        lw=1.4,
        color="C0",
        label=label,
    )
    top.set_xlim(0, 1)
    top.set_ylim(-0.02, 1.02)
    top.set_ylabel("observed fraction Abnormal", fontsize=9)
    ece_text = "n/a" if ece is None else f"{ece:.3f}"
    top.set_title(f"Reliability diagram (ECE {ece_text})", fontsize=9)
    top.legend(loc="upper left", fontsize=7)
    top.grid(alpha=0.3)
    bottom.bar(
        [b.low for b in bins],
        [b.n for b in bins],
        width=[b.high - b.low for b in bins],
        align="edge",
        color="C0",
        alpha=0.6,
        edgecolor="white",
    )
    bottom.set_xlabel("predicted P(Abnormal)", fontsize=9)
    bottom.set_ylabel("images", fontsize=9)
    return fig


def decision_curve_figure(
    curves: Sequence[DecisionCurve], threshold: float | None, title: str
) -> Figure:
    """Net benefit against threshold probability: the model, treat all and treat none."""
    fig = Figure(figsize=(4.6, 3.6), layout="constrained")
    ax = fig.add_subplot()
    top = 0.0
    for k, c in enumerate(curves):
        ls = "-" if k == 0 else "--"
        ax.plot(c.thresholds, c.treat_all, lw=1.0, ls=ls, color="C1", label=f"all, {c.label}")
        ax.plot(c.thresholds, c.model, lw=1.6, ls=ls, color="C0", label=f"model, {c.label}")
        top = max(top, c.prevalence)
    ax.axhline(0.0, lw=1.0, color="0.3", label="none")
    if threshold is not None:
        ax.axvline(threshold, lw=0.8, ls=":", color="C3", label=f"threshold {threshold:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.05 * max(top, 0.05), 1.1 * max(top, 0.05))
    ax.set_xlabel("threshold probability", fontsize=9)
    ax.set_ylabel("net benefit", fontsize=9)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="best", fontsize=6)
    ax.grid(alpha=0.3)
    return fig


def _headline(report: EvaluationReport) -> tuple[Performance, str, float | None]:
    """The predictions the plots describe first: the published head when held out."""
    if report.held_out is not None:
        return (
            report.held_out.performance,
            "held-out split, published head",
            (report.operating_point.threshold),
        )
    return report.nested.performance, "nested CV (no held-out split)", None


def write_plots(
    metrics: dict[str, Any] | EvaluationReport,
    out_dir: str | Path,
    labels: Sequence[str] = ("Normal", "Abnormal"),
) -> dict[str, Path]:
    """Draw the evaluation plots into ``out_dir`` (names: the report's ``plots``).

    Accepts a model's metrics (reads the report under ``cv``) or the report itself. A metrics
    dict with an evaluation from an older cervix_hf draws nothing.

    Raises:
        EvaluationError: if there is no evaluation report.
    """
    report = metrics if isinstance(metrics, EvaluationReport) else report_from_metrics(metrics)
    if report is None:
        if isinstance(metrics, dict) and metrics.get("cv"):
            return {}  # an older layout: the card asks to re-run the evaluation
        raise EvaluationError("No cross-validation results to plot (run scripts/evaluate.py).")
    out = Path(out_dir)
    names = report.plots or PLOT_FILES
    perf, where, threshold = _headline(report)
    nested = report.nested.performance
    at = perf.at_threshold
    written = {}
    fig = confusion_matrix_figure(at.confusion, labels, threshold, title=where.capitalize())
    written["confusion_matrix"] = save_figure(fig, out / names["confusion_matrix"])
    point = None
    if at.sensitivity.value is not None and at.specificity.value is not None:
        point = (1.0 - at.specificity.value, at.sensitivity.value)
    extra = []
    if perf is not nested:
        extra.append((nested.curves.roc_fpr, nested.curves.roc_tpr, "nested CV"))
    fig = roc_figure(
        perf.curves.roc_fpr,
        perf.curves.roc_tpr,
        perf.scores.roc_auc.value,
        point,
        threshold,
        label=where,
        title="ROC curve",
        extra=extra,
    )
    written["roc"] = save_figure(fig, out / names["roc"])
    fig = reliability_figure(nested.curves.reliability, nested.scores.ece.value, "nested CV")
    written["reliability"] = save_figure(fig, out / names["reliability"])
    if "decision_curve" in names:
        fig = decision_curve_figure(
            perf.curves.decision, report.operating_point.threshold, f"Decision curve, {where}"
        )
        written["decision_curve"] = save_figure(fig, out / names["decision_curve"])
    return written
