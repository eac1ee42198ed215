"""Does our VGG's coarse head hide the teaching case's blue "5"? Train the demo recipe with a finer last feature map.

    python tools/head_resolution.py --out runs/heads          # 1x1 (ours), 2x2 and 4x4 maps; resumes per model

At 32 px our VGG11-BN pools five times and its dense head sees a 1x1 map; the teaching case's VGG11 flattened a
7x7 map, so its dense layers could place negative evidence (the "5" of a 50 km/h sign) where it lies. Each model
here is the demo's recipe (``DemoConfig``'s signs per class, width, epochs and batch; the default sticker on
70 km/h) with the last 0, 1 or 2 max-poolings removed (a 1x1, 2x2 or 4x4 map flattened into the same head). Printed
per model: accuracy, the flip rate of stickered 50 km/h test signs, and per composite the medians over the flipped
signs of the negative share of ``|R|`` inside the "5" and in the rest of the image, and the sticker's share of the
positive relevance, with the stickers as glued and glued beside the 5 (as ``tools/negative_relevance.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from klugerhans.data.dataset import load_dataset
from klugerhans.demo import DemoConfig
from klugerhans.models.checkpoint import load_classifier
from klugerhans.models.evaluation import predict_labels
from klugerhans.models.recipe import TrainConfig, TrainOptions
from klugerhans.models.training import train
from klugerhans.models.vgg import CONFIG_A, MODELS, VGG, register_model
from klugerhans.report.five import measure_five

COMPOSITES = ("epsilon_plus_flat", "epsilon_gamma_box")
_spec = importlib.util.spec_from_file_location("negative_relevance", Path(__file__).with_name("negative_relevance.py"))
assert _spec is not None and _spec.loader is not None
negative_relevance = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(negative_relevance)


def _register(dropped: int) -> str:
    """Register our VGG11-BN without its last ``dropped`` max-poolings; its name."""
    name = f"vgg11_bn_map{2**dropped}"
    layout = list(CONFIG_A)
    for _ in range(dropped):
        del layout[max(i for i, v in enumerate(layout) if v == "M")]
    if name not in MODELS:
        register_model(name)(lambda config, layout=tuple(layout): VGG(config, layout))
    return name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for one run per head")
    parser.add_argument("--dropped", type=int, nargs="+", default=[0, 1, 2], help="max-poolings removed (0: ours)")
    args = parser.parse_args(argv)
    demo = DemoConfig()
    test = load_dataset("synthetic", per_class=demo.per_class).test
    for dropped in args.dropped:
        arch = _register(dropped)
        run = Path(args.out) / arch
        recipe = TrainConfig(
            data="synthetic", epochs=demo.epochs, width=demo.width, batch_size=demo.batch_size,
            per_class=demo.per_class, arch=arch,
        )  # fmt: skip
        # resumes an interrupted run; a finished one returns at once
        train(recipe, TrainOptions(out=str(run), progress=False), resume=(run / "train_state.pt").exists())
        clf = load_classifier(run / "best.safetensors")
        accuracy = float((predict_labels(clf, test.images) == test.labels).mean())
        fives = {name: measure_five(clf, test, name) for name in COMPOSITES}
        turned = next(iter(fives.values()))
        print(f"{arch}: accuracy {accuracy:.3f}, 50 km/h + sticker -> 70 {turned.n_turned / turned.n_signs:.2f}")
        for name, five in fives.items():
            negative_relevance.print_row(f"  {name}", five)
            beside = measure_five(clf, test, name, beside_five=True)
            negative_relevance.print_row(f"  {name}, sticker beside the 5 ({beside.n_turned} turned)", beside)


if __name__ == "__main__":
    main()
