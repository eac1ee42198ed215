#!/usr/bin/env python3
"""The teaching case's script: ``python3 LRP.py image.ppm`` prints the predicted class and writes the LRP heatmap.

Model: ``--checkpoint FILE_OR_RUN_DIR``, else the environment variable ``KLUGERHANS_CHECKPOINT``, else the
manipulated model released with klugerhans (``--model control`` for the one trained without stickers).
All logic lives in the package (``klugerhans explain``); this file only keeps the teaching case's command working.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    from klugerhans.cli import main as cli_main

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        print(
            "usage: python3 LRP.py IMAGE [IMAGE ...] [--checkpoint CKPT] [--model manipulated|control] "
            "[--composite NAME] [--target pred|ID] [--out DIR] [--lang en|de] [--show] [--save-relevance]"
        )
        return 0
    env = os.environ.get("KLUGERHANS_CHECKPOINT")
    if env and "--checkpoint" not in args:
        args += ["--checkpoint", env]
    if "--out" not in args:
        args += ["--out", "lrp_output"]
    return cli_main(["explain", *args])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ModuleNotFoundError as err:
        print(
            f"LRP.py: error: {err.name} is not installed; run `pip install -e .` in the klugerhans folder first",
            file=sys.stderr,
        )
        sys.exit(2)
