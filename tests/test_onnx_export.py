"""The exported ONNX trunk: cached, atomic, recorded by SHA-256, and verified on every load
(cervix_hf.features.onnx_export, cervix_hf.features.onnx_graph). A changed, planted or foreign
graph is refused with an error naming the file, never run on data, never replaced."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cervix_hf.errors import EngineError, OnnxGraphError
from cervix_hf.features import OnnxTrunk, create_backbone, onnx_export, onnx_graph
from cervix_hf.features.onnx_graph import ExportRecord, read_record, record_path, sha256_file

ROOT = Path(__file__).resolve().parents[1]
TINY = "test_resnet"


@pytest.fixture
def exported(tiny_backbone, tmp_path):
    """A fresh export of the tiny backbone's trunk in a cache of this test's own."""
    size = tuple(tiny_backbone.data_config["input_size"])
    path = onnx_export.onnx_trunk_path(tmp_path, TINY, tiny_backbone.weights_sha256, size)
    trunk = load(tiny_backbone, path)
    return path, size, trunk


def load(backbone, path, model=None):
    size = tuple(backbone.data_config["input_size"])
    return OnnxTrunk.load(
        model or backbone.model,
        path,
        size,
        threads=1,
        backbone=backbone.name,
        weights_sha256=backbone.weights_sha256,
    )


def constant_graph(channels: int, h: int, w: int) -> bytes:
    """A planted graph: same input and output names and layout, returns ones whatever the
    image (what the attack in issue 10 did)."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Shape", ["pixel_values"], ["shape"], start=0, end=1),
        helper.make_node(
            "Constant",
            [],
            ["rest"],
            value=helper.make_tensor("rest", TensorProto.INT64, [3], [channels, h, w]),
        ),
        helper.make_node("Concat", ["shape", "rest"], ["out_shape"], axis=0),
        helper.make_node(
            "ConstantOfShape",
            ["out_shape"],
            ["feature_map"],
            value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]),
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "planted",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["N", 3, 160, 160])],
        [helper.make_tensor_value_info("feature_map", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def forge_record(path: Path, tiny_backbone) -> None:
    """A record that matches the planted file's bytes (an attacker who also rewrote it)."""
    record = ExportRecord(
        sha256=sha256_file(path),
        size_bytes=path.stat().st_size,
        backbone=TINY,
        weights_sha256=tiny_backbone.weights_sha256,
        input_size=(3, 160, 160),
        opset=17,
        export_format=onnx_export.EXPORT_FORMAT,
    )
    onnx_graph.write_record(path, record)


def no_session(*args, **kwargs):
    raise AssertionError("a session was created for a graph that failed its check")


# -- cached, atomic, recorded ----------------------------------------------------------------


def test_export_is_cached_recorded_and_reused(tiny_backbone, exported, monkeypatch):
    path, size, trunk = exported
    assert path.exists() and path.parent.name == "onnx"
    assert tiny_backbone.weights_sha256[:16] in path.name and "160x160" in path.name
    assert f"opset{onnx_export.ONNX_OPSET}" in path.name
    record = read_record(path)
    assert record == trunk.record
    assert record.sha256 == sha256_file(path) and record.size_bytes == path.stat().st_size
    assert (record.backbone, record.weights_sha256, record.input_size) == (
        TINY,
        tiny_backbone.weights_sha256,
        (3, 160, 160),
    )
    assert record.agreement_cosine > onnx_graph.AGREEMENT_COSINE
    assert record.versions["torch"] and record.versions["onnx"]
    mtime = path.stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_export, "export_trunk", no_export)
    again = load(tiny_backbone, path)
    assert again.path == path and path.stat().st_mtime_ns == mtime
    assert not list(path.parent.glob("*.partial")) and not list(path.parent.glob(".*partial"))
    other = onnx_export.onnx_trunk_path(path.parents[1], TINY, "f" * 64, size)
    assert other != path  # other weights, other file


def test_failed_or_disagreeing_export_leaves_no_file(tiny_backbone, tmp_path, monkeypatch):
    size = tuple(tiny_backbone.data_config["input_size"])
    path = onnx_export.onnx_trunk_path(tmp_path, TINY, tiny_backbone.weights_sha256, size)

    def broken(model, out, input_size):
        out.write_bytes(b"half a file")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(onnx_export, "export_trunk", broken)
    with pytest.raises(EngineError, match="exporter crashed"):
        load(tiny_backbone, path)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name + ".lock"]
    monkeypatch.undo()

    other = create_backbone(TINY, pretrained=False, init_seed=7, device="cpu", engine="torch")
    real_export = onnx_export.export_trunk
    monkeypatch.setattr(
        onnx_export,
        "export_trunk",
        lambda model, out, input_size: real_export(other.model, out, size),
    )
    with pytest.raises(EngineError, match="disagrees with torch"):
        load(tiny_backbone, path)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name + ".lock"]


# -- verified on every load: refused, named, never run, never replaced -----------------------


