"""Hub transfers for model directories, with the client's errors turned into ours.

The token comes from ``HF_TOKEN`` or the stored login (huggingface_hub reads both); it is never
passed through our code, printed or logged.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from .errors import HubError

logger = logging.getLogger(__name__)
_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class HubOptions:
    """How files are fetched from the Hub, with ``hf_hub_download``'s meanings.

    Attributes:
        token: a token, or None for the stored login / ``HF_TOKEN``.
        cache_dir: the Hub cache folder (default: huggingface_hub's).
        local_files_only: use the local cache only, never the network.
        force_download: download again even when cached.
    """

    token: str | bool | None = None
    cache_dir: str | Path | None = None
    local_files_only: bool = False
    force_download: bool = False


def download_file(
    repo_id: str,
    filename: str,
    revision: str | None = None,
    repo_type: str = "model",
    options: HubOptions | None = None,
) -> Path:
    """Download one file of a Hub repo into the local cache (``hf_hub_download``).

    Raises:
        HubError: with what to check, for a missing repo, file or revision, or no connection.
    """
    where = f"{repo_id}@{revision}" if revision else repo_id
    options = options or HubOptions()
    try:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                repo_type=repo_type,
                token=options.token,
                cache_dir=options.cache_dir,
                local_files_only=options.local_files_only,
                force_download=options.force_download,
            )
        )
    except GatedRepoError:
        raise HubError(
            f"{repo_id} is gated: accept its terms on the Hub and log in (HF_TOKEN)."
        ) from None
    except RepositoryNotFoundError:
        raise HubError(
            f"Hub repo {repo_id!r} not found. Check the id; for a private repo set HF_TOKEN "
            "or run `hf auth login`."
        ) from None
    except RevisionNotFoundError:
        raise HubError(f"Revision {revision!r} does not exist in {repo_id}.") from None
    except LocalEntryNotFoundError:
        raise HubError(
            f"Cannot reach the Hub to fetch {filename} from {where}, and it is not in the local "
            "cache. Check the connection (or HF_ENDPOINT), or pass a local model directory."
        ) from None
    except EntryNotFoundError:
        raise HubError(
            f"{where} has no {filename}: it is not a cervix_hf model (or is incomplete)."
        ) from None
    except (OfflineModeIsEnabled, HfHubHTTPError) as exc:
        raise HubError(f"Hub error while fetching {filename} from {where}: {exc}") from None


def commit_of(path: Path, fallback: str | None) -> str | None:
    """The commit a cached Hub file belongs to (``.../snapshots/<sha>/file``), if known."""
    name = path.parent.name
    return name if _SHA.match(name) else fallback


def upload_dir(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    commit_message: str,
    repo_type: str = "model",
) -> str:
    """Create the repo if needed and upload a folder in one commit.

    Returns:
        The commit sha.

    Raises:
        HubError: when the repo cannot be created or written (login, permissions, network).
    """
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type=repo_type,
            commit_message=commit_message,
        )
    except (HfHubHTTPError, OSError) as exc:
        raise _push_error(repo_id, exc) from None
    logger.info("Pushed %s to %s at commit %s", folder, repo_id, info.oid)
    return info.oid


def upload_file(
    path: str | Path,
    path_in_repo: str,
    repo_id: str,
    *,
    commit_message: str,
    repo_type: str = "model",
) -> str:
    """Upload one file to an existing repo in one commit; returns the commit sha.

    Raises:
        HubError: when the repo cannot be written (login, permissions, network).
    """
    try:
        info = HfApi().upload_file(
            path_or_fileobj=str(path),
            path_in_repo=path_in_repo,
            repo_id=repo_id,
            repo_type=repo_type,
            commit_message=commit_message,
        )
    except (HfHubHTTPError, OSError) as exc:
        raise _push_error(repo_id, exc) from None
    return info.oid


def _push_error(repo_id: str, exc: Exception) -> HubError:
    return HubError(
        f"Could not push to {repo_id!r} ({type(exc).__name__}: {exc}). Log in with "
        "`hf auth login` or set HF_TOKEN to a token with write access."
    )
