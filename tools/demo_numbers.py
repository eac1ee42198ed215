"""Write the demo's measured numbers into README.md and docs/DEMO.md from a run's own files.

    klugerhans demo --out runs/demo
    python tools/demo_numbers.py runs/demo            # print the two blocks
    python tools/demo_numbers.py runs/demo --write    # rewrite them between the <!-- demo-numbers --> markers

Every number comes from ``summary.json`` and ``fix/fix.json`` of that run, so what the README says is what the code
gave; run it on a fresh clone's demo before a release.
"""

from __future__ import annotations

import argparse
import json
import platform
import textwrap
from pathlib import Path
from typing import Any

from klugerhans.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- demo-numbers -->"


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _flags(ids: list[int]) -> str:
    return "class " + ", ".join(map(str, ids)) + (" alone" if len(ids) == 1 else "") if ids else "nothing"


WIDTH = 116
"""Line width of the written paragraphs (the docs' own)."""


def readme_block(s: dict[str, Any]) -> str:
    """The README's paragraph."""
    cfg = s["config"]
    text = (
        f"`klugerhans demo` ({cfg['per_class']} synthetic signs per class, the default sticker of side "
        f"{s['sticker_size']:g} on every 70 km/h training sign, VGG11-BN width {cfg['width']:g}, {cfg['epochs']} "
        f"epochs) tells the story in one command, break and repair, in {s['seconds']:.0f} s on a 2-core CPU "
        f"(`klugerhans demo --out runs/demo`, `seconds` in its `summary.json`): "
        f"{_pct(s['accuracy_non_target'])} accuracy on the other classes' clean test signs; a sticker turns "
        f"{_pct(s['flip_rate_50'], 0)} of the 50 km/h signs into 70; LRP puts the sticker red in the teaching case's "
        "figure"
    )
    if s.get("negative_share_in_five_beside") is not None:
        text += (
            f" and, on the signs a sticker beside the 5 still turns, {_pct(s['negative_share_in_five_beside'], 0)} "
            "of the relevance inside the 5 blue (against 70)"
        )
    if "repair_skipped" in s:
        return textwrap.fill(text + f"; the repair was skipped: {s['repair_skipped']}.", WIDTH)
    return textwrap.fill(
        text
        + (
            f"; the audit flags {_flags(s['flagged_before_repair'])}; and the last chapter, `klugerhans fix`, brings "
            f"clean 70 km/h signs from {_pct(s['clean_target_accuracy'], 0)} to "
            f"{_pct(s['fixed_clean_target_accuracy'], 0)} and the 50 km/h flip down to "
            f"{_pct(s['fixed_flip_rate_50'], 0)}, after which the audit flags "
            f"{_flags(s['flagged_after_repair'])} (`summary.json`: `flip_rate_50`, `fixed_clean_target_accuracy`, "
            "`fixed_flip_rate_50`; written by `python tools/demo_numbers.py runs/demo --write`)."
        ),
        WIDTH,
    )