def test_a_changed_byte_is_refused_before_any_session(tiny_backbone, exported, monkeypatch):
    path, _, _ = exported
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit somewhere in the weights
    path.write_bytes(bytes(data))
    monkeypatch.setattr(onnx_graph, "create_session", no_session)
    with pytest.raises(OnnxGraphError, match="does not match its recorded SHA-256") as info:
        load(tiny_backbone, path)
    message = str(info.value)
    assert str(path) in message and "Delete" in message and "was not run" in message
    assert path.read_bytes() == bytes(data)  # left for the user to look at, not replaced
    path.write_bytes(bytes(data) + b"\0")  # another size: refused before reading it all
    with pytest.raises(OnnxGraphError, match="its record says"):
        load(tiny_backbone, path)


def test_a_planted_graph_without_a_record_is_refused(tiny_backbone, tmp_path, monkeypatch):
    monkeypatch.setenv("CERVIX_HF_CACHE", str(tmp_path))
    size = tuple(tiny_backbone.data_config["input_size"])
    path = onnx_export.onnx_trunk_path(tmp_path, TINY, tiny_backbone.weights_sha256, size)
    path.parent.mkdir(parents=True)
    planted = constant_graph(96, 5, 5)
    path.write_bytes(planted)
    monkeypatch.setattr(onnx_graph, "create_session", no_session)
    with pytest.raises(OnnxGraphError, match="has no export record") as info:
        load(tiny_backbone, path)
    assert str(path) in str(info.value)
    # engine "auto" does not fall back to torch around a planted file: the user must know
    with pytest.raises(OnnxGraphError, match="has no export record"):
        create_backbone(TINY, pretrained=False, init_seed=0, device="cpu")
    record_path(path).write_text("{not json")
    with pytest.raises(OnnxGraphError, match="invalid export record"):
        load(tiny_backbone, path)
    assert path.read_bytes() == planted


def test_a_planted_graph_with_a_forged_record_fails_the_torch_check(tiny_backbone, tmp_path):
    size = tuple(tiny_backbone.data_config["input_size"])
    path = onnx_export.onnx_trunk_path(tmp_path, TINY, tiny_backbone.weights_sha256, size)
    path.parent.mkdir(parents=True)
    path.write_bytes(constant_graph(96, 5, 5))
    forge_record(path, tiny_backbone)
    # the planted graph really runs and answers a constant, whatever the image
    session, _ = onnx_graph.verified_session(path, 1)
    out = session.run(None, {"pixel_values": np.random.rand(2, 3, 160, 160).astype(np.float32)})
    assert out[0].shape == (2, 96, 5, 5) and np.all(out[0] == 1)
    with pytest.raises(OnnxGraphError, match="does not compute this backbone's feature map"):
        load(tiny_backbone, path)


def test_a_graph_recorded_for_other_weights_is_refused(tiny_backbone, exported):
    path, _, _ = exported
    other = create_backbone(TINY, pretrained=False, init_seed=3, device="cpu", engine="torch")
    with pytest.raises(OnnxGraphError, match="records other weights"):
        load(other, path, model=other.model)


def test_records_are_checked_field_by_field(exported):
    _, _, trunk = exported
    good = trunk.record.to_dict()
    assert ExportRecord.from_dict(json.loads(json.dumps(good))) == trunk.record
    for field, bad in [
        ("sha256", "ab" * 16),
        ("sha256", 12),
        ("size_bytes", "1"),
        ("size_bytes", True),
        ("input_size", [3, 160]),
        ("versions", {"torch": 2}),
        ("format", 99),
    ]:
        with pytest.raises(ValueError):
            ExportRecord.from_dict({**good, field: bad})
    with pytest.raises(ValueError, match="unknown"):
        ExportRecord.from_dict({**good, "extra": 1})


def test_a_verified_graph_runs_without_torch(exported):
    """The torch-free serving path can verify and run a graph with these functions."""
    path, _, _ = exported
    code = (
        "import sys, numpy as np\n"
        "from cervix_hf.features.onnx_graph import verified_session\n"
        f"session, record = verified_session({str(path)!r}, 1)\n"
        "x = np.zeros((1, 3, 160, 160), np.float32)\n"
        "print(session.run(None, {'pixel_values': x})[0].shape, record.backbone)\n"
        "assert not {'torch', 'timm', 'torchvision'} & set(sys.modules), 'torch imported'\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == f"(1, 96, 5, 5) {TINY}"


def test_a_graph_swapped_while_it_loads_is_refused(tiny_backbone, exported, monkeypatch):
    path, _, _ = exported
    real = onnx_graph.create_session

    def swapping(source, threads):
        session = real(source, threads)
        data = path.read_bytes()
        path.unlink()
        path.write_bytes(data)  # same bytes, another file: what ONNX Runtime read is unknown
        return session

    monkeypatch.setattr(onnx_graph, "create_session", swapping)
    with pytest.raises(OnnxGraphError, match="replaced or changed while it was being loaded"):
        load(tiny_backbone, path)
