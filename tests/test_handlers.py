"""What the endpoints compute, without Gradio: batches stream, errors name files, memory stays
bounded whatever the batch holds."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cervix_hf.errors import RequestError
from cervix_hf.webapp import AppFiles, BatchLimits, predict_api, predict_batch
from tests.test_archives import lie_about_size, make_zip
from tests.test_uploads import png_bytes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(trained_model_dir):
    from cervix_hf import CervixClassifier

    return CervixClassifier.from_pretrained(trained_model_dir)


@pytest.fixture
def files():
    out = AppFiles(prune_every=0)
    yield out
    out.close()


def test_batch_rows_match_single_predictions_and_errors_stay_per_file(model, files, tmp_path):
    rng = np.random.default_rng(0)
    cells = []
    for i in range(3):
        path = tmp_path / f"cell{i}.png"
        Image.fromarray(rng.integers(60, 200, (48, 48, 3), dtype=np.uint8)).save(path)
        cells.append(str(path))
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(lie_about_size(make_zip([("b.png", b"\0" * (30 * 2**20))]), 1024))
    mixed = tmp_path / "mixed.zip"
    mixed.write_bytes(make_zip([("in.png", Path(cells[2]).read_bytes()), ("bad.png", b"nope")]))
    result = predict_batch(model, [cells[0], str(bomb), cells[1], str(mixed)], files)
    by_name = {row[0]: row for row in result.rows}
    assert list(by_name) == [
        "cell0.png",
        "bomb.zip/b.png",
        "cell1.png",
        "mixed.zip/in.png",
        "mixed.zip/bad.png",
    ]
    for name, src in [
        ("cell0.png", cells[0]),
        ("cell1.png", cells[1]),
        ("mixed.zip/in.png", cells[2]),
    ]:
        assert by_name[name][1] == pytest.approx(predict_api(model, src)["p_abnormal"], abs=1e-6)
        assert by_name[name][4] == ""
    assert "expands beyond" in by_name["bomb.zip/b.png"][4]
    assert by_name["mixed.zip/bad.png"][4].startswith("not an image file we can read")
    assert Path(result.csv_path).parent == files.dir


def test_batch_stops_at_its_file_limit(model, files, tmp_path):
    path = tmp_path / "cell.png"
    path.write_bytes(png_bytes())
    result = predict_batch(model, [str(path)] * 5, files, BatchLimits(max_files=3))
    assert len(result.rows) == 4 and "at most 3 files" in result.rows[-1][4]
    assert all(r[4] == "" for r in result.rows[:3])


def test_no_files_is_a_clear_request_error(model, files):
    with pytest.raises(RequestError, match="No files given"):
        predict_batch(model, [], files)
    with pytest.raises(RequestError, match="No image given"):
        predict_api(model, None)


def test_a_png_with_a_zip_appended_gets_the_same_answer_on_both_endpoints(model, files, tmp_path):
    path = tmp_path / "polyglot.png"
    path.write_bytes(png_bytes() + make_zip([("other.png", png_bytes((0, 0, 0)))]))
    single = predict_api(model, str(path))["p_abnormal"]
    (row,) = predict_batch(model, [str(path)], files).rows
    assert row[0] == "polyglot.png" and row[1] == pytest.approx(single, abs=1e-6)


MEMORY_PROBE = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from cervix_hf import CervixClassifier
    from cervix_hf.webapp import AppFiles, BatchLimits, predict_batch

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) // 1024

    model = CervixClassifier.from_pretrained({model!r})
    files = AppFiles(prune_every=0)
    predict_batch(model, [{small!r}], files)  # warm-up: imports, session, buffers
    before = status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets the peak (VmHWM) to the current RSS
    rows = predict_batch(model, [{big!r}] * {n}, files, BatchLimits(max_files=100)).rows
    assert all(r[4] == "" for r in rows), rows
    print(status("VmHWM:") - before)
    files.close()
    """
)


def test_batch_memory_does_not_grow_with_the_number_of_large_images(trained_model_dir, tmp_path):
    from cervix_hf.synthetic import make_cell

    big = tmp_path / "big.png"  # one cell blown up to 20 Mpx: 60 MB decoded, a small file
    cell = make_cell("Parabasal", np.random.default_rng(0))
    cell.resize((5000, 4000), Image.Resampling.BILINEAR).save(big, compress_level=1)
    small = tmp_path / "small.png"
    small.write_bytes(png_bytes())

    def growth(n: int) -> int:
        code = MEMORY_PROBE.format(
            root=str(ROOT), model=str(trained_model_dir), small=str(small), big=str(big), n=n
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True
        )
        return int(out.stdout.strip().splitlines()[-1])

    two, twelve = growth(2), growth(12)
    # one decoded image is ~60 MB; holding them would add ~600 MB for ten more
    assert two >= 50, "the probe must see at least one decoded image"
    assert twelve - two < 100, (two, twelve)
