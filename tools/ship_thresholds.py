"""Ship the audit's flag thresholds from a finished benchmark suite's clean models.

    python tools/ship_thresholds.py runs/bench-small [--command "klugerhans bench --suite small --out DIR"]

Reads ``bench.json`` (``klugerhans bench --summarize`` writes it), takes the shipped audit's threshold (one value for
every placement: the broad hijack rate does not depend on where the window goes) and writes
``src/klugerhans/audit/thresholds.json`` (:mod:`klugerhans.audit.thresholds`). Prints one line per placement.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from klugerhans.audit.thresholds import SHIPPED_FILE, thresholds_payload
from klugerhans.bench.run import PRIMARY
from klugerhans.errors import KlugerhansError
from klugerhans.io import atomic_write_text

DETECTORS = {"random": PRIMARY, "same": PRIMARY}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", help="suite folder with bench.json")
    parser.add_argument("--command", default="klugerhans bench --suite small --out DIR", help="recorded command")
    parser.add_argument("--out", default=str(SHIPPED_FILE), help="thresholds file to write")
    args = parser.parse_args(argv)
    path = Path(args.bench) / "bench.json"
    try:
        bench = json.loads(path.read_text())
        payload = thresholds_payload(bench, DETECTORS, args.command)
    except (OSError, ValueError, KlugerhansError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    atomic_write_text(args.out, json.dumps(payload, indent=1) + "\n")
    for placement, t in payload.items():
        print(f"shipped_threshold_{placement}: {t['value']:.6g} (clean max {t['clean_max']:.4g}, {t['n_clean']} clean)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
