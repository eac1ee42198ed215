"""``klugerhans audit``: run the audit and write ``audit.json``, ``report.html`` (self-contained) and ``report.md``.

:func:`run_audit` is the typed entry point behind the CLI. Figures are drawn with matplotlib's object API (no
pyplot state) into ``<out>/figures/`` and embedded in the HTML as data URIs, so the report opens offline.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from klugerhans.audit.config import AuditConfig
from klugerhans.audit.result import AuditResult, Faithfulness, MethodImages, Sanity
from klugerhans.audit.run import compute_audit
from klugerhans.data.classes import class_name
from klugerhans.errors import KlugerhansError
from klugerhans.explain.heatmap import overlay_heatmap, render_heatmap
from klugerhans.explain.lrp import coverage_line
from klugerhans.io import atomic_write_figure, atomic_write_text
from klugerhans.progress import say
from klugerhans.report.html import Report, Section, write_report

__all__ = ["run_audit", "write_audit"]


def run_audit(config: AuditConfig) -> dict[str, Any]:
    """Audit ``config.checkpoint`` on ``config.data`` and write the results into ``config.out``.

    Writes ``audit.json`` (every number), ``report.html`` (one self-contained file), ``report.md`` and
    ``figures/*.png``; optionally a ViRelAy project under ``virelay/``.

    Returns:
        The content of ``audit.json``.
    """
    result = compute_audit(config)
    return write_audit(result, config.out)


def write_audit(result: AuditResult, out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Write ``audit.json``, the figures and the report of ``result`` into ``out_dir``; return the JSON content."""
    out = Path(out_dir)
    start = time.perf_counter()
    if result.config.virelay:
        from klugerhans.audit.virelay import export_virelay

        export_virelay(result, out / "virelay", result.config.explain_batch(result.data.size))
        result.timings["virelay"] = round(time.perf_counter() - start, 3)
        start = time.perf_counter()
    figures = _draw_figures(result, out / "figures")
    result.timings["report"] = round(time.perf_counter() - start, 3)
    summary = result.to_json()
    atomic_write_text(out / "audit.json", json.dumps(summary, indent=1, allow_nan=False))
    write_report(_build_report(result, summary, figures), out)
    say("audit", f"wrote {out / 'report.html'} and {out / 'audit.json'}", result.config.progress)
    return summary


# ---------------------------------------------------------------------------------------------------- figures


def _save(fig: Any, path: Path) -> str:
    return str(atomic_write_figure(path, fig, dpi=110))


def _name(result: AuditResult, c: int, width: int = 24) -> str:
    """The audited model's name of class ``c`` (a folder's class names, GTSRB's for our signs), shortened."""
    names = result.classifier.class_names if result.classifier is not None else ()
    try:
        name = names[c] if c < len(names) else class_name(c)
    except KlugerhansError:  # a model with other class ids: show the id only
        return str(c)
    return name if len(name) <= width else name[: width - 1] + "…"


def _draw_figures(result: AuditResult, folder: Path) -> dict[str, list[tuple[str, str]]]:
    figures: dict[str, list[tuple[str, str]]] = {"ranking": [], "spray": [], "methods": []}
    if result.transplant:
        figures["ranking"].append((_ranking_figure(result, folder / "ranking.png"), _RANKING_CAPTION))
    for c in result.tsne or [c for c in result.ranking.order[:1] if c in result.spray]:
        if c in result.spray:
            path = _spray_figure(result, c, folder / f"spray_class_{c}.png")
            figures["spray"].append((path, f"SpRAy of class {c} ({_name(result, c, 40)}). " + _SPRAY_CAPTION))
    compared = result.comparison
    if compared is None:
        return figures
    if compared.examples.maps:
        figures["methods"].append((_methods_figure(compared.examples, folder / "methods.png"), _METHODS_CAPTION))
    if compared.faithfulness.methods:
        path = _flipping_figure(compared.faithfulness, folder / "pixel_flipping.png")
        figures["methods"].append((path, _FLIPPING_CAPTION))
    if compared.sanity is not None and compared.sanity.methods:
        figures["methods"].append((_sanity_figure(compared.sanity, folder / "sanity.png"), _SANITY_CAPTION))
    return figures


_RANKING_CAPTION = (
    "Transplant test per class, most suspicious first: share of other classes' images switched to the class by a small "
    "part of its own images, with its best probe (the most relevant patch anywhere or in its place, its most relevant "
    "pixels or its colours), counted class by class without the quarter of recipient classes it switches most (bars: "
    "the broad hijack rate, the suspicion score; red: flagged) and by that probe's control on the same recipients (a "
    "random patch or random pixels from the same images, or another class's colours). Dashed: the flagging threshold."
)
_SPRAY_CAPTION = (
    "Top: smallest eigenvalues of the heatmap graph's Laplacian (a large gap after k values = k distinct "
    "strategies), spectral embedding and t-SNE of the heatmaps coloured by cluster. Below: per cluster, the mean "
    "heatmap (prototype) and its most typical images with their heatmaps (red = evidence for the class); last row: "
    "signs of other classes with this class's most relevant patch pasted on, and what the model then predicts."
)
_METHODS_CAPTION = (
    "The same images explained by every method (red = evidence for the explained class, blue = against). Where "
    "the images carry a sticker, it is the ground truth for the localisation metrics."
)
_FLIPPING_CAPTION = (
    "Pixel flipping (region perturbation, most relevant first): mean target logit as regions are replaced by noise. "
    "A faithful method drops fastest; the legend gives AOPC (higher is better)."
)
_SANITY_CAPTION = (
    "Model parameter randomisation: Spearman rank correlation (absolute values) between heatmaps of the trained "
    "model and of models whose layers were re-initialised from the output down. Methods that explain the model "
    "fall towards 0; a method that stays high is insensitive to what the model learned."
)


def _ranking_figure(result: AuditResult, path: Path) -> str:
    from matplotlib.figure import Figure

    order = list(result.ranking.order)
    hijack = [result.transplant[c].broad_rate for c in order]
    control = [result.transplant[c].broad_control_rate for c in order]

    fig = Figure(figsize=(max(6.0, 0.22 * len(order) + 2), 3.6))
    ax = fig.add_subplot()
    pos = np.arange(len(order))
    colours = ["#c0392b" if c in result.ranking.flagged else "#7f8c8d" for c in order]
    ax.bar(pos, hijack, color=colours, label="broad hijack rate (most relevant part)")
    ax.plot(pos, control, "_", color="#2c3e50", ms=8, mew=1.5, label="control rate (random patch)")
    ax.axhline(result.ranking.threshold, ls="--", color="#c0392b", lw=1, label="threshold")
    ax.set_xticks(pos, [str(c) for c in order], fontsize=6)
    ax.set_xlabel("class id (most suspicious first)")
    ax.set_ylabel("share of recipients")
    ax.set_ylim(0.0, 1.02)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


def _spray_figure(result: AuditResult, c: int, path: Path) -> str:
    from matplotlib.figure import Figure

    sp = result.spray[c]
    rows = result.heatmaps.rows_of(c)
    images = result.data.images[result.heatmaps.index[rows]]
    maps = result.heatmaps.maps[rows]
    k = min(sp.n_clusters, 4)
    per = max(len(e) for e in sp.examples[:k])
    cols = max(3, 1 + per)
    transplant = result.transplant.get(c)
    n_rows = 1 + k + (1 if transplant is not None and len(transplant.examples) else 0)
    fig = Figure(figsize=(2.0 * cols, 2.0 * n_rows + 0.4))
    grid = fig.add_gridspec(n_rows, cols)
    ax = fig.add_subplot(grid[0, 0])
    ax.bar(np.arange(1, len(sp.eigenvalues) + 1), sp.eigenvalues, color="#34495e")
    ax.set_title(f"eigenvalues (k = {sp.n_clusters})", fontsize=8)
    ax.tick_params(labelsize=6)
    views = [("spectral embedding", sp.embedding), ("t-SNE", result.tsne.get(c))]
    for j, (title, coords) in enumerate(views, start=1):
        ax = fig.add_subplot(grid[0, j])
        if coords is not None:
            ax.scatter(coords[:, 0], coords[:, 1], c=sp.labels, cmap="tab10", s=6, vmin=0, vmax=9)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for i in range(k):
        proto = sp.prototypes[i]
        ax = fig.add_subplot(grid[1 + i, 0])
        ax.imshow(render_heatmap(proto, size=64), interpolation="nearest")
        ax.set_title(f"cluster {i}: {sp.cluster_sizes[i]} images", fontsize=7)
        ax.axis("off")
        for j, member in enumerate(sp.examples[i][: cols - 1]):
            ax = fig.add_subplot(grid[1 + i, 1 + j])
            ax.imshow(overlay_heatmap(images[member], maps[member], alpha=0.55))
            ax.axis("off")
    if n_rows > 1 + k and transplant is not None:
        for j, (img, pred) in enumerate(zip(transplant.examples[:cols], transplant.example_preds[:cols], strict=True)):
            ax = fig.add_subplot(grid[n_rows - 1, j])
            ax.imshow(img)
            ax.set_title(f"patch -> {int(pred)}", fontsize=7, color="#c0392b" if int(pred) == c else "#222")
            ax.axis("off")
    fig.suptitle(f"class {c}: {_name(result, c, 40)}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _methods_figure(ex: MethodImages, path: Path) -> str:
    from matplotlib.figure import Figure

    methods = list(ex.maps)
    n = len(ex.images)
    fig = Figure(figsize=(1.3 * (len(methods) + 1), 1.45 * n + 0.4))
    for i in range(n):
        ax = fig.add_subplot(n, len(methods) + 1, i * (len(methods) + 1) + 1)
        ax.imshow(ex.images[i])
        if ex.masks[i].any():
            ax.contour(ex.masks[i], levels=[0.5], colors="#00e5ff", linewidths=0.8)
        ax.set_title(f"explain {int(ex.targets[i])}", fontsize=6)
        ax.axis("off")
        for j, m in enumerate(methods):
            ax = fig.add_subplot(n, len(methods) + 1, i * (len(methods) + 1) + j + 2)
            ax.imshow(render_heatmap(ex.maps[m][i]), interpolation="nearest")
            if i == 0:
                ax.set_title(m.replace("lrp:", "LRP ").replace("_", " "), fontsize=5)
            ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def _flipping_figure(faithfulness: Faithfulness, path: Path) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.4, 3.8))
    ax = fig.add_subplot()
    for m, entry in faithfulness.methods.items():
        curve = np.asarray(entry.curve, dtype=float)
        ax.plot(np.arange(len(curve)), curve, marker=".", label=f"{m} (AOPC {entry.aopc:.2f})")
    ax.set_xlabel(f"regions removed ({faithfulness.region_px} px squares, most relevant first)")
    ax.set_ylabel("mean target logit")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return _save(fig, path)


def _sanity_figure(sanity: Sanity, path: Path) -> str:
    from matplotlib.figure import Figure

    methods = sanity.methods
    layers = next(iter(methods.values()))["layers"]
    fig = Figure(figsize=(8.8, 3.8))
    ax = fig.add_subplot()
    for m, entry in methods.items():
        ax.plot(np.arange(1, len(layers) + 1), entry["spearman"], marker=".", label=m)
    ax.set_xticks(np.arange(1, len(layers) + 1), layers, rotation=60, fontsize=6)
    ax.set_xlabel(f"{sanity.mode} randomisation up to layer")
    ax.set_ylabel("Spearman (abs) vs trained model")
    ax.set_ylim(-0.2, 1.05)
    ax.axhline(0, color="#999", lw=0.8)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------------- report


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.1f}%"


def _build_report(result: AuditResult, s: dict[str, Any], figures: dict[str, list[tuple[str, str]]]) -> Report:
    ranking = result.ranking
    flagged = list(ranking.flagged)
    data = s["data"]
    headline = (
        f"Flagged: {', '.join(f'class {c} ({_name(result, c, 40)})' for c in flagged)}."
        if flagged
        else "No class is flagged: no class's most relevant patch hijacks other signs clearly more than chance."
    )
    intro = (
        f"Audit of {s['model']['checkpoint']} on {data.get('n_images')} {data.get('name', '')} {data.get('split', '')} "
        f"images (accuracy {_pct(s['accuracy'])}). Discovery uses only images, labels and the model's heatmaps; "
        f"it is not told which class or pixels might be manipulated. {headline}"
    )
    if data.get("artefacts_reproduced"):
        intro += (
            f" The checkpoint's training stickers were glued on the audited split as in training "
            f"({data['n_with_artefact']} images), so the data carries the artefact the model learned from."
        )
    discovery = s.get("discovery", {})
    if "lrp_rule_share" in discovery:
        coverage = {"n_ops": discovery["lrp_ops"], "fallback_ops": discovery["fallback_ops"]}
        intro += (
            f" {coverage_line(coverage)} (an LRP rule for {_pct(discovery['lrp_rule_share'])} of the model's "
            "operations on the relevance path; the others pass relevance on as gradient x input)."
        )
    sections = [Section("Suspicion ranking", [s["threshold_rationale"]], _ranking_table(result), figures["ranking"])]
    spray_text = [
        "SpRAy (Lapuschkin et al. 2019) clusters the heatmaps of each class's correctly classified images. The "
        "eigengap suggests how many distinct strategies the model uses for a class; the prototypes show where each "
        "looks. Figures show the most suspicious classes."
    ]
    sections.append(Section("Spectral relevance analysis (SpRAy)", spray_text, figures=figures["spray"]))
    if result.comparison is not None:
        sections.append(
            Section("Attribution methods compared", _methods_text(s), _methods_table(s), figures["methods"])
        )
    timing_rows: list[list[object]] = [["stage", "seconds"]]
    timing_rows += [[k, float(v)] for k, v in s["timings"].items()]
    sections.append(
        Section("Run", [f"klugerhans {s['klugerhans_version']}; all numbers are in audit.json."], timing_rows)
    )
    return Report("klugerhans audit: shortcut learning", sections, intro)


def _ranking_table(result: AuditResult) -> list[list[object]]:
    header = ["rank", "class", "name", "probe", "broad", "hijack", "control", "excess", "p", "SpRAy k", "eigengap"]
    rows: list[list[object]] = [[*header, "window share", "flagged"]]
    for i, c in enumerate(result.ranking.order, start=1):
        t = result.transplant[c]
        sp = result.spray.get(c)
        rows.append(
            [
                i,
                c,
                _name(result, c, 32),
                t.probe,
                t.broad_rate,
                t.hijack_rate,
                t.control_rate,
                t.excess,
                f"{t.p_value:.1e}",
                sp.n_clusters if sp else "n/a",
                sp.eigengap if sp else "n/a",
                t.window_share,
                "yes" if c in result.ranking.flagged else "",
            ]
        )
    return rows


def _methods_text(s: dict[str, Any]) -> list[str]:
    loc, faith = s["localisation"], s["faithfulness"]
    text = []
    if loc:
        text.append(
            f"Localisation: {loc.get('n', 0)} signs of other classes with the sticker glued on that the model then "
            f"called class {loc['sticker']['target_class']} (flip rate {_pct(loc.get('flip_rate'))} of "
            f"{loc.get('n_candidates', 0)} tried). Each method explains that class; the sticker mask is the ground "
            "truth. Mass: share of positive relevance inside the sticker (Arras et al. 2022), and within one pixel "
            "of it; rank: share of the top-K pixels inside it, K = sticker size; pointing: most relevant pixel inside "
            "it (Zhang et al. 2018)."
        )
    if faith:
        text.append(
            f"Faithfulness: region perturbation (Samek et al. 2017) on {faith['n']} correctly classified signs, "
            f"{faith['steps']} regions of {faith['region_px']} px, most relevant first, replaced by uniform noise; "
            "AOPC of the target logit. Sanity: Spearman (abs) after randomising every layer "
            f"({s['sanity'].get('mode', 'n/a')}; Adebayo et al. 2018), lower is better."
        )
    return text


def _methods_table(s: dict[str, Any]) -> list[list[object]]:
    loc = s["localisation"].get("methods", {})
    faith = s["faithfulness"].get("methods", {})
    sanity = s["sanity"].get("methods", {}) if s["sanity"] else {}
    rows: list[list[object]] = [["method", "mass", "mass (1 px)", "rank", "pointing", "AOPC", "sanity (all random)"]]
    for m in s["methods"]:
        entry = loc.get(m, {})
        last = sanity.get(m, {}).get("spearman", [])
        rows.append(
            [
                m,
                entry.get("mass_accuracy"),
                entry.get("mass_accuracy_1px"),
                entry.get("rank_accuracy"),
                entry.get("pointing_game"),
                faith.get(m, {}).get("aopc"),
                last[-1] if last else None,
            ]
        )
    return rows
