"""The Gradio app, driven as programs use it: gradio_client against a loopback server."""

import ast
import concurrent.futures
import csv
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cervix_hf.errors import ModelLoadError
from cervix_hf.serving import check_revision


@pytest.fixture
def app_files():
    from cervix_hf.webapp import AppFiles

    files = AppFiles(prune_every=0)
    yield files
    files.close()


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served[0], verbose=False)


def test_predict_returns_the_documented_structure(client, served):
    from gradio_client import handle_file

    _, model, examples = served
    details = client.predict(handle_file(examples[3]), api_name="/predict")
    assert set(details) == {
        "label",
        "p_abnormal",
        "probabilities",
        "threshold",
        "unusual",
        "novelty_score",
        "cell_types",
        "logit",
        "heatmap",
        "model",
        "disclaimer",
        "field_hint",
    }
    assert details["label"] in ("Normal", "Abnormal")
    assert set(details["probabilities"]) == {"Normal", "Abnormal"}
    assert set(details["cell_types"]) == set(model.config.cell_types)
    expected = model.predict_proba([examples[3]])[0, 1]
    assert details["p_abnormal"] == pytest.approx(expected, rel=1e-4)
    assert details["probabilities"]["Abnormal"] == details["p_abnormal"]
    assert isinstance(details["unusual"], bool) and details["novelty_score"] > 0
    assert details["threshold"] == model.config.decision_threshold
    assert "not a diagnostic device" in details["disclaimer"]


def test_predict_heatmap_is_the_exact_contribution_grid(client, served):
    from gradio_client import handle_file

    _, model, examples = served
    heat = client.predict(handle_file(examples[0]), api_name="/predict")["heatmap"]
    grid = np.array(heat["contributions"])
    local = model.analyze([examples[0]])[0]
    assert grid.shape == local.contributions.shape and grid.ndim == 2
    np.testing.assert_allclose(grid, local.contributions, rtol=1e-4, atol=1e-6)
    # the documented identity, from the JSON alone: mean + intercept == the head's logit
    p = model.predict_proba([examples[0]])[0, 1]
    assert grid.mean() + heat["intercept"] == pytest.approx(np.log(p / (1 - p)), abs=1e-3)
    assert heat["of"] == "logit"


def test_page_event_shows_label_decision_picture_and_types(served, app_files):
    from cervix_hf.webapp import predict_page

    _, model, examples = served
    r = predict_page(model, examples[3], app_files)
    assert r.probabilities == r.details["probabilities"]
    assert set(r.probabilities) == {"Normal", "Abnormal"}
    assert f"Decision: **{r.details['label']}**" in r.decision
    assert Image.open(r.heatmap).size == (160, 160)
    assert r.heatmap.startswith(str(app_files.dir))
    assert r.cell_types == r.details["cell_types"]
    assert set(r.cell_types) == set(model.config.cell_types)


def test_bad_file_gives_a_readable_error(client, tmp_path):
    from gradio_client import handle_file

    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    with pytest.raises(Exception, match="not an image"):
        client.predict(handle_file(str(bad)), api_name="/predict")


def test_batch_table_csv_and_per_file_errors(client, served, tmp_path):
    from gradio_client import handle_file

    _, model, examples = served
    zpath = tmp_path / "cells.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(examples[1], "synthetic_Parabasal.png")
        zf.write(examples[0], "a/first.png")
        zf.writestr("broken.png", b"\x89PNG truncated")
        zf.writestr("empty.bmp", b"")
    table, csv_file = client.predict(handle_file(str(zpath)), api_name="/predict_batch")
    rows = table["data"]
    assert table["headers"] == ["file", "p_abnormal", "decision", "unusual", "error"]
    by_name = {r[0]: r for r in rows}
    assert set(by_name) == {
        "cells.zip/synthetic_Parabasal.png",
        "cells.zip/a/first.png",
        "cells.zip/broken.png",
        "cells.zip/empty.bmp",
    }
    good = by_name["cells.zip/a/first.png"]
    assert good[1] == pytest.approx(model.predict_proba([examples[0]])[0, 1], rel=1e-4)
    assert good[4] == ""
    empty = by_name["cells.zip/empty.bmp"]
    assert "empty" in empty[4] and empty[1] is None
    assert by_name["cells.zip/broken.png"][4]
    with open(csv_file, newline="") as fh:
        csv_rows = list(csv.reader(fh))
    assert csv_rows[0] == table["headers"] and len(csv_rows) == len(rows) + 1
    # one image is a batch of one
    table, _ = client.predict(handle_file(examples[2]), api_name="/predict_batch")
    assert [r[0] for r in table["data"]] == [Path(examples[2]).name]


