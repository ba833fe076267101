"""The demo app's command line: ``python app.py`` in a checkout, ``python -m cervix_hf.app``,
and the ``app.py`` of a Space built by :mod:`cervix_hf.space`.

The model comes from ``--model`` or ``CERVIX_MODEL`` (a Hub repo id or a local directory),
pinned with ``CERVIX_MODEL_REVISION`` (a full commit sha; ``--allow-unpinned`` /
``CERVIX_ALLOW_UNPINNED=1`` serves a repo's moving head instead, with a warning on the page).
With nothing configured the app serves an offline demo model (random-init backbone, synthetic
cells), labelled as such, built once in a child process on the first start; a Space requires
a configured model instead. One process, no torch: the model runs on ONNX Runtime. Binds
127.0.0.1 unless ``--host`` or ``GRADIO_SERVER_NAME`` says otherwise. With ``gradio[mcp]``
installed, the endpoints are also MCP tools (``/gradio_api/mcp/``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
from typing import NoReturn

from .cli import setup_logging
from .errors import CervixError, ModelLoadError

logger = logging.getLogger("cervix_hf.app")
_TRUE = {"1", "true", "yes", "on"}
NO_MODEL = (
    "No model configured: this app serves the model named by CERVIX_MODEL at the commit in "
    "CERVIX_MODEL_REVISION. Set both (on a Space: Settings > Variables; "
    "`python -m cervix_hf.space` sets them)."
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model",
        default=os.environ.get("CERVIX_MODEL"),
        help="Hub repo id or model directory (env CERVIX_MODEL)",
    )
    p.add_argument(
        "--revision",
        default=os.environ.get("CERVIX_MODEL_REVISION"),
        help="full commit sha to pin a Hub model (env CERVIX_MODEL_REVISION)",
    )
    p.add_argument(
        "--allow-unpinned",
        action="store_true",
        default=os.environ.get("CERVIX_ALLOW_UNPINNED", "").strip().lower() in _TRUE,
        help="serve a Hub model without a pinned revision (env CERVIX_ALLOW_UNPINNED=1)",
    )
    p.add_argument("--host", help="interface to bind (default 127.0.0.1, or GRADIO_SERVER_NAME)")
    p.add_argument("--port", type=int, help="port (default: Gradio's, 7860)")
    return p.parse_args(argv)


def stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM handler: a Space (or any supervisor) stops the app with SIGTERM; leave through
    the same path as Ctrl-C, so temporary files are deleted before the process exits."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None, *, require_model: bool = False) -> int:
    """Load the model, build the app and serve it until interrupted.

    Args:
        argv: command line (default: ``sys.argv[1:]``).
        require_model: refuse to start without a configured model instead of building the
            offline demo model (which needs torch): what a Space does.
    """
    args = parse_args(argv)
    setup_logging()
    from .serving import check_source, load_served_model

    try:
        if require_model and not args.model:
            raise ModelLoadError(NO_MODEL)
        check_source(args.model, args.revision, args.allow_unpinned)  # before anything loads
    except CervixError as exc:
        logger.error("Cannot start: %s", exc)
        return 2
    from .webapp import AppFiles, build_app, launch_kwargs, write_examples

    files = AppFiles()
    try:
        model, info = load_served_model(
            args.model, args.revision, allow_unpinned=args.allow_unpinned
        )
        with tempfile.TemporaryDirectory(prefix="cervix-examples-") as examples_dir:
            app = build_app(model, info, examples=write_examples(examples_dir), files=files)
            app.launch(**launch_kwargs(args.host, args.port))
    except CervixError as exc:
        logger.error("Cannot start: %s", exc)
        return 2
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM before Gradio's own loop took over
        logger.info("Stopped.")
    finally:
        files.close()
    return 0


def run(*, require_model: bool = False) -> NoReturn:
    """Run as a program: SIGTERM leaves like Ctrl-C, the exit code is :func:`main`'s.

    Only a program installs the handler: :func:`main` called from tests or other code
    leaves the caller's signal handling alone.
    """
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    sys.exit(main(require_model=require_model))


if __name__ == "__main__":
    run()
