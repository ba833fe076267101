"""Train a cervix_hf model: load -> split -> features -> head -> evaluate -> save -> push.

A thin shell over :mod:`cervix_hf.cli.train` (installed as ``cervix-train``);
``--help`` says more.
"""

from cervix_hf.cli.train import main, parse_args  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(main())
