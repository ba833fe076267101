"""Held-out metrics for the binary task (Abnormal is the positive class)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)


def binary_metrics(
    y_true: np.ndarray, p_positive: np.ndarray, threshold: float = 0.5
) -> dict[str, Any]:
    """Accuracy, precision, recall/sensitivity, specificity, F1, ROC AUC and confusion matrix.

    Args:
        y_true: 0/1 labels (1 = positive, Abnormal).
        p_positive: predicted probability of the positive class.
        threshold: decision threshold on ``p_positive``.

    Returns:
        A JSON-ready dict; ``roc_auc`` is None when only one class is present.
    """
    y_true = np.asarray(y_true).astype(int)
    p_positive = np.asarray(p_positive, dtype=float)
    y_pred = (p_positive >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    both = len(np.unique(y_true)) == 2
    return {
        "n": len(y_true),
        "n_positive": int(y_true.sum()),
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "sensitivity": float(tp / (tp + fn)) if tp + fn else None,
        "specificity": float(tn / (tn + fp)) if tn + fp else None,
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(y_true, p_positive)) if both else None,
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def multiclass_metrics(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Accuracy, macro F1 and the confusion matrix (rows true, columns predicted)."""
    labels = list(range(len(names)))
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "classes": list(names),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
