"""A model's files, checked before use: skops heads and SHA-256-pinned files.

Heads are never pickled. They are written with ``skops.io.dump`` (uncompressed, skops'
default) and read back through ``skops.io.load`` with an explicit list of trusted types; a
file holding anything else, a compressed or oversized archive, or one skops cannot parse is
refused with :class:`~cervix_hf.errors.ModelLoadError`. Files named in ``config.json`` with a
SHA-256 (the ONNX backbone) are hashed before anything reads them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigMismatchError, ModelLoadError, UntrustedHeadError

if TYPE_CHECKING:
    from .config import CervixConfig

logger = logging.getLogger(__name__)

# Types a head file may hold beyond those skops trusts by default (the estimators of
# head_estimators, numpy arrays, builtins). Anything else is refused at load.
EXTRA_TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
)
MAX_SKOPS_BYTES = 1024 * 1024 * 1024
MAX_SKOPS_MEMBERS = 10_000
_HASH_CHUNK = 4 * 1024 * 1024


@contextlib.contextmanager
def _without_torch_adapter() -> Iterator[None]:
    """Keep skops' first import from importing torch.

    skops builds its trusted-type list by importing every scikit-learn package, including
    the array API adapter for torch, which imports torch itself when it is installed (1.7 s
    and 770 MB here, for nothing: the adapter holds no estimator). Serving needs no torch, so
    the adapter is marked unimportable while skops scans, and restored afterwards.
    """
    names = [n for n in ("sklearn.externals.array_api_compat.torch",) if n not in sys.modules]
    for name in names:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in names:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def head_estimators() -> list[tuple[str, type]]:
    """The scikit-learn estimators a cervix_hf model file may hold, as ``all_estimators``
    lists them: the heads (scaler, logistic regression, their calibration), the unusual-image
    detector (normalisers in a column transformer, nearest neighbours) and their pipelines."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import ColumnTransformer
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import NearestNeighbors
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    classes = (
        CalibratedClassifierCV,
        ColumnTransformer,
        IsotonicRegression,
        LogisticRegression,
        NearestNeighbors,
        Normalizer,
        Pipeline,
        StandardScaler,
    )
    return [(c.__name__, c) for c in classes]


@contextlib.contextmanager
def _only_head_estimators_trusted() -> Iterator[None]:
    """Let skops build its default trusted list from :func:`head_estimators` alone.

    skops trusts every scikit-learn estimator by default, a list it builds when imported by
    importing all of scikit-learn (0.3-0.4 s more than a model needs, measured at app start).
    A cervix_hf model holds only the estimators of :func:`head_estimators`, so skops is given
    those: a stricter default (any other estimator in a file is refused, see
    :func:`load_skops`) and a faster start. Were a skops release to build its list another
    way, its broader default would apply, as before.
    """
    import sklearn.utils

    original = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda type_filter=None: head_estimators()
    try:
        yield
    finally:
        sklearn.utils.all_estimators = original


