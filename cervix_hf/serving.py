"""The model the app serves: which one, and a process of its own to run it in.

:func:`load_served_model` picks the model (a Hub repo at a pinned sha, a local directory, or
the offline demo model). :func:`start_model_process` loads it in a separate process, which
``app.py`` starts *before* importing Gradio: the two processes import their libraries side by
side (torch, timm, scikit-learn and skops in one, Gradio in the other): on this project's
2-core machine the model was ready after 14.8-16.1 s instead of 21.2-22.5 s one after the
other (alternating runs). The web process keeps only numpy, Pillow and Gradio; it gets a
:class:`RemoteModel` that answers like a :class:`~cervix_hf.modeling.CervixClassifier` for
what the app uses, and the server stays up with a clear error if the model process dies.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import re
import signal
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .analysis import CellAnalysis
from .config import CervixConfig
from .errors import CervixError, ModelLoadError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from .modeling import CervixClassifier

logger = logging.getLogger(__name__)

SHA_PATTERN = re.compile(r"^[0-9a-f]{40}$")
STOP_SECONDS = 10.0


@dataclass
class ModelInfo:
    """What the page says about the model it serves."""

    source: str
    revision: str | None = None
    demo: bool = False
    notes: list[str] = field(default_factory=list)


def check_revision(revision: str | None) -> str | None:
    """Validate ``CERVIX_MODEL_REVISION``: a full 40-hex commit sha, or nothing.

    Raises:
        ModelLoadError: for a branch name, a tag or a short sha (they can move or collide).
    """
    if revision is None or revision == "":
        return None
    if not SHA_PATTERN.match(revision):
        raise ModelLoadError(
            f"CERVIX_MODEL_REVISION={revision!r} is not a full 40-character commit sha. Pin the "
            "exact model: use the sha printed by `scripts/train.py --push-to-hub` or shown in "
            "the repo's history."
        )
    return revision


def _check_source(model: str | None, revision: str | None) -> str | None:
    revision = check_revision(revision)
    if model and revision and Path(model).is_dir():
        raise ModelLoadError(
            f"CERVIX_MODEL_REVISION applies to Hub repos; {model} is a local directory."
        )
    return revision


def load_served_model(
    model: str | None, revision: str | None, cache_dir: str | None = None
) -> tuple[CervixClassifier, ModelInfo]:
    """The model to serve: a Hub repo or local directory, else the offline demo model.

    Raises:
        ModelLoadError / HubError: with what to set, when a configured model cannot be loaded.
    """
    revision = _check_source(model, revision)
    if not model:
        from .demo import load_demo_model

        clf = load_demo_model(cache_dir)
        return clf, ModelInfo(
            source="offline demo model",
            demo=True,
            notes=[
                "DEMO MODEL: a randomly initialised ResNet152 trained on synthetic generated "
                "cells. Its outputs say nothing about real cells. Set CERVIX_MODEL to a "
                "trained model (Hub repo id or directory) to serve a real one."
            ],
        )
    from .modeling import CervixClassifier

    clf = CervixClassifier.from_pretrained(model, revision=revision)
    info = ModelInfo(source=model, revision=clf.source.get("revision"))
    if not clf.config.pretrained:
        info.notes.append("This model's backbone is randomly initialised: a pipeline test only.")
    if clf.config.synthetic_data:
        info.notes.append("This model was trained on synthetic cells, not medical data.")
    return clf, info


# -- the model process -----------------------------------------------------------------------


@dataclass(frozen=True)
class ServedModel:
    """What the web process needs to know about the model beside :meth:`analyze`."""

    config: CervixConfig
    source: dict[str, str | None]
    has_cell_types: bool
    logit_name: str


def _serve(
    conn: Connection, model: str | None, revision: str | None, cache_dir: str | None, verbose: bool
) -> None:
    """The model process: load the model, report, then answer ``analyze`` requests until the
    web process sends ``None`` or goes away."""
    from .cli import setup_logging

    # Ctrl-C in a terminal reaches the whole process group: the web process decides when
    # this one stops (it sends None or closes the pipe)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging(verbose)
    try:
        clf, info = load_served_model(model, revision, cache_dir)
    except CervixError as exc:
        _reply(conn, "error", exc)
        return
    served = ServedModel(clf.config, clf.source, clf.has_cell_types, clf.logit_name)
    if not _reply(conn, "ready", (served, info)):
        return
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the web process is gone
            return
        if request is None:
            return
        try:
            answer = ("ok", clf.analyze(request))
        except CervixError as exc:
            answer = ("error", exc)
        except Exception:  # a bug: report it and keep serving the other requests
            answer = ("bug", traceback.format_exc())
        if not _reply(conn, *answer):
            return


def _reply(conn: Connection, kind: str, payload: Any) -> bool:
    """Send to the web process; False when it is gone."""
    try:
        conn.send((kind, payload))
    except OSError:  # BrokenPipeError and friends
        return False
    return True


class RemoteModel:
    """The model running in the model process, answering like a ``CervixClassifier``
    (``config``, ``source``, ``has_cell_types``, ``logit_name``, ``analyze``)."""

    def __init__(
        self, conn: Connection, process: multiprocessing.process.BaseProcess, served: ServedModel
    ) -> None:
        self._conn = conn
        self._process = process
        self._lock = threading.Lock()
        self.config = served.config
        self.source = served.source
        self.has_cell_types = served.has_cell_types
        self.logit_name = served.logit_name

    def analyze(self, images: list[Any]) -> list[CellAnalysis]:
        """:meth:`CervixClassifier.analyze` in the model process (images: decoded PIL images).

        Raises:
            ModelLoadError: the model process has stopped.
            CervixError: what the model raised (e.g. an unreadable image).
        """
        with self._lock:
            try:
                self._conn.send(list(images))
                kind, payload = self._conn.recv()
            except (EOFError, OSError):
                raise ModelLoadError(
                    f"The model process stopped (exit code {self._process.exitcode}); "
                    "restart the app. Its log is above."
                ) from None
        if kind == "ok":
            return payload
        if kind == "error":
            raise payload
        raise RuntimeError(f"The model process failed:\n{payload}")

    def close(self) -> None:
        """Stop the model process (idempotent)."""
        _stop(self._conn, self._process)


def _stop(conn: Connection, process: multiprocessing.process.BaseProcess) -> None:
    if not conn.closed:
        with contextlib.suppress(OSError):  # already gone
            conn.send(None)
        conn.close()
    process.join(STOP_SECONDS)
    if process.is_alive():
        process.terminate()
        process.join(STOP_SECONDS)


class PendingModel:
    """A model process that is loading; :meth:`wait` for it (see :func:`start_model_process`)."""

    def __init__(self, conn: Connection, process: multiprocessing.process.BaseProcess) -> None:
        self._conn = conn
        self._process = process

    def wait(self) -> tuple[RemoteModel, ModelInfo]:
        """Block until the model is loaded (the demo model may be trained first).

        Raises:
            CervixError: why the model could not be loaded (ModelLoadError, HubError, ...).
        """
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError):
            self.close()
            raise ModelLoadError(
                f"The model process exited (code {self._process.exitcode}) before the model "
                "was loaded; its log is above."
            ) from None
        if kind == "error":
            self.close()
            raise payload
        served, info = payload
        return RemoteModel(self._conn, self._process, served), info

    def close(self) -> None:
        """Stop the model process (idempotent)."""
        _stop(self._conn, self._process)


def start_model_process(
    model: str | None,
    revision: str | None,
    cache_dir: str | None = None,
    *,
    verbose: bool = False,
) -> PendingModel:
    """Start loading the served model in a new process and return at once.

    The revision is checked here, before anything starts. The process is started with
    ``spawn`` (a fresh interpreter: nothing of this process's threads or imports is copied)
    and stopped when this process exits.

    Raises:
        ModelLoadError: for a revision that is not a full commit sha.
    """
    revision = _check_source(model, revision)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    # not a daemon: a daemonic process may not start the DataLoader workers that training
    # the demo model can use; it stops on None, or when this end of the pipe closes
    process = ctx.Process(
        target=_serve,
        args=(child, model, revision, cache_dir, verbose),
        name="cervix-model",
    )
    process.start()
    child.close()
    pending = PendingModel(parent, process)
    atexit.register(pending.close)
    return pending
