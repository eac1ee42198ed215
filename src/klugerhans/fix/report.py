"""The before/after report of ``klugerhans fix``: numbers, audit flags, located artefacts and the teaching case's figure
for the model before and after the repair (on the same four images)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from klugerhans.data.classes import class_name
from klugerhans.fix.numbers import FixNumbers
from klugerhans.fix.run import FixResult, save_fixed, write_numbers
from klugerhans.io import atomic_write_figure
from klugerhans.progress import say
from klugerhans.report.figures import draw_seed_figure, explain_rows, pick_seed_rows
from klugerhans.report.html import Report, Section, write_report

__all__ = ["write_fix"]


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _located_figure(images: np.ndarray, masks: np.ndarray, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(2, max(n, 1), figsize=(1.3 * max(n, 1), 2.8), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(images[i], interpolation="nearest")
        shaded = images[i].astype(np.float32) / 255.0
        shaded[masks[i]] = 0.4 * shaded[masks[i]] + 0.6 * np.array([0.0, 1.0, 0.0])
        axes[1, i].imshow(shaded, interpolation="nearest")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("image", fontsize=8)
    axes[1, 0].set_ylabel("located", fontsize=8)
    fig.tight_layout()
    atomic_write_figure(path, fig, dpi=120)
    plt.close(fig)
    return str(path)


def _table(numbers: FixNumbers, class_id: int) -> list[list[object]]:
    cols = [("before", numbers.before), ("after", numbers.after)]
    if numbers.control is not None:
        cols.append(("control", numbers.control))
    rows: list[list[object]] = [["", *(label for label, _ in cols)]]
    for value, label in (
        (lambda e: e.accuracy, "accuracy, all classes"),
        (lambda e: e.accuracy_non_target, f"accuracy without class {class_id}"),
        (lambda e: e.clean_target_accuracy, f"clean accuracy of class {class_id}"),
        (lambda e: e.flip_rate, f"sticker flip rate -> {class_id}"),
        (lambda e: e.flip_rate_by_class.get(2), "50 km/h + sticker -> class"),
    ):
        rows.append([label, *(_pct(value(m.evaluation)) for _, m in cols)])
    flagged = [m.audit.flagged if m.audit is not None else None for _, m in cols]
    rows.append(["audit flags", *("-" if f is None else (", ".join(map(str, f)) or "none") for f in flagged)])
    return rows


def write_fix(result: FixResult, out_dir: str | os.PathLike[str], lang: str = "en") -> dict[str, Any]:
    """Write ``fixed.safetensors``, ``fix.json``, the figures and ``report.html``/``.md``; return the numbers."""
    out = Path(out_dir)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    save_fixed(result, out)
    write_numbers(result, out)
    c = result.class_id
    composite = result.config.locate.composite
    seed_rows = pick_seed_rows(result.before, result.test, seed=result.config.seed)
    fallback = result.config.fallback
    before_rows = explain_rows(result.before, seed_rows, composite, fallback=fallback)
    after_rows = explain_rows(result.after, seed_rows, composite, fallback=fallback)
    before_fig = draw_seed_figure(before_rows, figures / "before.png", "en")[0]
    after_fig = draw_seed_figure(after_rows, figures / "after.png", "en")[0]
    located_fig = _located_figure(*result.located_examples, figures / "located.png")
    loc = result.numbers.locate
    truth = (
        f" Scored against the true sticker masks afterwards (never shown to the method): {_pct(loc.truth_covered)}"
        f" of each sticker covered on average ({_pct(loc.truth_covered_90)} of stickers at least 90% covered), "
        f"{_pct(loc.precision)} of the located pixels are sticker."
        if loc.truth_available
        else ""
    )
    after_flagged, seconds = result.flagged_after, result.numbers.seconds
    report = Report(
        title=f"klugerhans fix: class {c} ({class_name(c)}), method {result.config.method}",
        intro=(
            f"Model {result.config.checkpoint}; repaired with {result.config.method!r} in {seconds:.0f} s. "
            f"After the repair the audit {'still flags' if after_flagged else 'no longer flags'} class {c}."
        ),
        sections=(
            Section("Before and after", table=_table(result.numbers, c)),
            Section(
                "Where LRP located the artefact",
                paragraphs=(
                    f"LRP ({composite}) explained the {loc.images} training images of class {c} as class {c}; the "
                    f"blob of strong positive relevance around each heatmap's peak ({loc.mean_area_px:.0f} px on "
                    f"average, holding {_pct(loc.relevance_share_inside)} of the positive relevance) was taken "
                    f"as the artefact.{truth}",
                ),
                figures=((located_fig, "training images of the class and the located artefact (green)"),),
            ),
            Section(
                "The teaching case's figure, before and after (same images)",
                figures=((str(before_fig), "before the repair"), (str(after_fig), "after the repair")),
            ),
        ),
    )
    write_report(report, out)
    say(
        "fix",
        f"wrote {out / 'report.html'}, {out / 'fix.json'} and {out / 'fixed.safetensors'}",
        result.config.progress,
    )
    return result.to_json()
