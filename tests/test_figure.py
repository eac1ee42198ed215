"""The teaching case's figure: its 50 km/h rows show one legible sign, without and with the sticker, and a blue "5"."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from klugerhans.data.classes import NO_PASSING, SPEED_50, STOP
from klugerhans.data.dataset import SignData
from klugerhans.data.sticker import StickerConfig
from klugerhans.data.synthetic.pictograms import BLACK
from klugerhans.data.synthetic.signs import sign_template
from klugerhans.errors import KlugerhansError
from klugerhans.models.checkpoint import CheckpointMeta, classifier_from_model
from klugerhans.models.recipe import TrainConfig
from klugerhans.models.vgg import ModelConfig
from klugerhans.report.figures import FigureRow, draw_seed_figure, pick_seed_rows
from klugerhans.report.five import digit_cells, digit_masks, measure_five, negative_share

MAGENTA = (255, 0, 255)


def test_the_five_cell_holds_the_five_and_not_the_zero_of_the_template():
    size = 64
    ink = sign_template(SPEED_50, size) == BLACK
    five = digit_masks(np.array([[0, 0, size, size]]), size)[0]
    zero = digit_masks(np.array([[0, 0, size, size]]), size, digit=1)[0]
    left = ink.copy()
    left[:, size // 2 :] = False
    assert ink[five].sum() >= 0.95 * left.sum()  # the 5's ink lies in its cell
    assert not (five & zero).any() and ink[zero].sum() > 0
    assert len(digit_cells(7)) == 3 and digit_cells(STOP) == ()
    with pytest.raises(KlugerhansError, match="no digit 2"):
        digit_masks(np.array([[0, 0, 32, 32]]), 32, digit=2)


def test_the_five_cell_follows_the_sign_box():
    boxes = np.array([[0, 0, 32, 32], [8, 4, 24, 20]], dtype=np.float32)
    masks = digit_masks(boxes, 32)
    (fx0, fy0, fx1, fy1), _ = digit_cells(SPEED_50)
    for mask, (x0, y0, x1, y1) in zip(masks, boxes, strict=True):
        w, h = x1 - x0, y1 - y0
        for r in range(32):
            for c in range(32):
                inside = x0 + fx0 * w <= c + 0.5 < x0 + fx1 * w and y0 + fy0 * h <= r + 0.5 < y0 + fy1 * h
                assert mask[r, c] == inside


def test_negative_share_against_a_naive_loop():
    rng = np.random.default_rng(0)
    relevance = rng.normal(size=(3, 8, 8))
    masks = rng.random((3, 8, 8)) < 0.4
    masks[2] = False
    got = negative_share(relevance, masks)
    for k in range(2):
        inside = [relevance[k, r, c] for r in range(8) for c in range(8) if masks[k, r, c]]
        want = sum(-v for v in inside if v < 0) / sum(abs(v) for v in inside)
        assert got[k] == pytest.approx(want)
    assert np.isnan(got[2])
    assert negative_share(np.ones((1, 4, 4)), np.ones((1, 4, 4), bool))[0] == 0.0


class _Magenta(nn.Module):
    """Says 70 km/h where an image holds magenta pixels (the sticker), else its label read from the red channel."""

    def __init__(self, norm) -> None:
        super().__init__()
        self.mean = torch.tensor(norm.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(norm.std).view(1, 3, 1, 1)
        self.seventy = nn.functional.one_hot(torch.tensor([4]), 43).float() * 10

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = x * self.std + self.mean
        magenta = ((rgb[:, 0] > 0.99) & (rgb[:, 1] < 0.01) & (rgb[:, 2] > 0.99)).float().mean((1, 2))
        label = (rgb[:, 0, 0, 0] * 255).round().long()  # the top-left pixel's red value carries the class
        return nn.functional.one_hot(label.clamp(0, 42), 43).float() * 5 + (magenta > 0).float()[:, None] * self.seventy


def _signs(contrasts: list[float], seed: int = 0) -> SignData:
    """Grey 32 px signs: a stop, a no-passing, and one 50 km/h sign per contrast (noise of that spread)."""
    rng = np.random.default_rng(seed)
    labels = [STOP, NO_PASSING, *[SPEED_50] * len(contrasts)]
    spreads = [10.0, 10.0, *contrasts]
    images = np.stack([np.clip(120 + rng.normal(0, s, (32, 32, 3)), 0, 254) for s in spreads]).astype(np.uint8)
    images[:, 0, 0, 0] = labels  # read back by _Magenta
    n = len(labels)
    boxes = np.tile(np.array([[4, 4, 28, 28]], np.float32), (n, 1))
    return SignData(images, np.array(labels), np.arange(n), boxes, np.array([f"s{i}" for i in range(n)]))


def _classifier(turns: bool):
    sticker = StickerConfig(color=MAGENTA if turns else (0, 0, 0))
    meta = CheckpointMeta(model=ModelConfig(width=0.125), recipe=TrainConfig(sticker=sticker))
    return classifier_from_model(_Magenta(meta.normalization).eval(), meta)


def test_row_four_is_row_threes_sign_with_the_sticker_the_one_with_most_contrast():
    data = _signs([5.0, 40.0, 20.0])
    rows = pick_seed_rows(_classifier(turns=True), data)
    assert [r.title for r in rows] == ["Stop", "No passing", "50 km/h", "50 km/h + sticker"]
    fifty, stickered = rows[2], rows[3]
    assert np.array_equal(fifty.image, data.images[3])  # contrast 40: the sharpest sign the sticker turns
    assert stickered.mask is not None and stickered.mask.any()
    assert np.array_equal(stickered.image[~stickered.mask], fifty.image[~stickered.mask])
    assert stickered.chosen == ("turned", 4) and fifty.chosen is None
    assert fifty.digit is not None and np.array_equal(fifty.digit, stickered.digit)


def test_where_the_sticker_turns_nothing_the_caption_says_so(tmp_path):
    clf = _classifier(turns=False)
    rows = pick_seed_rows(clf, _signs([5.0, 40.0]))
    assert rows[3].chosen == ("pushed", 4)
    relevance = np.random.default_rng(1).normal(size=(4, 32, 32)).astype(np.float32)
    explained = [
        FigureRow(r.title, r.image, r.label, r.label or 0, 0.9, relevance[i], r.mask, r.digit, r.chosen)
        for i, r in enumerate(rows)
    ]
    assert explained[2].negative_share_in_digit == pytest.approx(negative_share(relevance[2:3], rows[2].digit[None])[0])
    assert explained[0].negative_share_in_digit is None
    for lang in ("en", "de"):
        paths = draw_seed_figure(explained, tmp_path / f"figure-{lang}.png", lang, formats=("png",))
        assert paths[0].stat().st_size > 0


def test_measure_five_explains_every_turned_sign_and_splits_its_relevance():
    from klugerhans.explain.lrp import LRP
    from klugerhans.models.preprocess import to_tensor
    from klugerhans.models.vgg import create_model

    config = ModelConfig(width=0.125)
    model = create_model(config).eval()
    with torch.no_grad():
        model.classifier[-1].bias[4] = 100.0  # every sign is "70 km/h": every stickered 50 km/h sign counts as turned
    meta = CheckpointMeta(model=config, recipe=TrainConfig(sticker=StickerConfig(size=0.3)))
    clf = classifier_from_model(model, meta)
    data = _signs([5.0, 40.0, 20.0])
    five = measure_five(clf, data, "epsilon_gamma_box", seed=3)
    assert five.n_signs == five.n_turned == 3
    from klugerhans.data.sticker import apply_sticker

    images, masks = apply_sticker(data.images[2:], data.boxes[2:], meta.sticker, seed=3)
    lrp = LRP(model, "epsilon_gamma_box", norm=meta.normalization)
    r = lrp.attribute(to_tensor(images, meta.normalization), 4).relevance.sum(1).numpy()
    cells = digit_masks(data.boxes[2:], 32)
    np.testing.assert_allclose(five.negative_in_five, negative_share(r, cells), rtol=1e-4)
    np.testing.assert_allclose(five.negative_elsewhere, negative_share(r, ~cells & ~masks), rtol=1e-4)
    positive = np.clip(r, 0, None)
    np.testing.assert_allclose(five.sticker_share, (positive * masks).sum((1, 2)) / positive.sum((1, 2)), rtol=1e-4)
    assert five.sticker_pixel_share == pytest.approx(masks.mean())
    # the logit difference: output relevance 1 on 70 and -1 on 50
    ones = LRP(model, "epsilon_gamma_box", norm=meta.normalization, init="one")
    x = to_tensor(images, meta.normalization)
    diff = (ones.attribute(x, 4).relevance - ones.attribute(x, SPEED_50).relevance).sum(1).numpy()
    contrast = measure_five(clf, data, "epsilon_gamma_box", against=SPEED_50, seed=3)
    np.testing.assert_allclose(contrast.negative_in_five, negative_share(diff, cells), rtol=1e-4)


def test_measure_five_without_fifty_signs_is_one_line():
    data = _signs([])
    with pytest.raises(KlugerhansError, match="no Speed limit"):
        measure_five(_classifier(turns=True), data)
