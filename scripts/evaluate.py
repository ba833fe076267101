"""Evaluate a cervix_hf model: on its own training data, or as external validation.

A thin shell over :mod:`cervix_hf.cli.evaluate` (installed as ``cervix-evaluate``);
``--help`` says more.
"""

from cervix_hf.cli.evaluate import main, parse_args  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(main())
