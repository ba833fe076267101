"""Publish the demo as a Hugging Face Space that serves one pinned model, without torch.

    python -m cervix_hf.space MODEL --space OWNER/NAME [--revision SHA] [--model-repo ID]
        [--hardware FLAVOR] [--private] [--dry-run OUT_DIR]

MODEL is a Hub model repo pinned with ``--revision`` (a full commit sha: a Space serves one
exact model) or a model directory, which is first pushed to ``--model-repo`` (default:
OWNER/NAME-model) to get that commit. The Space folder (:mod:`cervix_hf.space_folder`) holds
the app, the serving modules only, torch-free pinned requirements and a README that preloads
the model's files at that commit. Publishing creates the Space if needed, sets the Space
variables ``CERVIX_MODEL`` and ``CERVIX_MODEL_REVISION``, uploads the folder in one commit
(files no longer built are deleted) and requests ``--hardware`` when given: free CPU hardware
is not guaranteed, so the hardware is a choice. ``--dry-run OUT_DIR`` only writes the folder.
The token comes from ``HF_TOKEN`` or the stored login and is never printed.
"""

from __future__ import annotations

import argparse
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .cli import run, setup_logging
from .config import CONFIG_NAME, CervixConfig
from .errors import DeployError, HubError
from .space_folder import PinnedModel, build_space_folder

logger = logging.getLogger("cervix_hf.space")

