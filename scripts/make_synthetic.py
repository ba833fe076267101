"""Write a synthetic Pap-smear-like data set in the raw SIPaKMeD download layout.

A thin shell over :mod:`cervix_hf.cli.synthetic` (installed as ``cervix-synthetic``);
``--help`` says more.
"""

from cervix_hf.cli.synthetic import main, parse_args  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(main())
