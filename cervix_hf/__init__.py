"""cervix_hf: Normal vs Abnormal single-cell Pap-smear classification on the Hugging Face stack.

A frozen timm backbone (ResNet152 by default) turns each image into a feature vector and a
scikit-learn ``Pipeline(StandardScaler, LogisticRegression)`` head, saved with skops,
classifies it. Research use only: not a diagnostic device.
"""

from .config import CervixConfig
from .errors import (
    ArchiveError,
    CervixError,
    ConfigMismatchError,
    DatasetLayoutError,
    DeployError,
    EngineError,
    EvaluationError,
    HubError,
    ImageLoadError,
    LabelError,
    ModelLoadError,
    RequestError,
    SplitError,
    UntrustedHeadError,
)
from .labels import CELL_TYPES, GROUPINGS, LABELS

__version__ = "0.1.0"
__all__ = [
    "CELL_TYPES",
    "GROUPINGS",
    "LABELS",
    "ArchiveError",
    "CervixClassifier",
    "CervixConfig",
    "CervixError",
    "ConfigMismatchError",
    "DatasetLayoutError",
    "DeployError",
    "EngineError",
    "EvaluationError",
    "HubError",
    "ImageLoadError",
    "LabelError",
    "ModelLoadError",
    "RequestError",
    "SplitError",
    "UntrustedHeadError",
    "__version__",
]


def __getattr__(name: str):
    # CervixClassifier pulls in torch and timm (seconds to import); scripts that only
    # generate or prepare data do not pay for it.
    if name == "CervixClassifier":
        from .modeling import CervixClassifier

        return CervixClassifier
    raise AttributeError(f"module 'cervix_hf' has no attribute {name!r}")
