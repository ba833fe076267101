"""How figures are written, in the card and on the command line (one place for both)."""

from __future__ import annotations

from .report import INTERVAL_METHODS, Estimate, EvaluationReport, ExternalReport, Spread


def fmt(value: float | None, digits: int = 3) -> str:
    """A number with fixed decimals, ``n/a`` when missing."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def fmt_estimate(e: Estimate | None, digits: int = 3) -> str:
    """``value (low-high)``; a zero-width interval is never printed bare: its note and
    one-sided bound follow; a missing interval says why."""
    if e is None or e.value is None:
        return "n/a" + (f" ({e.note})" if e is not None and e.note else "")
    text = f"{e.value:.{digits}f}"
    if e.low is None or e.high is None:
        return text + (f" (no interval: {e.note})" if e.note else "")
    if e.zero_width:
        return f"{text} (zero-width interval: {e.note})"
    sep = "-" if e.low >= 0 else " to "
    return f"{text} ({e.low:.{digits}f}{sep}{e.high:.{digits}f})"


def fmt_spread(s: Spread | None, digits: int = 3) -> str:
    """``mean ± sd [min, max]``."""
    if s is None or not s.n:
        return "n/a"
    d = digits
    return f"{s.mean:.{d}f} ± {s.sd:.{d}f} [{s.min:.{d}f}, {s.max:.{d}f}] (n={s.n})"


def method_text(key: str | None) -> str:
    """What an interval method is, in words."""
    return INTERVAL_METHODS.get(key or "", key or "none")


def summary_lines(report: EvaluationReport) -> list[str]:
    """A few lines for a CLI: which number is which, at the threshold ``predict`` uses."""
    op = report.operating_point
    lines = [
        f"operating point: threshold {op.threshold:.4f} (sensitivity >= "
        f"{op.target_sensitivity} on out-of-fold predictions of the {op.n} training images)"
    ]
    if report.held_out is not None:
        at = report.held_out.performance.at_threshold
        sc = report.held_out.performance.scores
        lines.append(
            f"published head, held-out split ({at.n} images, {at.n_groups} cluster images) at "
            f"{op.threshold:.4f}: sensitivity {fmt_estimate(at.sensitivity)}, specificity "
            f"{fmt_estimate(at.specificity)}, ROC AUC {fmt_estimate(sc.roc_auc)}"
        )
    nested = report.nested
    at = nested.performance.at_threshold
    lines.append(
        f"nested {nested.n_splits}-fold grouped CV (the recipe, threshold re-chosen in each "
        f"fold): sensitivity {fmt_estimate(at.sensitivity)}, specificity "
        f"{fmt_estimate(at.specificity)}, ROC AUC "
        f"{fmt_estimate(nested.performance.scores.roc_auc)}"
    )
    if nested.repeat_spread is not None:
        lines.append(
            f"over {nested.repeats} repeats: sensitivity "
            f"{fmt_spread(nested.repeat_spread.sensitivity)}, specificity "
            f"{fmt_spread(nested.repeat_spread.specificity)}"
        )
    seed = report.seed_protocol
    if seed is not None:
        lines.append(
            f"seed protocol at 0.5: one per-cell split over {seed.split_seeds} seeds, accuracy "
            f"{fmt_spread(seed.split_accuracy)}; per-cell minus grouped {seed.n_splits}-fold "
            f"accuracy {fmt_estimate(seed.inflation)}"
        )
    for where in report.few_clusters():
        lines.append(
            f"warning: {where}: fewer than 50 cluster images, bootstrap intervals under-cover"
        )
    return lines


def external_lines(report: ExternalReport) -> list[str]:
    """A few lines for a CLI about an external validation."""
    at = report.performance.at_threshold
    sc = report.performance.scores
    lines = [
        f"external validation on {report.dataset} ({at.n} images, {at.n_groups} cluster "
        f"images), frozen model at its threshold {report.threshold:.4f}: sensitivity "
        f"{fmt_estimate(at.sensitivity)}, specificity {fmt_estimate(at.specificity)}, ROC AUC "
        f"{fmt_estimate(sc.roc_auc)}"
    ]
    if report.unusual_rate is not None:
        lines.append(f"flagged unusual by the model's detector: {100 * report.unusual_rate:.1f}%")
    return lines
