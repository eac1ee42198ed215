"""Measure real GTSRB's capture chain and compare the synthetic signs with it.

    python tools/calibrate_synthetic.py --data-dir ../shared/gtsrb            # compare, draw the histograms
    python tools/calibrate_synthetic.py --data-dir ../shared/gtsrb --write    # also rewrite capture.json

Reads the training CSVs (ROI widths, the sizes the camera saw) and the training crops as the loader makes
them (image statistics), renders the default synthetic dataset, prints the Kolmogorov-Smirnov distance per
statistic and writes docs/synthetic_histograms.png (real and synthetic side by side). ``--write`` stores the
measured quantiles in ``src/klugerhans/data/synthetic/capture.json``, which the renderer draws sign sizes from.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from klugerhans.data.dataset import load_dataset
from klugerhans.data.gtsrb.layouts import find_layout
from klugerhans.data.synthetic.capture import CAPTURE_FILE, capture_table, file_width, roi_widths, table_from_payload
from klugerhans.data.synthetic.loader import load_synthetic
from klugerhans.data.synthetic.sheets import save_statistics_figure
from klugerhans.data.synthetic.statistics import STATISTICS, distribution_distance, image_statistics, quantiles
from klugerhans.errors import KlugerhansError
from klugerhans.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
QUANTILES = 101


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "gtsrb"), help="real GTSRB folder")
    parser.add_argument("--write", action="store_true", help=f"rewrite the package's {CAPTURE_FILE}")
    parser.add_argument("--figure", default=str(ROOT / "docs" / "synthetic_histograms.png"), help="PNG to write")
    parser.add_argument("--seed", type=int, default=0, help="synthetic dataset seed")
    args = parser.parse_args(argv)

    layout = find_layout(Path(args.data_dir))
    if layout is None:
        raise SystemExit(f"error: no GTSRB copy found in {args.data_dir}: pass --data-dir")
    _, annotations = layout.read_annotations("train")
    rois = roi_widths(np.array([a.roi for a in annotations]))
    real = load_dataset("gtsrb", data_dir=args.data_dir, size=32).train
    real_stats = image_statistics(real.images)
    payload = {
        "source": f"GTSRB training set ({len(annotations):,} images, CSV ROIs and the loader's 32 px crops); "
        "python tools/calibrate_synthetic.py --write",
        "roi_width_quantiles": [round(float(v), 2) for v in quantiles(rois, QUANTILES)],
        "reference": {k: [round(float(x), 5) for x in quantiles(v, QUANTILES)] for k, v in real_stats.items()},
    }
    if args.write:
        table_from_payload(payload)  # the renderer must be able to read what is written
        path = ROOT / "src" / "klugerhans" / "data" / "synthetic" / CAPTURE_FILE
        atomic_write_text(path, json.dumps(payload, indent=1) + "\n")
        capture_table.cache_clear()
        print(f"wrote {path}")

    widths = np.array([a.width for a in annotations], dtype=np.float64)
    fit = np.array([file_width(r) for r in rois]) - widths
    print(
        f"real: {len(annotations):,} training images; ROI width median {np.median(rois):.0f} px "
        f"(5-95%: {np.percentile(rois, 5):.0f}-{np.percentile(rois, 95):.0f}); file width = the border rule "
        f"within 1 px for {np.mean(np.abs(fit) <= 1):.1%}"
    )
    synthetic = load_synthetic(size=32, seed=args.seed)
    syn_stats = image_statistics(np.concatenate([synthetic.train.images, synthetic.test.images]))
    print("statistic    real 10/50/90%          synthetic 10/50/90%      KS distance")
    for name in STATISTICS:
        r, s = np.percentile(real_stats[name], [10, 50, 90]), np.percentile(syn_stats[name], [10, 50, 90])
        ks = distribution_distance(syn_stats[name], real_stats[name])
        print(f"{name:<12} {r[0]:.3f} {r[1]:.3f} {r[2]:.3f}      {s[0]:.3f} {s[1]:.3f} {s[2]:.3f}      {ks:.3f}")
    try:
        path = save_statistics_figure(args.figure, real_stats, syn_stats, real_label="real GTSRB train")
    except KlugerhansError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
