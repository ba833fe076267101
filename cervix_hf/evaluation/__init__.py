"""Honest evaluation of a model, as small modules of pure functions and one orchestration.

* :mod:`.report` -- the typed report (dataclasses) that ``card.py``, ``plots.py`` and the CLIs
  read, and its JSON form in ``metrics.json``;
* :mod:`.threshold` -- the operating point rule (largest threshold reaching a sensitivity);
* :mod:`.cv` -- grouped CV, the operating point chosen on training rows only, nested CV;
* :mod:`.bootstrap`, :mod:`.intervals` -- cluster bootstrap, intervals for clustered data;
* :mod:`.scoring` -- one set of predictions into a ``Performance``;
* :mod:`.protocols` -- the original project's protocol, faithfully;
* :mod:`.pipeline` -- all of the statistics on features in memory (pure);
* :mod:`.external` -- the frozen model on other data;
* :mod:`.run` -- orchestration: evaluate a model or a model directory, save, push.
"""

from .bootstrap import DEFAULT_RESAMPLES
from .cv import (
    C_SELECTIONS,
    CALIBRATION_METHODS,
    DEFAULT_FOLDS,
    CVResult,
    choose_operating_point,
    cross_validate,
    fit_calibrated_head,
    nested_cv,
    positive_scores,
)
from .intervals import DEFAULT_LEVEL
from .pipeline import PROTOCOLS, DataInfo, EvalData, EvalOptions, Published, evaluate_features
from .protocols import SEED_DATA_CONFIG, seed_labels, seed_protocol
from .report import EvaluationReport, ExternalReport
from .run import EvaluateResult, evaluate_directory, evaluate_model, save_evaluated
from .serialise import from_dict, report_from_metrics
from .text import summary_lines
from .threshold import DEFAULT_TARGET_SENSITIVITY, choose_threshold

__all__ = [
    "CALIBRATION_METHODS",
    "C_SELECTIONS",
    "DEFAULT_FOLDS",
    "DEFAULT_LEVEL",
    "DEFAULT_RESAMPLES",
    "DEFAULT_TARGET_SENSITIVITY",
    "PROTOCOLS",
    "SEED_DATA_CONFIG",
    "CVResult",
    "DataInfo",
    "EvalData",
    "EvalOptions",
    "EvaluateResult",
    "EvaluationReport",
    "ExternalReport",
    "Published",
    "choose_operating_point",
    "choose_threshold",
    "cross_validate",
    "evaluate_directory",
    "evaluate_features",
    "evaluate_model",
    "fit_calibrated_head",
    "from_dict",
    "nested_cv",
    "positive_scores",
    "report_from_metrics",
    "save_evaluated",
    "seed_labels",
    "seed_protocol",
    "summary_lines",
]
