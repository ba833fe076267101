"""Measure the cell locator on fields with annotated cells, and (with --model) what it does
to the single-cell model's decisions.

A thin shell over :mod:`cervix_hf.cli.evaluate_locator` (installed as ``cervix-evaluate-locator``);
``--help`` says more.
"""

from cervix_hf.cli.evaluate_locator import main, parse_args  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(main())
