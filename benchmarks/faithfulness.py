"""Faithfulness of heatmaps on a trained vision transformer: pixel flipping, most relevant first (AttnLRP's measure).

A small torchvision ``VisionTransformer`` (32 px, 4 px patches, 4 layers, width 96) is trained here on real GTSRB
(``--data-dir``, default ../shared/gtsrb) for ``--steps`` steps. On ``--images`` correctly classified test images,
its 64 patches are replaced by the dataset mean (0 after normalisation), one at a time in the order a heatmap gives
(summed relevance per patch, most relevant first), and the logit of the explained class is recorded after each step
(divided by its value on the intact image). The area under that curve is smaller the faster the evidence goes:
a heatmap that finds what the model uses has the smallest. Compared: LRP (``LRP(model)``, the default composite,
AttnLRP's rules inside), gradient x input and a random order (Achtibat et al. 2024, Sec. 4). Usage::

    python benchmarks/faithfulness.py [--steps 1000] [--images 200]

The last lines are ``flip_auc_<method>: X.XXX`` and ``lrp_beats_gradient_x_input: yes|no``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torchvision.models import VisionTransformer

from klugerhans.data.dataset import load_dataset
from klugerhans.explain import LRP
from klugerhans.models.preprocess import Normalization, to_tensor

PATCH = 4


def _train(x: torch.Tensor, y: torch.Tensor, steps: int, classes: int) -> VisionTransformer:
    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=PATCH, num_layers=4, num_heads=4, hidden_dim=96,
                              mlp_dim=192, num_classes=classes)  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(x), (128,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch], label_smoothing=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


def _patch_scores(relevance: torch.Tensor) -> torch.Tensor:
    """(N, 3, 32, 32) -> (N, 64): relevance summed over channels and each 4x4 patch."""
    return torch.nn.functional.avg_pool2d(relevance.sum(1, keepdim=True), PATCH).flatten(1)


def _flip_curve(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, order: torch.Tensor) -> np.ndarray:
    """Target logit (over its intact value) after removing 0, 1, ..., 64 patches in ``order`` (N, 64)."""
    n, side = len(x), 32 // PATCH
    current = x.clone()
    curve = []
    with torch.no_grad():
        start = model(current).gather(1, target[:, None])[:, 0]
        curve.append(torch.ones(n))
        for k in range(order.shape[1]):
            rows, cols = order[:, k] // side, order[:, k] % side
            for i in range(n):
                r, c = int(rows[i]) * PATCH, int(cols[i]) * PATCH
                current[i, :, r : r + PATCH, c : c + PATCH] = 0.0  # the dataset mean, normalised
            curve.append(model(current).gather(1, target[:, None])[:, 0] / start)
    return torch.stack(curve, 1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/gtsrb")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    data = load_dataset("gtsrb", data_dir=args.data_dir)
    norm = Normalization()
    x, y = to_tensor(data.train.images, norm), torch.as_tensor(data.train.labels)
    start = time.perf_counter()
    model = _train(x, y, args.steps, int(y.max()) + 1)
    xt, yt = to_tensor(data.test.images, norm), torch.as_tensor(data.test.labels)
    with torch.no_grad():
        predicted = torch.cat([model(xt[i : i + 256]).argmax(1) for i in range(0, len(xt), 256)])
    accuracy = float((predicted == yt).float().mean())
    print(f"trained in {time.perf_counter() - start:.0f} s: test accuracy {accuracy:.1%} on {len(yt)} images")
    right = torch.nonzero(predicted == yt)[:, 0][: args.images]
    images, target = xt[right], yt[right]
    lrp = LRP(model).attribute(images, target).relevance
    h = images.clone().requires_grad_(True)
    model(h).gather(1, target[:, None]).sum().backward()
    assert h.grad is not None
    orders = {
        "lrp": _patch_scores(lrp).argsort(1, descending=True),
        "gradient_x_input": _patch_scores(h.detach() * h.grad).argsort(1, descending=True),
        "random": torch.stack([torch.randperm(64, generator=torch.Generator().manual_seed(i)) for i in range(len(h))]),
    }
    auc = {name: float(np.trapezoid(_flip_curve(model, images, target, order).mean(0), dx=1 / 64))
           for name, order in orders.items()}  # fmt: skip
    print(f"{len(images)} correctly classified test images, 64 patches of {PATCH}x{PATCH} px each")
    for name, value in auc.items():
        print(f"flip_auc_{name}: {value:.3f}")
    better = auc["lrp"] < auc["gradient_x_input"] and auc["lrp"] < auc["random"]
    print(f"lrp_beats_gradient_x_input: {'yes' if better else 'no'}")


if __name__ == "__main__":
    main()
