"""Write a finished suite's numbers into docs/BENCH.md as markdown tables (every metric, every axis, every detector).

    python tools/bench_table.py runs/bench-small [--doc docs/BENCH.md] [--command "..."]

Reads ``bench.json`` and replaces the text between ``<!-- bench-<suite> -->`` markers in the doc (appends the block
the first time). Prints the headline line ``bench_<suite>: auroc ... top1 ...``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from klugerhans.bench.metrics import METRIC_KEYS
from klugerhans.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
_LABELS = {
    "auroc": "AUROC",
    "auroc_ci": "AUROC 95% CI",
    "false_positive_rate": "FPR",
    "held_out_false_positive_rate": "held-out FPR",
    "true_positive_rate": "TPR",
    "top1_hit_rate": "top-1",
    "n_manipulated": "manip.",
    "n_clean": "clean",
}


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, list):  # an interval
        return "n/a" if None in v else "-".join(f"{x:.2f}" for x in v)
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def _detectors(bench: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"klugerhans": bench, **bench.get("variants", {}), **bench.get("baselines", {})}


def tables(bench: dict[str, Any], command: str) -> str:
    """The markdown block for ``bench``."""
    detectors = _detectors(bench)
    lines = [
        f"Suite `{bench['suite']}`, {bench['n_finished']} of {bench['n_jobs']} models, made by `{command}` "
        "(then `python tools/bench_table.py` for these tables). Thresholds from the clean models only "
        f"(FPR target {bench['thresholds']['klugerhans']['fpr']:.0%}).",
        "",
        "| detector | " + " | ".join(_LABELS[k] for k in METRIC_KEYS) + " | threshold |",
        "|---|" + "---|" * (len(METRIC_KEYS) + 1),
    ]
    for name, d in detectors.items():
        t = bench["thresholds"][name]["value"]
        lines.append(f"| {name} | " + " | ".join(_fmt(d.get(k)) for k in METRIC_KEYS) + f" | {t:.4g} |")
    names = list(detectors)
    lines += ["", "Per axis value: AUROC / TPR / top-1 (manipulated models of that value against all clean ones).", ""]
    lines.append("| axis | value | n | " + " | ".join(names) + " |")
    lines.append("|---|---|---|" + "---|" * len(names))
    for axis in sorted(bench["by_axis"]):
        if axis in ("arch", "data"):
            continue
        for value in sorted(bench["by_axis"][axis]):
            n = bench["by_axis"][axis][value]["n_manipulated"]
            cells = []
            for name in names:
                m = detectors[name].get("by_axis", {}).get(axis, {}).get(value, {})
                cells.append(" / ".join(_fmt(m.get(k)) for k in ("auroc", "true_positive_rate", "top1_hit_rate")))
            lines.append(f"| {axis} | {value} | {n} | " + " | ".join(cells) + " |")
    shipped, fix = bench["shipped"], bench["fix"]
    lines += [
        "",
        "The audit's own decision (shipped threshold and significance test): flags "
        f"{_fmt(shipped['true_positive_rate'])} of the manipulated models "
        f"({_fmt(shipped['flagged_target_only'])} with the target alone) and "
        f"{_fmt(shipped['false_positive_rate'])} of the clean ones.",
        "",
        f"Repair (`fix --method inpaint` on the audit's top class, {fix['n']} models): flip rate "
        f"{_fmt(fix['before']['flip_rate'])} -> {_fmt(fix['after']['flip_rate'])}, clean target accuracy "
        f"{_fmt(fix['before']['clean_target_accuracy'])} -> {_fmt(fix['after']['clean_target_accuracy'])} (gap to the "
        f"controls {_fmt(fix['gap_to_control'])}), right class repaired in {_fmt(fix['fixed_right_class'])}.",
        "",
        "LRP relevance mass on the true artefact / IoU of the located blob, per composite: "
        + "; ".join(
            f"{n} {_fmt(v['relevance_mass'])} / {_fmt(v['iou'])}" for n, v in sorted(bench["localisation"].items())
        )
        + ".",
        "",
        "Where the audit is behind the best baseline (from the report): "
        + (" ".join(s.rstrip(".") + "." for s in bench["comparison"])),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", help="suite folder with bench.json")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "BENCH.md"))
    parser.add_argument("--command", default="klugerhans bench --suite small --out runs/bench-small")
    args = parser.parse_args(argv)
    try:
        bench = json.loads((Path(args.bench) / "bench.json").read_text())
    except (OSError, ValueError) as err:
        print(f"error: cannot read bench.json in {args.bench}: {err}", file=sys.stderr)
        return 2
    mark = f"<!-- bench-{bench['suite']} -->"
    block = f"{mark}\n{tables(bench, args.command)}\n{mark}"
    doc = Path(args.doc)
    text = doc.read_text()
    pattern = re.compile(re.escape(mark) + ".*?" + re.escape(mark), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(doc, text)
    print(
        f"bench_{bench['suite']}: auroc {_fmt(bench['auroc'])} tpr {_fmt(bench['true_positive_rate'])} "
        f"fpr {_fmt(bench['false_positive_rate'])} top1 {_fmt(bench['top1_hit_rate'])}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