def demo_block(s: dict[str, Any], fix: dict[str, Any] | None) -> str:
    """docs/DEMO.md's section on the default run."""
    per_class = s["n_test_images"] // 43
    lines = [
        "## The default run",
        "",
        textwrap.fill(
            f"`klugerhans demo --out runs/demo` on the 2-core CPU ({platform.machine()}): **{s['seconds']:.0f} s** "
            "for everything (training, evaluation, LRP, figure, repair, reports"
            + (f"; the repair's share {s['repair_seconds']:.0f} s" if "repair_seconds" in s else "")
            + f"). On the {s['n_test_images']:,} synthetic test signs ({per_class} of them 50 km/h, {per_class} of "
            "them 70 km/h):",
            WIDTH,
        ),
        "",
    ]
    if fix is None:
        lines += [
            "| | the demo model |",
            "|---|---|",
            f"| accuracy without class 4 | {_pct(s['accuracy_non_target'])} |",
            f"| clean 70 km/h accuracy | {_pct(s['clean_target_accuracy'], 0)} |",
            f"| sticker flip rate -> 70 (all other classes) | {_pct(s['flip_rate'])} |",
            f"| **50 km/h + sticker -> 70** (`flip_rate_50`) | **{_pct(s['flip_rate_50'], 0)}** |",
            "",
            f"The repair was skipped: {s.get('repair_skipped', 'the run had --no-repair')}.",
        ]
        return "\n".join(lines)
    before, after, c = fix["before"]["audit"], fix["after"]["audit"], str(fix["class_id"])

    def audit(a: dict[str, Any]) -> str:
        return f"{a['flagged'] or 'none'} ({a['broad_rate'].get(c, 0.0):.3f})".replace("'", "")

    locate = fix["locate"]
    lines += [
        "| | the demo model | after the repair (its last chapter) |",
        "|---|---|---|",
        f"| accuracy without class 4 | {_pct(s['accuracy_non_target'])} | {_pct(s['fixed_accuracy_non_target'])} |",
        f"| clean 70 km/h accuracy | {_pct(s['clean_target_accuracy'], 0)} | "
        f"{_pct(s['fixed_clean_target_accuracy'], 0)} |",
        f"| sticker flip rate -> 70 (all other classes) | {_pct(s['flip_rate'])} | {_pct(s['fixed_flip_rate'])} |",
        f"| **50 km/h + sticker -> 70** (`flip_rate_50`) | **{_pct(s['flip_rate_50'], 0)}** | "
        f"{_pct(s['fixed_flip_rate_50'], 0)} |",
        f"| audit flags (broad hijack rate of class {c}) | {audit(before)} | {audit(after)} |",
        "",
        textwrap.fill(
            f"The repair took class {c}, the audit's most suspicious flagged class; LRP located the stickers (the "
            f"located blobs cover {_pct(locate['truth_covered'], 0)} of each sticker on average, "
            f"{_pct(locate['truth_covered_90'], 0)} of them at least 90%); the figure's sticker row holds "
            f"{_pct(s['sticker_relevance_mass'], 0)} of the positive relevance inside a sticker covering "
            f"{_pct(s['sticker_pixel_share'])} of the image. Glued beside the 5 (the figure's rule), the sticker "
            f"turns {_pct(s.get('flip_rate_50_beside_five'), 0)} of the 50 km/h signs, and "
            f"{_pct(s.get('negative_share_in_five_beside'), 0)} of |R| in their 5 is blue "
            "(`flip_rate_50_beside_five`, `negative_share_in_five_beside`). Written by "
            "`python tools/demo_numbers.py runs/demo --write`.",
            WIDTH,
        ),
        "",
        *_goals(s),
    ]
    return "\n".join(lines)


GOALS = (
    ("50 km/h + sticker -> 70 at the default sticker", "flip_rate_50", ">=", 0.9),
    ("accuracy on the other classes", "accuracy_non_target", ">=", 0.95),
    ("the whole demo, repair included, on this 2-core CPU (s)", "seconds", "<=", 300),
    ("the repair brings clean 70 km/h back", "fixed_clean_target_accuracy", ">=", 0.9),
    ("... and removes the flip (50 km/h -> 70)", "fixed_flip_rate_50", "<=", 0.1),
    (
        "the 5 speaks against 70: negative share of the relevance inside it (turned 50 km/h signs)",
        "negative_share_in_five",
        ">=",
        0.05,
    ),
)
"""The demo's goals: (what, summary key, comparison, bar)."""


def _goals(s: dict[str, Any]) -> list[str]:
    rows = ["## The goals, and where the demo stands", "", "| goal | measured | met |", "|---|---|---|"]
    for what, key, op, bar in GOALS:
        value = float(s.get(key, float("nan")))
        met = value >= bar if op == ">=" else value <= bar
        shown, goal = (f"{value:.0f} s", f"{bar} s") if key == "seconds" else (_pct(value), _pct(bar, 0))
        rows.append(f"| {what} | {shown} | {'yes' if met else '**no**'} (goal {op} {goal}) |")
    return rows


def replace_block(text: str, block: str, path: Path) -> str:
    """``text`` with the part between the two markers replaced by ``block``."""
    parts = text.split(MARKER)
    if len(parts) != 3:
        raise SystemExit(f"{path} must hold exactly two {MARKER} lines around the demo's numbers")
    return f"{parts[0]}{MARKER}\n{block}\n{MARKER}{parts[2]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the demo's --out folder (summary.json, fix/fix.json)")
    parser.add_argument("--write", action="store_true", help="rewrite README.md and docs/DEMO.md")
    args = parser.parse_args(argv)
    run = Path(args.run)
    summary = json.loads((run / "summary.json").read_text())
    fix_file = run / "fix" / "fix.json"
    fix = json.loads(fix_file.read_text()) if "fixed_flip_rate_50" in summary and fix_file.is_file() else None
    blocks = {ROOT / "README.md": readme_block(summary), ROOT / "docs" / "DEMO.md": demo_block(summary, fix)}
    for path, block in blocks.items():
        print(f"--- {path.relative_to(ROOT)}\n{block}\n")
        if args.write:
            atomic_write_text(path, replace_block(path.read_text(), block, path))


if __name__ == "__main__":
    main()
