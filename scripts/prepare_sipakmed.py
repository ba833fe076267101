"""Turn the extracted SIPaKMeD download into a ``datasets`` dataset (saved, optionally pushed).

A thin shell over :mod:`cervix_hf.cli.prepare` (installed as ``cervix-prepare``);
``--help`` says more.
"""

from cervix_hf.cli.prepare import main, parse_args  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(main())
