"""The model card's reuse snippet: a published model run with ``hf_hub_download`` alone.

:func:`reuse_snippet` renders a short Python program that needs only huggingface_hub,
onnxruntime, skops, Pillow and numpy (not this package, not torch): it downloads
``config.json``, the backbone ONNX graph and the head at one revision, preprocesses an image
as ``config.json``'s ``data_config`` says, runs the graph, mean-pools the feature map, calls the
head's ``predict_proba`` and applies the stored decision threshold.

The preprocessing is timm's evaluation transform for ``crop_mode`` "center" on a square input
(what timm resolves for ResNets and this project's models): the shorter side resized to
``floor(size / crop_pct)`` (the other side ``int(scale * long / short)``, as torchvision
computes it), a centre crop placed with Python's ``round()``, then ``/ 255``, minus ``mean``,
over ``std`` in float32. Other crop modes are refused by the snippet itself, with a message;
:mod:`cervix_hf.predictor.preprocess` reproduces all of them. The image is read with Pillow's
``convert("RGB")``: the same pixels as this package's loader for 8-bit RGB or grey images
(SIPaKMeD's BMPs), whereas the loader also applies EXIF orientation, composites transparency on
white and scales 16-bit images. tests/test_reuse.py runs the
rendered text verbatim against a model on the loopback Hub and compares it with
:class:`~cervix_hf.CervixClassifier`.
"""

from __future__ import annotations

import json
import re
from string import Template

from .artifacts import EXTRA_TRUSTED_TYPES
from .config import CervixConfig

#: The modules the snippet imports: the reuse contract (checked by the tests).
SNIPPET_MODULES: tuple[str, ...] = ("json", "math", "numpy", "onnxruntime", "skops", "PIL")
#: Packages to install to run it.
SNIPPET_PACKAGES: tuple[str, ...] = ("huggingface_hub", "onnxruntime", "skops", "pillow", "numpy")
MAX_SNIPPET_LINES = 20
CALIBRATED_CLASSIFIER = "sklearn.calibration._CalibratedClassifier"
SIGMOID_CALIBRATION = "sklearn.calibration._SigmoidCalibration"
_SHA = re.compile(r"^[0-9a-f]{40}$")

# $-placeholders (string.Template): the code itself uses braces. One line per step, at most
# MAX_SNIPPET_LINES lines, so it fits at the top of a card.
_TEMPLATE = Template("""\
import json, math, numpy as np, onnxruntime as ort, skops.io
from huggingface_hub import hf_hub_download
from PIL import Image
get = lambda name: hf_hub_download($repo_id, name, revision=$revision)$pin_note
cfg = json.load(open(get("config.json")))
dc = cfg["data_config"]; _, h, w = dc["input_size"]
if (dc.get("crop_mode") or "center") != "center" or h != w:
    raise SystemExit("This snippet does crop_mode 'center' on square inputs only: use cervix_hf")
img = Image.open("cell.bmp").convert("RGB"); W, H = img.size  # your single-cell image
s = math.floor(h / (dc.get("crop_pct") or 0.875))  # the shorter side -> s, as torchvision does
size = (s, int(s * H / W)) if W <= H else (int(s * W / H), s)
img = img.resize(size, getattr(Image.Resampling, dc["interpolation"].upper()))
left, top = round((img.width - w) / 2), round((img.height - h) / 2)  # centre crop
x = np.asarray(img.crop((left, top, left + w, top + h)), np.float32) / np.float32(255)
x = ((x - np.float32(dc["mean"])) / np.float32(dc["std"])).transpose(2, 0, 1)[None]
onnx = ort.InferenceSession(get(cfg["backbone_onnx"]["file"]), providers=["CPUExecutionProvider"])
features = onnx.run(None, {onnx.get_inputs()[0].name: x})[0].mean(axis=(2, 3))  # mean-pooled
p = skops.io.load(get(cfg["head"]), trusted=$trusted).predict_proba(features)[0]
pos, t = cfg["labels"].index(cfg["positive_label"]), cfg["decision_threshold"]
print(dict(zip(cfg["labels"], p.tolist())), cfg["labels"][pos if p[pos] >= t else 1 - pos])
""")


def trusted_types(config: CervixConfig) -> list[str]:
    """The types beyond scikit-learn's own that the head file holds (its calibration
    wrapper, if any), for ``skops.io.load(..., trusted=...)``."""
    calibration = config.head_params.get("calibration") or {}
    method = calibration.get("method") if isinstance(calibration, dict) else None
    if not method:
        return []
    types = [CALIBRATED_CLASSIFIER] + ([SIGMOID_CALIBRATION] if method == "sigmoid" else [])
    return [t for t in types if t in EXTRA_TRUSTED_TYPES]  # never more than the package trusts


def reuse_snippet(repo_id: str, revision: str | None, config: CervixConfig) -> str:
    """The reuse snippet for a model repo at a revision (the card's "How to use" code).

    Args:
        repo_id: the model repo on the Hub.
        revision: the commit to pin (40 hex digits). None renders ``"main"`` with a comment
            saying to pin a commit (a card cannot name the commit that adds it).
        config: the model's config (the head's trusted types depend on its calibration).

    Raises:
        ValueError: a revision that is not a full commit sha.
    """
    if revision is not None and not _SHA.match(revision):
        raise ValueError(f"revision must be a full 40-character commit sha, got {revision!r}")
    return _TEMPLATE.substitute(
        repo_id=json.dumps(repo_id),
        revision=json.dumps(revision or "main"),
        pin_note="" if revision else "  # pin a commit: revision=<sha>",
        trusted=json.dumps(trusted_types(config)),
    )
