"""Extract and cache backbone features, on one process or many (scale-out).

A thin shell over :mod:`cervix_hf.cli.extract` (installed as ``cervix-extract``);
``--help`` says more.
"""

from cervix_hf.cli.extract import main, parse_args  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(main())
