"""The commands that classify and explain images: ``predict``, ``explain``, ``figure``, ``serve``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from klugerhans.cli.app import command
from klugerhans.cli.args import (
    add_checkpoint_args,
    add_composite_args,
    add_data_args,
    add_device_args,
    add_lang_args,
    check_composite,
    checkpoint_source,
    load_from_args,
    positive_int,
    print_json,
)
from klugerhans.defaults import FIGURE_COMPOSITE
from klugerhans.errors import KlugerhansError

# --- klugerhans predict -------------------------------------------------------------------------------------------


def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", help="image files or folders of images")
    add_checkpoint_args(p)
    add_device_args(p)
    add_lang_args(p)
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument("--batch-size", type=positive_int, default=128)


@command("predict", "classify image files, in batches", _predict_args)
def _predict(args: argparse.Namespace) -> int:
    from klugerhans.models.predict import predict_files

    clf = load_from_args(args)
    for res in predict_files(clf, args.images, batch_size=args.batch_size, lang=args.lang):
        if args.json:
            print_json(res)
        else:
            top3 = ", ".join(f"{t['id']} {t['prob']:.3f}" for t in res["top3"])
            print(f"{res['path']}: {res['pred']} {res['name']} ({res['prob']:.3f}); top-3 {top3}")
    return 0


# --- klugerhans explain -------------------------------------------------------------------------------------------


def _explain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", help="image files (ppm, png, jpg, ...) or folders")
    add_checkpoint_args(p)
    add_device_args(p)
    add_composite_args(p, fallback=True)
    p.add_argument("--target", default="pred", help="'pred' (default) or a class id to explain")
    p.add_argument("--out", default="klugerhans-explain", help="folder for the PNGs (default klugerhans-explain)")
    p.add_argument("--save-relevance", action="store_true", help="also write <stem>_relevance.npy (float32 SxS)")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    add_lang_args(p)
    p.add_argument("--cmap", choices=("bwr", "coldnhot", "seismic"), default="bwr", help="heatmap colours")
    p.add_argument("--show", action="store_true", help="also open a window with input, heatmap and overlay")


@command("explain", "predict and draw LRP heatmaps (red: for the class, blue: against)", _explain_args)
def _explain(args: argparse.Namespace) -> int:
    from klugerhans.heatmaps.files import explain_files

    check_composite(args.composite)
    clf = load_from_args(args)
    results = explain_files(
        clf,
        args.images,
        args.out,
        args.composite,
        args.target,
        args.save_relevance,
        args.lang,
        args.cmap,
        fallback=args.fallback,
    )
    coverage: dict[str, Any] = {}
    if results and results[0]["coverage"]["fallback_ops"]:
        from klugerhans.explain.lrp import coverage_line

        cov = results[0]["coverage"]
        line = coverage_line(cov)
        coverage = {"lrp_rule_share": cov["lrp_rule_share"], "fallback_ops": cov["fallback_ops"], "lrp_coverage": line}
        print(line, file=sys.stderr if args.json else sys.stdout)
    for res in results:
        if args.json:
            print_json({**{k: res[k] for k in ("path", "pred", "name", "prob", "top3")}, **coverage})
        else:
            top3 = ", ".join(f"{t['id']} {t['name']} {t['prob']:.3f}" for t in res["top3"])
            print(f"{res['path']}: class {res['pred']} {res['name']} (p={res['prob']:.3f}); top-3: {top3}")
            print(f"  heatmap of class {res['explained']}: " + ", ".join(res["files"]))
    if args.show:
        _show(results, args.cmap)
    return 0


def _show(results: list[dict[str, Any]], cmap: str) -> None:
    import matplotlib.pyplot as plt
    from PIL import Image

    from klugerhans.explain.heatmap import render_heatmap

    for res in results:
        _fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
        axes[0].imshow(Image.open(res["path"]).convert("RGB"))
        axes[0].set_title(f"{res['pred']}: {res['name']}", fontsize=9)
        axes[1].imshow(render_heatmap(res["relevance"], cmap, size=256))
        axes[1].set_title("LRP (red: for, blue: against)", fontsize=9)
        if res["files"]:
            axes[2].imshow(Image.open(res["files"][1]))
        for ax in axes:
            ax.axis("off")
    plt.show()


# --- klugerhans figure --------------------------------------------------------------------------------------------


def _figure_args(p: argparse.ArgumentParser) -> None:
    add_checkpoint_args(p)
    add_device_args(p)
    add_data_args(p)
    add_composite_args(p, fallback=True, default=FIGURE_COMPOSITE)
    p.add_argument("--out", default="figure.png", help="output file; a .pdf is written beside it (figure.png)")
    add_lang_args(p)
    p.add_argument("--cmap", choices=("bwr", "coldnhot", "seismic"), default="bwr", help="heatmap colours")
    p.add_argument(
        "--images",
        nargs=4,
        default=None,
        metavar=("STOP", "NO_PASSING", "FIFTY", "FIFTY_STICKER"),
        help="use these four images instead of picking them from --data",
    )


@command("figure", "draw the teaching case's figure: stop, no passing, 50 km/h, 50 km/h + sticker", _figure_args)
def _figure(args: argparse.Namespace) -> int:
    from klugerhans.data.classes import NO_PASSING, SPEED_50, STOP
    from klugerhans.data.dataset import DATASETS
    from klugerhans.data.images import read_image
    from klugerhans.models.preprocess import resize_image
    from klugerhans.report.figures import SeedRow, draw_seed_figure, explain_rows, pick_seed_rows

    check_composite(args.composite)
    # Stop, no passing and 50 km/h are GTSRB class ids: data with classes of its own (a folder) has none of them.
    if not args.images and DATASETS.get_or_raise(args.data).class_names is not None:
        raise KlugerhansError(
            "the teaching case's figure needs GTSRB's stop, no passing and 50 km/h signs: give --images, or use "
            "klugerhans explain / audit for your own images"
        )
    clf = load_from_args(args)
    from klugerhans.explain.lrp import LRP, coverage_line

    explainer = LRP(clf.model, args.composite, norm=clf.meta.normalization, fallback=args.fallback)
    if args.images:
        titles = ("Stop", "No passing", "50 km/h", "50 km/h + sticker")
        labels = (STOP, NO_PASSING, SPEED_50, SPEED_50)
        chosen = [
            SeedRow(t, resize_image(read_image(p), clf.input_size, clf.meta.resize), lab)
            for t, p, lab in zip(titles, args.images, labels, strict=True)
        ]
    else:
        from klugerhans.data.dataset import load_dataset

        ds = load_dataset(
            args.data,
            data_dir=args.data_dir,
            size=clf.input_size,
            download=args.download,
            max_images=args.max_images,
            seed=args.seed,
        )
        chosen = pick_seed_rows(clf, ds.test, seed=args.seed, composite=explainer)
    rows = explain_rows(clf, chosen, explainer)
    for path in draw_seed_figure(rows, args.out, args.lang, args.cmap):
        print(f"wrote {path}")
    coverage = explainer.coverage()
    if coverage["fallback_ops"]:
        print(coverage_line(coverage))
    for row in rows:
        mass = f", sticker relevance mass {row.sticker_relevance_mass:.2f}" if row.mask is not None else ""
        five = f", negative share of |R| in the 5 {row.negative_share_in_digit:.2f}" if row.digit is not None else ""
        print(f"{row.title}: predicted {row.pred} (p={row.prob:.3f}){mass}{five}")
    return 0


# --- klugerhans serve ---------------------------------------------------------------------------------------------


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=positive_int, default=7860, help="port (default 7860)")
    add_checkpoint_args(p, "a model file or run directory to show first")
    add_device_args(p, default="cpu")
    add_composite_args(p, fallback=True)
    add_lang_args(p)


@command("serve", "local web UI: pick or upload a sign, click a sticker on, see prediction and LRP", _serve_args)
def _serve(args: argparse.Namespace) -> int:
    from klugerhans.web import serve

    check_composite(args.composite)
    with checkpoint_source(args) as checkpoint:
        serve(
            host=args.host,
            port=args.port,
            checkpoint=checkpoint,
            model=args.model,
            device=args.device,
            composite=args.composite,
            lang=args.lang,
            fallback=args.fallback,
            # the page names the user's weights file, not the temporary checkpoint made of it
            checkpoint_label=f"weights: {Path(args.weights).name}" if args.weights else None,
        )
    return 0