def test_the_pages_batch_takes_several_images_and_zips(served, tmp_path, app_files):
    from cervix_hf.webapp import predict_batch

    _, model, examples = served
    zpath = tmp_path / "more.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(examples[0], "x.png")
    result = predict_batch(model, [examples[1], str(zpath)], app_files)
    assert [r[0] for r in result.rows] == [Path(examples[1]).name, "more.zip/x.png"]


def test_unusual_images_are_flagged_through_the_api(client, tmp_path):
    from gradio_client import handle_file

    noise = tmp_path / "noise.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(noise)
    details = client.predict(handle_file(str(noise)), api_name="/predict")
    assert details["unusual"] is True and details["novelty_score"] > 1.0


def test_page_shows_the_unusual_image_warning(served, tmp_path, app_files):
    from cervix_hf.webapp import predict_page

    _, model, _ = served
    flat = tmp_path / "flat.png"
    Image.new("RGB", (96, 96), (200, 200, 200)).save(flat)
    assert "Unusual image" in predict_page(model, str(flat), app_files).decision


def test_concurrent_callers(served):
    from gradio_client import Client, handle_file

    url, _, examples = served

    def caller(i):
        c = Client(url, verbose=False)
        out = []
        for j in range(25):
            out.append(c.predict(handle_file(examples[(i + j) % 5]), api_name="/predict"))
        return out

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = [d for r in pool.map(caller, range(8)) for d in r]
    assert len(results) == 200
    assert all(
        0.0 <= d["p_abnormal"] <= 1.0 and d["label"] in ("Normal", "Abnormal") for d in results
    )


def test_revision_must_be_a_full_sha():
    assert check_revision(None) is None
    assert check_revision("a" * 40) == "a" * 40
    for bad in ("main", "abc123", "A" * 40):
        with pytest.raises(ModelLoadError, match="40-character"):
            check_revision(bad)


def test_api_lists_exactly_the_three_documented_endpoints(client):
    from cervix_hf.webapp import API_DISCLAIMER

    api = client.view_api(print_info=False, return_format="dict")
    endpoints = api["named_endpoints"]
    assert set(endpoints) == {"/predict", "/predict_batch", "/analyze_field"}
    assert not api["unnamed_endpoints"]

    def names(endpoint, part, key):
        return [p[key] for p in endpoints[endpoint][part]]

    assert names("/predict", "parameters", "parameter_name") == ["image_file"]
    assert names("/predict", "returns", "label") == ["prediction"]
    assert names("/predict_batch", "parameters", "parameter_name") == ["archive"]
    assert names("/predict_batch", "returns", "label") == ["Results", "CSV"]
    assert names("/analyze_field", "parameters", "parameter_name") == ["field_image"]
    assert names("/analyze_field", "returns", "label") == ["field"]
    shown = client.view_api(print_info=False, return_format="str")
    assert "-> prediction" in shown and "-> (results, csv)" in shown
    for endpoint in endpoints.values():
        assert API_DISCLAIMER in endpoint["description"]


def test_mcp_schema_lists_the_tools_with_their_docstrings(served):
    import httpx

    from cervix_hf.webapp import API_DISCLAIMER

    schema = httpx.get(served[0] + "gradio_api/mcp/schema", timeout=30).json()
    tools = {t["name"]: t for t in schema}
    assert set(tools) == {"predict", "predict_batch", "analyze_field"}
    assert "cells_found" in tools["analyze_field"]["description"]
    single, batch = tools["predict"], tools["predict_batch"]
    for tool in (single, batch):
        assert API_DISCLAIMER in tool["description"] and "Returns:" in tool["description"]
    assert "p_abnormal" in single["description"] and "unusual" in single["description"]
    assert "csv: the same table" in batch["description"]
    image = single["inputSchema"]["properties"]["image_file"]
    assert "one image of a single cell" in image["description"]
    assert single["inputSchema"]["required"] == ["image_file"]
    assert "a zip archive" in batch["inputSchema"]["properties"]["archive"]["description"]


