"""The app's own temporary files: one folder, pruned by age, deleted on close."""

import csv
import os
import time

from PIL import Image

from cervix_hf.webapp.files import AppFiles, csv_cell


def test_files_live_in_one_folder_and_old_ones_are_pruned():
    files = AppFiles(max_age=600, prune_every=0)
    try:
        png = files.save_png(Image.new("RGB", (4, 4)))
        table = files.save_csv(["a"], [[1]], prefix="cervix-batch-")
        assert os.path.dirname(png) == os.path.dirname(table) == str(files.dir)
        old = time.time() - 601
        os.utime(png, (old, old))
        assert files.prune() == 1
        assert not os.path.exists(png) and os.path.exists(table)
        assert files.prune(now=time.time() + 601) == 1 and not os.path.exists(table)
    finally:
        files.close()
    assert not files.dir.exists()
    files.close()  # idempotent


def test_csv_cells_cannot_become_formulas():
    files = AppFiles(prune_every=0)
    try:
        rows = [["=1+1.png", 0.5, "Abnormal"], ["+cmd", -0.25, None], ["@SUM(A1)", 1, ""]]
        path = files.save_csv(["file", "p", "d"], rows, prefix="t-")
        with open(path, newline="") as fh:
            back = list(csv.reader(fh))
    finally:
        files.close()
    assert [r[0] for r in back[1:]] == ["'=1+1.png", "'+cmd", "'@SUM(A1)"]
    assert back[2][1] == "-0.25"  # numbers stay numbers
    assert csv_cell("-x") == "'-x" and csv_cell("cell.png") == "cell.png"
