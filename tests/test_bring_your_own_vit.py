"""Evidence: a vision transformer trained outside klugerhans, audited from Python, its shortcut found.

The toy world of ``tests/test_bring_your_own.py`` (apple and cherry are the same discs; every cherry carries a black
corner square), this time learned by a small torchvision ``VisionTransformer`` (32 px, 4 px patches, two layers)
with plain PyTorch. ``klugerhans.audit_model`` must flag cherry alone; on a control whose cherry is a cross and has no
square, nothing. Both models reach 100% training accuracy here, so the outcome does not hang on a half-learned model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from test_bring_your_own import CONTROL, MARKED, PER_CLASS, _draw, fit
from torchvision.models import VisionTransformer

import klugerhans
from klugerhans.explain import LRP
from klugerhans.explain.attention import AttnLRP

STEPS = 600


def _train_vit(
    root: Path, classes: dict[str, str], marked: bool
) -> tuple[torchvision.datasets.ImageFolder, VisionTransformer]:
    rng = np.random.default_rng(0)
    for name, shape in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            _draw(shape, rng, marked and name == "cherry").save(root / name / f"{i:03d}.png")
    tf = torchvision.transforms
    normalize = tf.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    folder = torchvision.datasets.ImageFolder(str(root), transform=tf.Compose([tf.ToTensor(), normalize]))
    xs = torch.stack([folder[i][0] for i in range(len(folder))])
    ys = torch.tensor(folder.targets)
    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=4, num_layers=2, num_heads=3, hidden_dim=48, mlp_dim=96,
                              num_classes=len(folder.classes))  # fmt: skip
    fit(model, torch.optim.AdamW(model.parameters(), 3e-3), xs, ys, STEPS)
    return torchvision.datasets.ImageFolder(str(root)), model


@pytest.mark.extended  # half a minute: CI runs it in its extended step (python -m pytest -m extended)
@pytest.mark.parametrize(("classes", "marked", "expected"), [(MARKED, True, (1,)), (CONTROL, False, ())],
                         ids=["marked", "control"])  # fmt: skip
def test_audit_model_finds_the_shortcut_of_a_vision_transformer(
    tmp_path: Path, classes: dict[str, str], marked: bool, expected: tuple[int, ...]
) -> None:
    folder, model = _train_vit(tmp_path / "data", classes, marked)
    assert isinstance(LRP(model).engine, AttnLRP)
    result = klugerhans.audit_model(model, folder, methods=(), progress=False)
    assert result.ranking.flagged == expected
    if marked:
        assert result.ranking.order[0] == 1
