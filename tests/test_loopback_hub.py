"""The loopback Hub (tests/loopback_hub.py) works with the real huggingface_hub and datasets.

Everything here runs offline: HF_ENDPOINT points at the `hub` fixture on 127.0.0.1 (conftest).
"""

from __future__ import annotations

import json
import random
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.loopback_hub import LoopbackHub

HEX40 = re.compile(r"[0-9a-f]{40}")
BLOB = random.Random(0).randbytes(1_000_000)  # ~1 MB binary -> goes through the git-LFS path
CONFIG = {"architecture": "resnet152", "num_labels": 2}


@dataclass
class Uploaded:
    repo_id: str
    v1: dict[str, bytes]  # path -> content of the first upload
    v2: dict[str, bytes]  # ... and after the second one (notes.txt changed)
    oid1: str
    oid2: str


def _write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture(scope="module")
def uploaded(hub: LoopbackHub, tmp_path_factory: pytest.TempPathFactory) -> Uploaded:
    """A model repo with two commits made by `upload_folder`."""
    from huggingface_hub import HfApi

    api = HfApi()
    repo_id = f"tester/model-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id)
    v1 = {
        "notes.txt": b"first version\n",
        "config.json": json.dumps(CONFIG).encode(),
        "weights/model.bin": BLOB,
    }
    info1 = api.upload_folder(
        repo_id=repo_id, folder_path=_write_folder(tmp_path_factory.mktemp("v1"), v1)
    )
    v2 = {**v1, "notes.txt": b"second version\n"}
    info2 = api.upload_folder(
        repo_id=repo_id, folder_path=_write_folder(tmp_path_factory.mktemp("v2"), v2)
    )
    return Uploaded(repo_id, v1, v2, info1.oid, info2.oid)


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Records the address of every socket connect() made by the test (new HTTP sessions)."""
    from huggingface_hub import close_session

    seen: list[object] = []
    original = socket.socket.connect

    def connect(self: socket.socket, address: object) -> None:
        seen.append(address)
        original(self, address)

    close_session()  # drop pooled connections so that the test opens (and records) new ones
    monkeypatch.setattr(socket.socket, "connect", connect)
    yield seen
    close_session()


def _assert_loopback_only(seen: list[object]) -> None:
    assert seen, "expected the client to open at least one connection"
    hosts = {a[0] if isinstance(a, tuple) else a for a in seen}
    assert hosts == {"127.0.0.1"}, hosts


def test_clients_point_at_the_loopback_hub(hub: LoopbackHub) -> None:
    from huggingface_hub import constants

    assert hub.url.startswith("http://127.0.0.1:")
    assert hub.url == constants.ENDPOINT
    assert constants.HF_HUB_DISABLE_XET
    assert not constants.HF_HUB_OFFLINE


def test_create_repo_twice(hub: LoopbackHub, hub_repo_id: str) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    url = api.create_repo(hub_repo_id)
    assert url.repo_id == hub_repo_id
    assert url == f"{hub.url}/{hub_repo_id}"
    assert hub.last_token == "hf_loopback_test_token"  # HF_TOKEN is sent (and ignored)

    again = api.create_repo(hub_repo_id, exist_ok=True)
    assert again.repo_id == hub_repo_id
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_repo(hub_repo_id)
    assert excinfo.value.response.status_code == 409

    dataset_url = api.create_repo(hub_repo_id, repo_type="dataset")  # separate namespace per type
    assert dataset_url == f"{hub.url}/datasets/{hub_repo_id}"


def test_upload_folder_uses_regular_and_lfs_uploads(hub: LoopbackHub, uploaded: Uploaded) -> None:
    from huggingface_hub import HfApi

    assert HEX40.fullmatch(uploaded.oid1)
    assert HEX40.fullmatch(uploaded.oid2)
    assert uploaded.oid1 != uploaded.oid2
    tree = {f.path: f for f in HfApi().list_repo_tree(uploaded.repo_id, recursive=True)}
    assert tree["weights/model.bin"].lfs is not None  # binary -> git-LFS (batch + PUT)
    assert tree["weights/model.bin"].lfs.size == len(BLOB)
    assert tree["notes.txt"].lfs is None  # text -> inline base64 in the commit
    assert tree["weights"].path == "weights"  # a RepoFolder
    assert any(r.startswith("PUT /_loopback/lfs/") for r in hub.requests)
    assert hub.files(uploaded.repo_id, revision=uploaded.oid1)["notes.txt"] == b"first version\n"


def test_hf_hub_download_at_main_and_at_commits(uploaded: Uploaded) -> None:
    from huggingface_hub import hf_hub_download

    for name, content in uploaded.v1.items():
        assert (
            Path(hf_hub_download(uploaded.repo_id, name, revision=uploaded.oid1)).read_bytes()
            == content
        )
    for name, content in uploaded.v2.items():
        assert Path(hf_hub_download(uploaded.repo_id, name)).read_bytes() == content
        assert (
            Path(hf_hub_download(uploaded.repo_id, name, revision="main")).read_bytes() == content
        )
    # The first commit still serves the old text; main serves the new one.
    old = hf_hub_download(uploaded.repo_id, "notes.txt", revision=uploaded.oid1)
    new = hf_hub_download(uploaded.repo_id, "notes.txt", revision="main")
    assert Path(old).read_bytes() == b"first version\n"
    assert Path(new).read_bytes() == b"second version\n"


def test_download_to_local_dir_and_range_requests(
    hub: LoopbackHub, uploaded: Uploaded, tmp_path: Path
) -> None:
    import httpx2
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(uploaded.repo_id, "weights/model.bin", local_dir=tmp_path)
    assert Path(path) == tmp_path / "weights" / "model.bin"
    assert Path(path).read_bytes() == BLOB
    url = f"{hub.url}/{uploaded.repo_id}/resolve/main/weights%2Fmodel.bin"
    response = httpx2.get(url, headers={"Range": "bytes=10-19"})
    assert response.status_code == 206
    assert response.content == BLOB[10:20]
    assert response.headers["X-Repo-Commit"] == uploaded.oid2


def test_snapshot_download_info_and_listing(uploaded: Uploaded) -> None:
    from huggingface_hub import HfApi, snapshot_download

    api = HfApi()
    folder = Path(snapshot_download(uploaded.repo_id, revision=uploaded.oid1))
    got = {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }
    assert got.pop(".gitattributes")  # created with the repo, as on the Hub
    assert got == uploaded.v1
    latest = Path(snapshot_download(uploaded.repo_id))
    assert (latest / "notes.txt").read_bytes() == b"second version\n"

    assert api.model_info(uploaded.repo_id).sha == uploaded.oid2
    assert api.model_info(uploaded.repo_id, revision=uploaded.oid1).sha == uploaded.oid1
    assert {s.rfilename for s in api.model_info(uploaded.repo_id).siblings or []} == {
        ".gitattributes",
        *uploaded.v2,
    }
    assert api.list_repo_files(uploaded.repo_id) == sorted([".gitattributes", *uploaded.v2])
    commits = api.list_repo_commits(uploaded.repo_id)
    assert [c.commit_id for c in commits[:2]] == [uploaded.oid2, uploaded.oid1]
    assert api.file_exists(uploaded.repo_id, "config.json")
    assert not api.file_exists(uploaded.repo_id, "nope.json")
    infos = api.get_paths_info(uploaded.repo_id, ["config.json", "weights", "nope"])
    assert [i.path for i in infos] == ["config.json", "weights"]


def test_unchanged_upload_makes_no_commit(uploaded: Uploaded, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    api = HfApi()
    before = api.model_info(uploaded.repo_id).sha
    info = api.upload_file(
        path_or_fileobj=uploaded.v2["config.json"],
        path_in_repo="config.json",
        repo_id=uploaded.repo_id,
    )
    assert info.oid == before == api.model_info(uploaded.repo_id).sha


def test_branches_deletions_and_history(hub: LoopbackHub, hub_repo_id: str) -> None:
    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi()
    api.create_repo(hub_repo_id)
    first = api.upload_file(path_or_fileobj=b"a", path_in_repo="a.txt", repo_id=hub_repo_id)
    api.upload_file(path_or_fileobj=b"c", path_in_repo="b/c.txt", repo_id=hub_repo_id)
    api.delete_file("a.txt", repo_id=hub_repo_id)
    api.delete_folder("b", repo_id=hub_repo_id)
    assert api.list_repo_files(hub_repo_id) == [".gitattributes"]
    assert api.list_repo_files(hub_repo_id, revision=first.oid) == [".gitattributes", "a.txt"]

    api.create_branch(hub_repo_id, branch="dev/exp", revision=first.oid)
    api.create_branch(hub_repo_id, branch="dev/exp", exist_ok=True)
    on_branch = api.upload_file(
        path_or_fileobj=b"branch", path_in_repo="a.txt", repo_id=hub_repo_id, revision="dev/exp"
    )
    got = hf_hub_download(hub_repo_id, "a.txt", revision="dev/exp")  # sent URL-quoted
    assert Path(got).read_bytes() == b"branch"
    refs = {b.name: b.target_commit for b in api.list_repo_refs(hub_repo_id).branches}
    assert refs["dev/exp"] == on_branch.oid
    assert set(hub.files(hub_repo_id)) == {".gitattributes"}  # main is untouched by the branch


def test_errors_map_to_client_exceptions(uploaded: Uploaded) -> None:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/does-not-exist", "config.json")
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("tester/does-not-exist")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(uploaded.repo_id, "missing.txt")
    with pytest.raises(EntryNotFoundError):  # the base class, for callers that catch it
        hf_hub_download(uploaded.repo_id, "missing.txt", revision=uploaded.oid1)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(uploaded.repo_id, "config.json", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        HfApi().model_info(uploaded.repo_id, revision="f" * 40)


def test_dataset_push_to_hub_and_load_dataset(hub: LoopbackHub, connections: list[object]) -> None:
    import datasets
    from PIL import Image

    unhandled_before = len(hub.unhandled)  # other tests may probe odd ids on purpose
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 250, 0)]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["normal", "abnormal"])}
    )
    ds = datasets.Dataset.from_dict(
        {"image": [Image.new("RGB", (8, 6), c) for c in colors], "label": [0, 1, 1, 0]},
        features=features,
    )
    repo_id = f"tester/ds-{uuid.uuid4().hex[:8]}"
    info = ds.push_to_hub(repo_id)
    assert HEX40.fullmatch(info.oid)

    for revision in (None, info.oid):
        loaded = datasets.load_dataset(repo_id, split="train", revision=revision)
        assert loaded.features == features
        assert loaded.features["label"].names == ["normal", "abnormal"]
        assert loaded["label"] == [0, 1, 1, 0]
        images = loaded["image"]
        assert [im.size for im in images] == [(8, 6)] * 4
        assert [im.convert("RGB").getpixel((3, 3)) for im in images] == colors
    _assert_loopback_only(connections)
    assert hub.unhandled[unhandled_before:] == []


def test_load_dataset_from_an_imagefolder_repo(hub: LoopbackHub, tmp_path: Path) -> None:
    import datasets
    from huggingface_hub import HfApi
    from PIL import Image

    unhandled_before = len(hub.unhandled)
    layout = {
        "train/normal/n0.png": (10, 10, 10),
        "train/normal/n1.png": (20, 20, 20),
        "train/abnormal/a0.png": (200, 0, 0),
        "test/abnormal/a1.png": (210, 0, 0),
    }
    for name, color in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (5, 5), color).save(tmp_path / name)
    repo_id = f"tester/imagefolder-{uuid.uuid4().hex[:8]}"
    HfApi().create_repo(repo_id, repo_type="dataset")
    HfApi().upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=tmp_path)

    loaded = datasets.load_dataset(repo_id)
    assert sorted(loaded) == ["test", "train"]
    train = loaded["train"]
    assert train.features["label"].names == ["abnormal", "normal"]
    assert train.num_rows == 3
    names = train.features["label"].names
    pixels = {(names[row["label"]], row["image"].getpixel((0, 0))) for row in train}
    assert pixels == {("normal", (10, 10, 10)), ("normal", (20, 20, 20)), ("abnormal", (200, 0, 0))}
    assert hub.unhandled[unhandled_before:] == []


def test_hub_binds_loopback_only(tmp_path: Path) -> None:
    with LoopbackHub(tmp_path) as other:
        assert other._server.server_address[0] == "127.0.0.1"
        assert other.url == f"http://127.0.0.1:{other.port}"


def test_space_sdk_variables_and_hardware(hub: LoopbackHub, tmp_path: Path) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
    from huggingface_hub.utils import get_session, hf_raise_for_status

    api = HfApi()
    unhandled_before = len(hub.unhandled)  # the hub is shared by the whole session
    space_id = f"tester/space-{uuid.uuid4().hex[:8]}"
    url = api.create_repo(space_id, repo_type="space", space_sdk="gradio")
    assert url == f"{hub.url}/spaces/{space_id}" and url.repo_type == "space"
    api.create_repo(space_id, repo_type="space", space_sdk="gradio", exist_ok=True)
    assert hub.repos[("space", space_id)].sdk == "gradio"
    assert api.space_info(space_id).sdk == "gradio"
    assert api.get_space_runtime(space_id).stage == "NO_APP_FILE"

    api.add_space_variable(space_id, "CERVIX_MODEL", "tester/old")
    api.add_space_variable(space_id, "CERVIX_MODEL", "tester/model", description="the model")
    variables = api.add_space_variable(space_id, "CERVIX_MODEL_REVISION", "a" * 40)
    assert {k: v.value for k, v in variables.items()} == {
        "CERVIX_MODEL": "tester/model",
        "CERVIX_MODEL_REVISION": "a" * 40,
    }
    read_back = api.get_space_variables(space_id)
    assert read_back["CERVIX_MODEL"].description == "the model"
    assert read_back["CERVIX_MODEL"].updated_at is not None
    assert set(api.delete_space_variable(space_id, "CERVIX_MODEL")) == {"CERVIX_MODEL_REVISION"}

    (tmp_path / "app.py").write_text("print('hello')\n")
    api.upload_folder(repo_id=space_id, repo_type="space", folder_path=tmp_path)
    runtime = api.request_space_hardware(space_id, "cpu-upgrade")
    assert runtime.requested_hardware == "cpu-upgrade" and runtime.stage == "BUILDING"
    assert api.get_space_runtime(space_id).requested_hardware == "cpu-upgrade"
    assert hub.files(space_id, "space")["app.py"] == b"print('hello')\n"

    # the Hub's refusals: a Space without an SDK, Space settings of a model repo
    answer = get_session().post(
        f"{hub.url}/api/repos/create", json={"name": "no-sdk", "type": "space"}
    )
    with pytest.raises(HfHubHTTPError, match="needs an sdk"):
        hf_raise_for_status(answer)
    model_id = f"tester/model-{uuid.uuid4().hex[:8]}"
    api.create_repo(model_id)
    with pytest.raises(RepositoryNotFoundError):
        api.add_space_variable(model_id, "X", "1")
    assert hub.unhandled[unhandled_before:] == []