_SHA = re.compile(r"^[0-9a-f]{40}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Deployment:
    """What publishing did: the Space, its new commit and the model it serves."""

    space_id: str
    url: str
    commit: str
    model: PinnedModel
    hardware: str | None = None


def check_repo_id(repo_id: str, what: str) -> str:
    """An ``owner/name`` id, or a :class:`DeployError` saying so."""
    if not _REPO_ID.match(repo_id):
        raise DeployError(f"{what} must be OWNER/NAME on the Hub, got {repo_id!r}.")
    return repo_id


def pin_hub_model(repo_id: str, revision: str | None) -> PinnedModel:
    """A Hub model at a commit, checked: its config validates and the files it names exist.

    Raises:
        DeployError: no full commit sha, a model saved without ``backbone.onnx``, or files
            missing at that commit.
        HubError: the repo or revision cannot be read.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from . import hub

    if not revision or not _SHA.match(revision):
        raise DeployError(
            f"{repo_id} is a Hub model: pin it with --revision <full 40-character commit sha> "
            f"(got {revision!r}). A Space must serve one exact model; the sha is printed by "
            "`scripts/train.py --push-to-hub` and shown in the repo's history."
        )
    config = CervixConfig.from_json(hub.download_file(repo_id, CONFIG_NAME, revision))
    if config.backbone_onnx is None:
        raise DeployError(
            f"{repo_id}@{revision[:12]} has no backbone.onnx (saved by an older cervix_hf). A "
            "Space serves without torch and cannot export it: load the model with "
            "CervixClassifier.from_pretrained where torch is installed, push it again, and "
            "deploy the new commit."
        )
    files = [CONFIG_NAME, config.backbone_onnx.file, config.head]
    files += [f for f in (config.cell_type_head, config.novelty_detector) if f]
    try:
        info = HfApi().model_info(repo_id, revision=revision)
    except HfHubHTTPError as exc:
        raise HubError(f"Cannot read {repo_id}@{revision[:12]}: {exc}") from None
    present = {s.rfilename for s in info.siblings or []}
    missing = [f for f in files if f not in present]
    if missing:
        raise DeployError(f"{repo_id}@{revision[:12]} lacks {missing}: not a complete model.")
    return PinnedModel(repo_id, revision, tuple(files), private=bool(info.private))


def push_model_dir(directory: Path, model_repo: str, private: bool) -> str:
    """Load a model directory (checked as any load is) and push it; returns the commit sha."""
    from .modeling import CervixClassifier

    model = CervixClassifier.from_pretrained(directory)
    sha = model.push_to_hub(model_repo, private=private)
    logger.info("Pushed %s to %s at %s", directory, model_repo, sha)
    return sha


def publish(
    folder: Path, space_id: str, model: PinnedModel, *, hardware: str | None, private: bool
) -> Deployment:
    """Create or update the Space from a built folder (see the module docstring).

    Raises:
        HubError: the Space cannot be created or written (login, permissions, network).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        url = api.create_repo(
            space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True
        )
        # variables first, so the build the upload starts already sees them
        api.add_space_variable(space_id, "CERVIX_MODEL", model.repo_id)
        api.add_space_variable(space_id, "CERVIX_MODEL_REVISION", model.revision)
        commit = api.upload_folder(
            repo_id=space_id,
            repo_type="space",
            folder_path=str(folder),
            commit_message=f"Serve {model.repo_id}@{model.revision[:12]} (cervix_hf.space)",
            delete_patterns="*",  # modules no longer served; .gitattributes is always kept
        )
        runtime = api.request_space_hardware(space_id, hardware) if hardware else None
    except (HfHubHTTPError, OSError) as exc:
        raise HubError(
            f"Could not publish the Space {space_id!r} ({type(exc).__name__}: {exc}). Log in "
            "with `hf auth login` or set HF_TOKEN to a token with write access."
        ) from None
    requested = runtime.requested_hardware if runtime is not None else None
    return Deployment(space_id, str(url), commit.oid, model, requested)


def deploy(
    model: str,
    space_id: str,
    *,
    revision: str | None = None,
    model_repo: str | None = None,
    hardware: str | None = None,
    private: bool = False,
    dry_run: str | Path | None = None,
) -> Deployment | Path:
    """Build the Space for ``model`` and publish it (or, with ``dry_run``, only build it).

    Args:
        model: a Hub model repo (pinned by ``revision``) or a model directory.
        space_id: OWNER/NAME of the Space. revision: the model's commit sha.
        model_repo: where a model directory is pushed (default: OWNER/NAME-model).
        hardware: a Space hardware flavour to request (default: none requested).
        private: make the Space (and a model repo pushed here) private.
        dry_run: write the folder there and publish nothing.

    Returns:
        The :class:`Deployment`, or the folder for a dry run.

    Raises:
        DeployError / HubError / ModelLoadError: with what to fix.
    """
    check_repo_id(space_id, "--space")
    local = Path(model).is_dir()
    if local and revision:
        raise DeployError(f"--revision pins a Hub model; {model} is a local directory.")
    if local and dry_run:
        raise DeployError(
            "--dry-run publishes nothing, so it needs a Hub model pinned with --revision: a "
            "model directory must be pushed first to get the commit the Space serves."
        )
    if local:
        model_repo = check_repo_id(model_repo or f"{space_id}-model", "--model-repo")
        revision = push_model_dir(Path(model), model_repo, private)
        model = model_repo
    elif model_repo:
        raise DeployError("--model-repo names where a model directory is pushed; MODEL is a repo.")
    pinned = pin_hub_model(check_repo_id(model, "MODEL"), revision)
    if pinned.private:
        logger.warning(
            "%s is private: Spaces cannot preload private repos, so the Space downloads the "
            "model when it starts, which needs a read token as its HF_TOKEN secret (Space "
            "settings > Secrets).",
            pinned.repo_id,
        )
    if dry_run:
        return build_space_folder(dry_run, space_id, pinned)
    with tempfile.TemporaryDirectory(prefix="cervix-space-") as tmp:
        folder = build_space_folder(Path(tmp) / "space", space_id, pinned)
        return publish(folder, space_id, pinned, hardware=hardware, private=private)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    from huggingface_hub import SpaceHardware

    p = argparse.ArgumentParser(
        prog="python -m cervix_hf.space",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="Hub model repo id (with --revision) or a model directory")
    p.add_argument("--space", required=True, metavar="OWNER/NAME", help="the Space to publish")
    p.add_argument("--revision", metavar="SHA", help="the Hub model's full commit sha")
    p.add_argument(
        "--model-repo",
        metavar="OWNER/NAME",
        help="where a model directory is pushed first (default: the Space's id + '-model')",
    )
    p.add_argument(
        "--hardware",
        choices=[h.value for h in SpaceHardware],
        metavar="FLAVOR",
        help="hardware to request, e.g. cpu-basic or cpu-upgrade (default: none requested; the "
        "app runs on the CPU, a GPU would sit idle)",
    )
    p.add_argument("--private", action="store_true", help="make the Space (and model repo) private")
    p.add_argument("--dry-run", metavar="OUT_DIR", help="only write the Space folder there")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build and publish the Space; print its URL and commit (or the dry run's folder)."""
    args = parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        if args.hardware and not args.hardware.startswith("cpu"):
            logger.warning(
                "The app runs on the CPU (ONNX Runtime): %s would sit idle.", args.hardware
            )
        result = deploy(
            args.model,
            args.space,
            revision=args.revision,
            model_repo=args.model_repo,
            hardware=args.hardware,
            private=args.private,
            dry_run=args.dry_run,
        )
        if isinstance(result, Path):
            print(f"space folder: {result}")
            return 0
        print(f"model: {result.model.repo_id} @ {result.model.revision}")
        print(f"space: {result.url}")
        print(f"commit: {result.commit}")
        if result.hardware:
            print(f"hardware requested: {result.hardware}")
        else:
            print(
                "hardware: none requested (the Space keeps its current hardware; pass --hardware)"
            )
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
