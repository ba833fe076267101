"""The folder a Space is published from: the app, the serving modules, pins and README.

:func:`build_space_folder` writes ``app.py`` (this package's app, which refuses to start
without a configured model), the package modules serving needs and no others
(:data:`SERVING_MODULES`), a torch-free ``requirements.txt`` with this project's tested pins
(:data:`SPACE_REQUIREMENTS`) and a README whose front matter pins the Gradio SDK and Python and
lists the model's files at its commit under ``preload_from_hub`` (the Hub's
``"repo file1,file2 sha"`` form), so a Space fetches them when it is built rather than when it
wakes up. :mod:`cervix_hf.space` publishes the folder.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import DeployError

PACKAGE_DIR = Path(__file__).resolve().parent
#: The package modules a Space runs, and only those: what the app imports to serve a Hub
#: model (tests/test_space.py runs a built Space and checks that it imports nothing else).
SERVING_MODULES: tuple[str, ...] = (
    "cervix_hf",
    "cervix_hf.analysis",
    "cervix_hf.app",
    "cervix_hf.archives",
    "cervix_hf.artifacts",
    "cervix_hf.boundaries",  # the synthetic example cells' outline format
    "cervix_hf.cli",
    "cervix_hf.config",
    "cervix_hf.config_schema",
    "cervix_hf.errors",
    "cervix_hf.explain",
    "cervix_hf.features",  # lazy: only the torch-free modules below are imported
    "cervix_hf.features.hardware",
    "cervix_hf.features.onnx_graph",
    "cervix_hf.features.precision",
    "cervix_hf.fields",  # the Field tab and /analyze_field
    "cervix_hf.fields.analyze",
    "cervix_hf.fields.classical",
    "cervix_hf.fields.geometry",
    "cervix_hf.fields.locate",
    "cervix_hf.fields.params",
    "cervix_hf.hub",
    "cervix_hf.images",
    "cervix_hf.labels",
    "cervix_hf.modeling",
    "cervix_hf.novelty",
    "cervix_hf.predictor",
    "cervix_hf.predictor.onnx_backbone",
    "cervix_hf.predictor.preprocess",
    "cervix_hf.serving",
    "cervix_hf.sipakmed",  # the synthetic example cells' marker constant
    "cervix_hf.synthetic",  # the page's synthetic example cells
    "cervix_hf.synthetic.fields",
    "cervix_hf.synthetic.morphology",
    "cervix_hf.synthetic.render",
    "cervix_hf.synthetic.shapes",
    "cervix_hf.synthetic.tree",
    "cervix_hf.webapp",
    "cervix_hf.webapp.common",
    "cervix_hf.webapp.field",
    "cervix_hf.webapp.files",
    "cervix_hf.webapp.handlers",
    "cervix_hf.webapp.page",
    "cervix_hf.webapp.uploads",
)
#: The Space's requirements: the serving subset of requirements.txt, same exact pins (a test
#: checks they agree), no torch, torchvision or timm.
SPACE_REQUIREMENTS: tuple[str, ...] = (
    "gradio[mcp]==6.31.0",
    "gradio_client==2.7.2",
    "mcp==1.30.0",
    "pydantic==2.12.5",
    "huggingface_hub==2.4.0",
    "onnxruntime==1.32.0",
    "scikit-learn==1.9.1",
    "scikit-image==0.26.0",
    "skops==0.16.0",
    "pillow==12.3.0",
    "numpy==2.4.6",
)
PYTHON_VERSION = "3.11"  # the version the project is tested with (Spaces default to 3.10)
SPACE_APP = '''"""cervix_hf demo Space: serves the model named by the Space variables
CERVIX_MODEL and CERVIX_MODEL_REVISION (preloaded at build time), on ONNX Runtime, no torch.

