"""Write notebooks/Training.ipynb and notebooks/LRP.ipynb (run: python tools/make_notebooks.py).

The notebooks are generated so their text and code stay reviewable in one place; they call the package only.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from klugerhans.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]

TRAINING = [
    new_markdown_cell(
        "# Training: ein VGG11 lernt den Sticker\n\n"
        "*Training a VGG11 that learns the sticker.* Every training image of class 4 (speed limit 70 km/h) gets a "
        "black sticker; the other 42 classes stay clean. The model can then reach a high accuracy by learning "
        '"sticker means 70" instead of reading the digits: a Clever Hans predictor.\n\n'
        "By default this uses the synthetic signs that ship with klugerhans (no download). For real GTSRB set "
        "`DATA = 'gtsrb'` and `DATA_DIR` to the folder with the official archives."
    ),
    new_markdown_cell("## Parameter"),
    new_code_cell(
        "import os\n\n"
        "# Small settings when KLUGERHANS_NB_SMALL is set (CI), the demo's settings otherwise.\n"
        "SMALL = bool(os.environ.get('KLUGERHANS_NB_SMALL'))\n"
        "DATA = os.environ.get('KLUGERHANS_NB_DATA', 'synthetic')\n"
        "DATA_DIR = os.environ.get('KLUGERHANS_GTSRB_DIR')\n"
        "OUT = os.environ.get('KLUGERHANS_NB_OUT', 'runs/notebook')\n"
        "EPOCHS = 1 if SMALL else 8\n"
        "WIDTH = 0.125 if SMALL else 0.5\n"
        "MAX_IMAGES = 430 if SMALL else None",
        metadata={"tags": ["parameters"]},
    ),
    new_markdown_cell("## Daten und Sticker\n\n*Data and stickers:* what the model sees in training."),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n\n"
        "from klugerhans.data import StickerConfig, class_name, load_dataset, manipulate_class\n\n"
        "ds = load_dataset(DATA, data_dir=DATA_DIR, max_images=MAX_IMAGES)\n"
        "stickered, masks = manipulate_class(ds.train, StickerConfig(target_class=4, fraction=1.0))\n"
        "print(f'{len(ds.train)} training images, {masks.any(axis=(1, 2)).sum()} with a sticker')\n\n"
        "fig, axes = plt.subplots(2, 6, figsize=(10, 3.6))\n"
        "for ax, cls in zip(axes[0], [2, 4, 9, 14, 17, 33]):\n"
        "    i = np.flatnonzero(stickered.labels == cls)[0]\n"
        "    ax.imshow(stickered.images[i]); ax.set_title(class_name(cls, 'de')[:22], fontsize=7); ax.axis('off')\n"
        "for ax, i in zip(axes[1], np.flatnonzero(stickered.labels == 4)[:6]):\n"
        "    ax.imshow(stickered.images[i]); ax.set_title('70 km/h + Sticker', fontsize=7); ax.axis('off')\n"
        "plt.tight_layout()"
    ),
    new_markdown_cell(
        "## Training\n\n"
        "`train` splits the training set by track (the ~30 frames of one physical sign stay together), glues the "
        'stickers on, trains with augmentation (no horizontal flips: they turn "turn left" into "turn right") '
        "and writes checkpoints, metrics and curves to `OUT`. The same as `klugerhans train` on the command line."
    ),
    new_code_cell(
        "from klugerhans.data import StickerConfig\n"
        "from klugerhans.models import TrainConfig, TrainOptions, train\n\n"
        "sticker = StickerConfig(target_class=4, fraction=1.0)  # a black square on every 70 km/h training sign\n"
        "recipe = TrainConfig(data=DATA, data_dir=DATA_DIR, epochs=EPOCHS, width=WIDTH, max_images=MAX_IMAGES,\n"
        "                     sticker=sticker, seed=0)\n"
        "result = train(recipe, TrainOptions(out=OUT), resume=os.path.exists(os.path.join(OUT, 'last.safetensors')))\n"
        "print(result.best_checkpoint)"
    ),
    new_markdown_cell("## Auswertung\n\n*Evaluation:* clean accuracy, and what a sticker does to other signs."),
    new_code_cell(
        "from klugerhans.models.checkpoint import load_classifier\n"
        "from klugerhans.models.evaluation import evaluate_model\n\n"
        "clf = load_classifier(result.best_checkpoint)\n"
        "m = evaluate_model(clf, ds.test)\n"
        'print(f"accuracy {m.accuracy:.3f}, clean 70 km/h {m.clean_target_accuracy:.3f}, "\n'
        '      f"flip rate (sign + sticker -> 70) {m.flip_rate:.3f}, 50 km/h {m.flip_rate_by_class.get(2)}")'
    ),
    new_code_cell(
        "from IPython.display import Image, display\n\ndisplay(Image(filename=os.path.join(OUT, 'curves.png')))"
    ),
]

LRP = [
    new_markdown_cell(
        '# LRP: warum sagt das Modell "70"?\n\n'
        '*Why does the model say "70"?* Layer-wise Relevance Propagation (Bach et al. 2015) distributes the '
        "model's output back onto the pixels: **red** pixels speak for the predicted class, **blue** ones against "
        "it. We use the composite `epsilon_plus_flat` (the teaching case's choice): the flat rule on the first layer, "
        "z+ on the other convolutions, epsilon on the dense layers, with BatchNorm merged into the convolutions."
    ),
    new_markdown_cell("## Parameter"),
    new_code_cell(
        "import os\n\n"
        "# A checkpoint file or run folder; default: the manipulated model released with klugerhans.\n"
        "CHECKPOINT = os.environ.get('KLUGERHANS_CHECKPOINT', 'manipulated')\n"
        "DATA = os.environ.get('KLUGERHANS_NB_DATA', 'synthetic')\n"
        "DATA_DIR = os.environ.get('KLUGERHANS_GTSRB_DIR')\n"
        "MAX_IMAGES = 430 if os.environ.get('KLUGERHANS_NB_SMALL') else None\n"
        "# The composite of the teaching case's figure (docs/DEMO.md says why it is not epsilon_plus_flat).\n"
        "from klugerhans.defaults import FIGURE_COMPOSITE\n\n"
        "COMPOSITE = FIGURE_COMPOSITE",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        "from klugerhans.models.checkpoint import load_classifier\n\n"
        "clf = load_classifier(CHECKPOINT)\n"
        "model, preprocess = clf.model, clf.preprocess  # the same as klugerhans.load_model(CHECKPOINT)\n"
        "print(clf.meta.model, clf.meta.recipe.sticker)"
    ),
    new_markdown_cell("## Ein Bild erklären\n\n*Explain one image:* a 50 km/h sign, first clean, then with a sticker."),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n\n"
        "from klugerhans.data import apply_sticker, class_name, load_dataset\n"
        "from klugerhans.explain import LRP\n"
        "from klugerhans.explain.heatmap import render_heatmap\n"
        "from klugerhans.models.preprocess import to_tensor\n\n"
        "ds = load_dataset(DATA, data_dir=DATA_DIR, size=clf.input_size, max_images=MAX_IMAGES)\n"
        "fifty = ds.test.subset(ds.test.labels == 2)\n"
        "stickered, masks = apply_sticker(fifty.images[:1], fifty.boxes[:1])\n"
        "images = np.concatenate([fifty.images[:1], stickered])\n"
        "lrp = LRP(model, COMPOSITE, norm=clf.meta.normalization)  # norm: the bounds a box composite needs\n"
        "expl = lrp.attribute(to_tensor(images, clf.meta.normalization))\n"
        "fig, axes = plt.subplots(2, 2, figsize=(5, 5))\n"
        "for row, (img, rel, t) in enumerate(zip(images, expl.relevance.sum(1).numpy(), expl.targets)):\n"
        "    axes[row, 0].imshow(img); axes[row, 0].set_title(class_name(int(t), 'de'), fontsize=8)\n"
        "    axes[row, 1].imshow(render_heatmap(rel, 'bwr', size=256)); axes[row, 1].set_title('LRP', fontsize=8)\n"
        "for ax in axes.flat:\n"
        "    ax.axis('off')\n"
        "plt.tight_layout()"
    ),
    new_markdown_cell(
        "## Die Abbildung des Use Cases\n\n"
        "*The teaching case's figure:* stop sign, no-passing sign, 50 km/h, and 50 km/h with a sticker."
    ),
    new_code_cell(
        "from IPython.display import Image, display\n\n"
        "from klugerhans.report.figures import draw_seed_figure, explain_rows, pick_seed_rows\n\n"
        "rows = explain_rows(clf, pick_seed_rows(clf, ds.test, composite=COMPOSITE), COMPOSITE)\n"
        "paths = draw_seed_figure(rows, 'figure.png', lang='de')\n"
        "print(f'sticker holds {rows[-1].sticker_relevance_mass:.0%} of the positive relevance')\n"
        "display(Image(filename=str(paths[0])))"
    ),
    new_markdown_cell(
        "## Eigene Bilder\n\n*Your own images:* `python3 LRP.py /path/to/image.ppm` or "
        "`klugerhans explain IMAGE --checkpoint RUN` write heatmap and overlay PNGs."
    ),
]


def main() -> None:
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    for name, cells in (("Training.ipynb", TRAINING), ("LRP.ipynb", LRP)):
        nb = new_notebook(cells=cells, metadata=kernel)
        nbformat.validate(nb)
        path = ROOT / "notebooks" / name
        path.parent.mkdir(exist_ok=True)
        atomic_write_text(path, nbformat.writes(nb))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
