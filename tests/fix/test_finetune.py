"""Repair fine-tuning and the right-for-the-right-reasons penalty (Ross et al. 2017)."""

import copy

import numpy as np
import pytest
import torch

from klugerhans.errors import KlugerhansError
from klugerhans.fix.finetune import FineTuneConfig, _rrr_penalty, fine_tune
from klugerhans.models.loop import TrainStep, make_optimizer
from klugerhans.models.preprocess import Normalization
from klugerhans.models.vgg import ModelConfig, create_model


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), n // 4)
    images = rng.integers(0, 60, size=(n, 32, 32, 3)).astype(np.uint8)
    for c in range(4):  # class c: a bright quadrant
        y, x = divmod(c, 2)
        images[labels == c, 16 * y : 16 * y + 16, 16 * x : 16 * x + 16] += 150
    return images, labels


def test_rrr_penalty_matches_a_per_image_re_derivation():
    torch.manual_seed(0)
    model = create_model(ModelConfig(width=0.125, num_classes=4)).eval()
    images, _ = _data(8)
    masks = np.zeros((8, 32, 32), dtype=np.float32)
    masks[:, 4:10, 6:12] = 1.0
    step = TrainStep(model, make_optimizer(model, 0.1, 0.0), Normalization(), torch.device("cpu"))
    x_u8 = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    got = _rrr_penalty(model, step, x_u8, torch.from_numpy(masks))
    # Ross et al.: sum over the masked input dimensions of (d/dx sum_k log p_k)^2, one image at a time.
    total = 0.0
    for i in range(8):
        x = step.inputs(x_u8[i : i + 1]).double().requires_grad_(True)
        net = copy.deepcopy(model).double()
        logp = torch.log_softmax(net(x), dim=1).sum()
        (g,) = torch.autograd.grad(logp, x)
        total += float((g.pow(2).sum(1)[0] * torch.from_numpy(masks[i]).double()).sum())
    assert float(got.detach()) == pytest.approx(total / 8, rel=1e-3)


def test_fine_tuning_learns_and_keeps_the_best_epoch():
    torch.manual_seed(0)
    images, labels = _data(64)
    model = create_model(ModelConfig(width=0.125, num_classes=4))
    config = FineTuneConfig(epochs=3, lr=0.05, batch_size=16, augment=False)
    tuned, history = fine_tune(
        model, images, labels, images, labels, Normalization(), config, target_class=0, progress=False
    )
    assert len(history) == 3 and not tuned.training
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert max(h["val_acc"] for h in history) >= 0.5
    assert set(history[0]) >= {"train_loss", "rrr_penalty", "val_acc", "val_acc_target", "seconds"}


def test_rrr_makes_the_model_blind_inside_the_mask():
    """A decoy that predicts the class perfectly: without RRR the model uses it; with RRR it is ignored."""
    torch.manual_seed(0)
    images, labels = _data(64, seed=1)
    decoy = images.copy()
    masks = np.zeros((64, 32, 32), dtype=bool)
    for i, c in enumerate(labels):
        masks[i, 0:4, 8 * c : 8 * c + 4] = True  # the decoy: a white square whose position gives the class
    decoy[masks] = 255

    def sensitivity(model):
        step = TrainStep(model, make_optimizer(model, 0.1, 0.0), Normalization(), torch.device("cpu"))
        x = torch.from_numpy(decoy).permute(0, 3, 1, 2).contiguous()
        return float(_rrr_penalty(model.eval(), step, x, torch.from_numpy(masks.astype(np.float32))).detach())

    config = FineTuneConfig(epochs=4, lr=0.05, batch_size=16, augment=False, rrr_weight=0.0)
    torch.manual_seed(0)
    plain, _ = fine_tune(create_model(ModelConfig(width=0.125, num_classes=4)), decoy, labels, decoy, labels,
                         Normalization(), config, masks=masks, progress=False)  # fmt: skip
    torch.manual_seed(0)
    rrr, hist = fine_tune(create_model(ModelConfig(width=0.125, num_classes=4)), decoy, labels, decoy, labels,
                          Normalization(), FineTuneConfig(epochs=4, lr=0.05, batch_size=16, augment=False,
                          rrr_weight=100.0), masks=masks, progress=False)  # fmt: skip
    assert all(h["rrr_penalty"] > 0 for h in hist)
    assert sensitivity(rrr) < 0.2 * sensitivity(plain), (sensitivity(rrr), sensitivity(plain))


def test_settings_are_checked():
    for bad in ({"epochs": -1}, {"batch_size": 0}, {"lr": 0.0}, {"rrr_weight": -1.0}, {"weight_decay": -1.0}):
        with pytest.raises(KlugerhansError):
            FineTuneConfig(**bad)