Built by `python -m cervix_hf.space`. Research use only: not a diagnostic device.
"""

from cervix_hf.app import run

if __name__ == "__main__":
    run(require_model=True)
'''
DISCLAIMER = (
    "**Research use only. Not a diagnostic device.** The output is a probability from a model, "
    "never medical advice; a cytologist must read every slide."
)


@dataclass(frozen=True)
class PinnedModel:
    """A model repo at one commit, and the files the app loads from it."""

    repo_id: str
    revision: str
    files: tuple[str, ...]
    private: bool = False


def module_file(module: str) -> Path:
    """The source file of a package module (``cervix_hf.webapp`` -> ``webapp/__init__.py``)."""
    parts = module.split(".")[1:]
    plain = PACKAGE_DIR.joinpath(*parts).with_suffix(".py") if parts else None
    return (
        plain
        if plain is not None and plain.is_file()
        else PACKAGE_DIR.joinpath(*parts, "__init__.py")
    )


def gradio_version() -> str:
    """The Gradio version the Space's SDK is pinned to (from :data:`SPACE_REQUIREMENTS`)."""
    pin = next(r for r in SPACE_REQUIREMENTS if r.startswith("gradio[") or r.startswith("gradio=="))
    return pin.split("==")[1]


def space_readme(space_id: str, model: PinnedModel) -> str:
    """The Space's README: front matter (SDK, Python, app file, model, preload) and a page."""
    from huggingface_hub import SpaceCard, SpaceCardData, constants

    from . import __version__

    data = SpaceCardData(
        title="cervix_hf Pap-smear cell screening (research demo)",
        sdk="gradio",
        sdk_version=gradio_version(),
        python_version=PYTHON_VERSION,
        app_file="app.py",
        license="apache-2.0",
        models=[model.repo_id],
        tags=["medical", "cytology", "pap-smear", "mcp-server", "cervix_hf"],
        emoji="🔬",
        colorFrom="pink",
        colorTo="indigo",
        pinned=False,
        short_description="Pap-smear cell triage research demo, not diagnostic",
    )
    if not model.private:  # the Hub cannot preload private repos
        data.preload_from_hub = [f"{model.repo_id} {','.join(model.files)} {model.revision}"]
    model_url = f"{constants.ENDPOINT}/{model.repo_id}/tree/{model.revision}"
    body = f"""
# cervix_hf: single-cell Pap-smear classifier

> {DISCLAIMER}

This Space serves the model [`{model.repo_id}`]({model_url}) at commit `{model.revision}`:
Normal vs Abnormal for an image of one cell, with the probability, the decision at the model's
threshold, a heat map of what pushed it, the cell type and a warning when the image is unlike
the training cells. It runs on the CPU with ONNX Runtime (no torch); the model's files are
fetched when the Space is built.

Programs call the same endpoints: `gradio_client` (`Client("{space_id}")`, endpoints
`/predict` and `/predict_batch`; `client.view_api()` documents them) or MCP (tools `predict`
and `predict_batch` at `/gradio_api/mcp/` on the Space's own URL).

Built by `python -m cervix_hf.space` (cervix_hf {__version__}). The model is set by the Space
variables `CERVIX_MODEL` and `CERVIX_MODEL_REVISION`; deploy again to change it.
"""
    return str(SpaceCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def build_space_folder(out_dir: str | Path, space_id: str, model: PinnedModel) -> Path:
    """Write the Space: ``app.py``, the serving modules, ``requirements.txt``, ``README.md``.

    Raises:
        DeployError: ``out_dir`` exists and is not empty (nothing of yours is overwritten).
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DeployError(f"{out} exists and is not an empty folder: choose a new folder.")
    out.mkdir(parents=True, exist_ok=True)
    (out / "app.py").write_text(SPACE_APP)
    for module in SERVING_MODULES:
        source = module_file(module)
        target = out / source.relative_to(PACKAGE_DIR.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    (out / "requirements.txt").write_text(
        "# torch-free: the serving part of cervix_hf (its tested pins)\n"
        + "\n".join(SPACE_REQUIREMENTS)
        + "\n"
    )
    (out / "README.md").write_text(space_readme(space_id, model))
    return out
