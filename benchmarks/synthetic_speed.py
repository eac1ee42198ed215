"""Rendering speed of the synthetic GTSRB (``klugerhans.data.synthetic.loader``) in one process.

Renders the default dataset's mix (train images in tracks, test images each a different sign) with the
default variation, at a reduced count per class so that one repeat takes a few seconds, after one warm-up
repeat (templates are drawn and cached once per process). Prints wall-clock and CPU-time rates; the CPU rate
is what the renderer costs, the wall rate what a user sees on a busy machine. Usage::

    python benchmarks/synthetic_speed.py [--size 32] [--train-per-class 60] [--test-per-class 20] [--repeats 3]

The last line is ``synthetic_images_per_s: X`` (wall clock, best repeat; the goal is >= 1000 at S = 32).
"""

from __future__ import annotations

import argparse
import time

from klugerhans.data.synthetic.loader import SyntheticConfig, load_synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=32, help="image side S")
    parser.add_argument("--train-per-class", type=int, default=60, help="training images per class")
    parser.add_argument("--test-per-class", type=int, default=20, help="test images per class")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (the best one counts)")
    args = parser.parse_args()

    defaults = SyntheticConfig()
    config = SyntheticConfig(train_per_class=args.train_per_class, test_per_class=args.test_per_class)
    load_synthetic(size=args.size, config=config, max_images=500)  # warm-up: draw and cache the templates
    walls, cpus = [], []
    for seed in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        ds = load_synthetic(size=args.size, seed=seed, config=config)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    n = len(ds.train) + len(ds.test)
    best_wall, best_cpu = min(walls), min(cpus)
    print(
        f"rendered {n:,} images at {args.size}x{args.size} ({len(ds.train):,} train in tracks of "
        f"{config.frames_per_track}, {len(ds.test):,} test), best of {args.repeats} repeats"
    )
    print(f"wall clock: {best_wall:.2f} s  ({n / best_wall:,.0f} images/s)")
    print(f"CPU time:   {best_cpu:.2f} s  ({n / best_cpu:,.0f} images/s of CPU)")
    full = 43 * (defaults.train_per_class + defaults.test_per_class)
    print(f"default dataset ({full:,} images) would take about {full * best_wall / n:.1f} s")
    print(f"ratio to the 1000 images/s goal: {n / best_wall / 1000:.2f}")
    print(f"synthetic_images_per_s: {n / best_wall:.0f}")


if __name__ == "__main__":
    main()