def _mcp_call(url: str, tool: str, arguments: dict):
    """Call one tool of the app's MCP server over streamable HTTP, as an MCP client does."""
    import asyncio

    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def call():
        async with (
            streamable_http_client(url + "gradio_api/mcp/") as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await session.call_tool(tool, arguments)

    return asyncio.run(call())


def _data_url(path) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def test_mcp_predict_gives_the_answer_gradio_client_gives(client, served):
    from gradio_client import handle_file

    url, model, examples = served
    result = _mcp_call(url, "predict", {"image_file": _data_url(examples[3])})
    assert not result.isError
    (content,) = result.content
    via_mcp = ast.literal_eval(content.text)  # the tool's text is the dict /predict returns
    via_client = client.predict(handle_file(examples[3]), api_name="/predict")
    assert via_mcp["probabilities"] == pytest.approx(via_client["probabilities"], abs=1e-9)
    assert via_mcp["p_abnormal"] == pytest.approx(via_client["p_abnormal"], abs=1e-9)
    assert via_mcp["label"] == via_client["label"]
    expected = model.predict_proba([examples[3]])[0, 1]
    assert via_mcp["p_abnormal"] == pytest.approx(expected, rel=1e-4)


def test_mcp_predict_batch_takes_a_zip(served, tmp_path):
    import base64

    url, model, examples = served
    zpath = tmp_path / "two.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(examples[0], "a.png")
        zf.write(examples[1], "b.png")
    data = "data:application/zip;base64," + base64.b64encode(zpath.read_bytes()).decode()
    result = _mcp_call(url, "predict_batch", {"archive": data})
    assert not result.isError
    # one text: the outputs (the table, then the CSV file's record) as gradio_client gets them
    table, csv_file = ast.literal_eval(result.content[0].text)
    rows = table["data"]
    assert [row[0].split("/", 1)[1] for row in rows] == ["a.png", "b.png"]
    expected = model.predict_proba([examples[0], examples[1]])[:, 1]
    np.testing.assert_allclose([row[1] for row in rows], expected, atol=1e-6)
    assert csv_file["url"].endswith(".csv")


def test_mcp_errors_are_our_messages(served, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    result = _mcp_call(served[0], "predict", {"image_file": _data_url(bad)})
    assert result.isError
    text = " ".join(c.text for c in result.content)
    assert "not an image" in text and "/tmp" not in text and "Traceback" not in text


def test_readme_documents_every_key_predict_returns(client, served):
    from pathlib import Path

    from gradio_client import handle_file

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    api_block = readme.split("### API (`gradio_client`)")[1].split("```")[1]
    result = client.predict(handle_file(served[2][1]), api_name="/predict")
    keys = [*result, *result["heatmap"], *result["model"]]
    missing = [k for k in keys if f'"{k}"' not in api_block]
    assert not missing, f"README's API example does not show {missing}"


def test_a_failing_backbone_is_logged_and_the_app_keeps_serving(client, served, caplog):
    from gradio_client import handle_file

    from cervix_hf.webapp import INTERNAL_ERROR

    _, model, examples = served
    original = model.backbone.feature_map

    def broken(batch):
        raise RuntimeError("session exploded at /srv/secret/path")

    model.backbone.feature_map = broken
    try:
        with caplog.at_level("ERROR"), pytest.raises(Exception) as caught:
            client.predict(handle_file(examples[0]), api_name="/predict")
    finally:
        model.backbone.feature_map = original
    assert INTERNAL_ERROR in str(caught.value) and "/srv/secret" not in str(caught.value)
    assert "session exploded" in caplog.text and "Traceback" in caplog.text
    again = client.predict(handle_file(examples[0]), api_name="/predict")
    assert again["label"] in ("Normal", "Abnormal")


def test_errors_name_the_upload_not_the_server_path(client, tmp_path):
    from gradio_client import handle_file

    bad = tmp_path / "truncated.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(str(bad)), api_name="/predict")
    message = str(caught.value)
    assert "truncated.png" in message and "/tmp" not in message and "gradio" not in message


def test_batch_csv_lives_in_the_apps_folder_and_is_escaped(client, served, tmp_path):
    from gradio_client import handle_file

    _, _, examples = served
    zpath = tmp_path / "@cells.zip"  # a name a spreadsheet would read as a formula
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(examples[0], "a.png")
    table, csv_file = client.predict(handle_file(str(zpath)), api_name="/predict_batch")
    assert table["data"][0][0] == "@cells.zip/a.png"
    assert Path(csv_file).name.startswith("cervix-batch-")
    with open(csv_file, newline="") as fh:
        assert list(csv.reader(fh))[1][0] == "'@cells.zip/a.png"
