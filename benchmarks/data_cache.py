"""Loading real GTSRB from the decode cache vs decoding it from the source files.

Both timings are full ``load_gtsrb`` calls on the same data in the same run, into a fresh temporary cache:
the first decodes every image (and writes the cache), the others are cache hits (median of ``--repeats``).
Usage::

    python benchmarks/data_cache.py [--data-dir ../shared/gtsrb] [--size 32] [--repeats 5] [--workers N]

The last line is ``cache_speedup: X.X`` (decode time over cached load time; the goal is >= 5).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from klugerhans.data.gtsrb.loader import load_gtsrb

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "gtsrb"  # ../shared/gtsrb from the repo root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="GTSRB folder (default ../shared/gtsrb)")
    parser.add_argument("--size", type=int, default=32, help="image side S")
    parser.add_argument("--repeats", type=int, default=5, help="timed cache hits")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="klugerhans-bench-") as cache_dir:
        start = time.perf_counter()
        built = load_gtsrb(
            data_dir=args.data_dir, size=args.size, cache_dir=cache_dir, workers=args.workers, progress=False
        )
        decode_s = time.perf_counter() - start
        assert built.info["cache_state"] == "built"
        hits = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            cached = load_gtsrb(data_dir=args.data_dir, size=args.size, cache_dir=cache_dir, progress=False)
            hits.append(time.perf_counter() - start)
            assert cached.info["cache_state"] == "hit"
        assert (cached.train.images == built.train.images).all()
    load_s = statistics.median(hits)
    n = len(built.train) + len(built.test)
    print(f"data: {built.info['root']} ({built.info['layout']}), {n:,} images at {args.size}x{args.size}")
    print(f"decode (first load, builds the cache): {decode_s:.2f} s  ({n / decode_s:,.0f} images/s)")
    print(f"cached load (median of {args.repeats}): {load_s:.3f} s")
    print(f"cache_speedup: {decode_s / load_s:.1f}")


if __name__ == "__main__":
    main()