def skops_io() -> Any:
    """``skops.io``, imported without torch and trusting only the estimators a cervix_hf
    model holds (see :func:`_without_torch_adapter`, :func:`_only_head_estimators_trusted`).
    """
    if "skops.io" not in sys.modules:
        with _without_torch_adapter(), _only_head_estimators_trusted():
            import skops.io  # noqa: F401
    return sys.modules["skops.io"]


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | Path, sha256: str, name: str) -> None:
    """Check a file against the SHA-256 its config records, before anything reads it.

    Raises:
        ModelLoadError: the file is missing or its bytes are not the recorded ones.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{name} is missing from the model.")
    actual = sha256_file(path)
    if actual != sha256:
        raise ModelLoadError(
            f"{name} does not match the SHA-256 recorded in config.json ({actual[:12]} != "
            f"{sha256[:12]}): the file was changed or corrupted, and it was not used. "
            "Download the model again (or re-save it with cervix_hf)."
        )


def save_skops(obj: Any, path: str | Path) -> None:
    """Write an estimator with skops (never pickle), uncompressed."""
    skops_io().dump(obj, Path(path))


def _check_skops_archive(path: Path, name: str) -> None:
    """A skops file is a zip: refuse compressed members, huge sizes and member counts before
    skops reads it (its members are then exactly as large as the file)."""
    size = path.stat().st_size
    if size > MAX_SKOPS_BYTES:
        raise ModelLoadError(f"{name} is {size / 2**20:.0f} MiB, over the limit for a head.")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, UnicodeDecodeError):
        raise ModelLoadError(f"{name} is not a readable skops file (not a zip archive).") from None
    if len(infos) > MAX_SKOPS_MEMBERS:
        raise ModelLoadError(f"{name} holds {len(infos):,} entries: not a cervix_hf head.")
    if any(i.compress_type != zipfile.ZIP_STORED for i in infos):
        raise ModelLoadError(
            f"{name} has compressed entries; cervix_hf writes and reads uncompressed skops "
            "files only (skops.io.dump's default). Re-save it without compression."
        )


def load_skops(path: str | Path, name: str | None = None) -> Any:
    """Load a skops file, trusting only scikit-learn's types and :data:`EXTRA_TRUSTED_TYPES`.

    Raises:
        ModelLoadError: missing, oversized, compressed or unreadable file.
        UntrustedHeadError: the file holds types outside the trusted list.
    """
    path = Path(path)
    name = name or path.name
    if not path.is_file():
        raise ModelLoadError(f"{name} is missing from the model.")
    _check_skops_archive(path, name)
    sio = skops_io()
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises zipfile/JSON/Key errors for foreign files
        logger.debug("skops could not read %s", path, exc_info=True)
        raise ModelLoadError(
            f"{name} is not a readable skops file ({type(exc).__name__})."
        ) from None
    refused = sorted(set(untrusted) - set(EXTRA_TRUSTED_TYPES))
    if refused:
        raise UntrustedHeadError(
            f"{name} holds types cervix_hf does not trust: {refused}. It was not loaded. "
            "Only scikit-learn estimators are allowed in a head; retrain with cervix_hf or "
            "inspect the file with skops.io.get_untrusted_types before trusting it yourself."
        )
    try:
        return sio.load(path, trusted=[t for t in untrusted if t in EXTRA_TRUSTED_TYPES])
    except Exception as exc:  # a damaged file that passed the type scan
        logger.debug("skops could not load %s", path, exc_info=True)
        raise ModelLoadError(
            f"{name} is not a readable skops file ({type(exc).__name__})."
        ) from None


def check_classifier(head: Any, *, feature_dim: int, classes: Sequence[str], name: str) -> None:
    """Check a loaded classifier head against the config.

    Raises:
        ConfigMismatchError: wrong estimator, feature count or classes.
    """
    for attr in ("predict_proba", "n_features_in_", "classes_"):
        if not hasattr(head, attr):
            raise ConfigMismatchError(f"{name} is not a fitted classifier (no {attr}).")
    if int(head.n_features_in_) != int(feature_dim):
        raise ConfigMismatchError(
            f"{name} takes {head.n_features_in_} features but config.json says the backbone "
            f"gives {feature_dim}: the head was trained on another backbone."
        )
    expected = list(range(len(classes)))
    if [int(c) for c in head.classes_] != expected:
        raise ConfigMismatchError(
            f"{name} has classes {list(head.classes_)}, expected indices {expected} for "
            f"{list(classes)} as in config.json."
        )


def load_heads(config: CervixConfig, fetch: Callable[[str], Path]) -> tuple[Any, Any, Any]:
    """The binary head, the cell-type head and the unusual-image detector a config names,
    each loaded with :func:`load_skops` and checked against the config.

    Raises:
        ModelLoadError: as :func:`load_skops`; ConfigMismatchError for a head that does not
            fit the config.
    """
    head = load_skops(fetch(config.head))
    check_classifier(head, feature_dim=config.feature_dim, classes=config.labels, name=config.head)
    cell_head = None
    if config.cell_type_head:
        cell_head = load_skops(fetch(config.cell_type_head))
        check_classifier(
            cell_head,
            feature_dim=config.feature_dim,
            classes=config.cell_types or (),
            name=config.cell_type_head,
        )
    novelty = None
    if config.novelty_detector:
        novelty = load_skops(fetch(config.novelty_detector))
        if not hasattr(novelty, "steps") or not hasattr(novelty[-1], "kneighbors"):
            raise ConfigMismatchError(
                f"{config.novelty_detector} is not a cervix_hf unusual-image detector."
            )
    return head, cell_head, novelty


def copy_verified(src: Path, dst: Path, sha256: str) -> None:
    """Copy ``src`` to ``dst``, checking the bytes written against ``sha256``.

    A copy, never a link: a model directory and the export cache must not share damage.
    """
    if dst.exists() and os.path.samefile(src, dst):
        return
    tmp = dst.with_name(f".{dst.name}.partial")
    digest = hashlib.sha256()
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            while chunk := fin.read(4 * 1024 * 1024):
                digest.update(chunk)
                fout.write(chunk)
        if digest.hexdigest() != sha256:
            raise ModelLoadError(
                f"{src.name} changed on disk while the model was in use; the model was not saved."
            )
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
