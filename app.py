"""cervix_hf demo app (Gradio): ``python app.py`` locally (a Space runs the ``app.py`` that
``python -m cervix_hf.space`` builds).

The model comes from ``--model`` or ``CERVIX_MODEL`` (a Hub repo id or a local directory),
pinned with ``CERVIX_MODEL_REVISION`` (a full commit sha; ``--allow-unpinned`` /
``CERVIX_ALLOW_UNPINNED=1`` serves a repo's moving head instead, with a warning on the page).
With nothing configured the app serves an offline demo model (random-init backbone, synthetic
cells), labelled as such, built once in a child process on the first start. One process,
no torch: the model runs on ONNX Runtime. Binds 127.0.0.1 unless ``--host`` or
``GRADIO_SERVER_NAME`` says otherwise. ``python app.py --help`` lists the flags; the code is
:mod:`cervix_hf.app`.
"""

from cervix_hf.app import main, parse_args, run

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    run()
