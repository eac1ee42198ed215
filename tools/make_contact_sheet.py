"""Regenerate docs/contact_sheet.png: all 43 classes, synthetic signs beside real GTSRB training images.

    python tools/make_contact_sheet.py --data-dir ../shared/gtsrb

A thin call into :func:`klugerhans.data.synthetic.sheets.save_contact_sheet`: 4 synthetic signs per class (seed 0, test
streams) and 3 real training images per class from different physical signs, all 32 px shown at 2x.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from klugerhans.data.dataset import load_dataset
from klugerhans.data.synthetic.sheets import save_contact_sheet

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "gtsrb"), help="real GTSRB folder")
    parser.add_argument("--out", default=str(ROOT / "docs" / "contact_sheet.png"), help="PNG to write")
    args = parser.parse_args(argv)
    real = load_dataset("gtsrb", data_dir=args.data_dir, size=32).train
    path = save_contact_sheet(args.out, size=32, real=real, examples=4, seed=0, zoom=2, columns=4, real_examples=3)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
