"""Publish the demo as a Hugging Face Space serving one pinned model (no torch in the Space).

    python scripts/deploy_space.py MODEL --space OWNER/NAME [--revision SHA]
        [--model-repo OWNER/NAME] [--hardware FLAVOR] [--private] [--dry-run OUT_DIR]

The same as ``python -m cervix_hf.space`` (:mod:`cervix_hf.space`); ``--help`` says more.
"""

from cervix_hf.space import main, parse_args  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(main())
