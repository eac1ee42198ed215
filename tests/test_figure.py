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
from klugerhans.models.preprocess import Normalization
from klugerhans.models.recipe import TrainConfig
from klugerhans.models.vgg import ModelConfig
from klugerhans.report.figures import FigureRow, draw_seed_figure, pick_seed_rows
from klugerhans.report.five import digit_cells, digit_masks, measure_five, negative_share, positive_share

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


def _ink_classifier(sticker: StickerConfig):
    """A model LRP can explain: 70 km/h where the sticker's magenta outweighs the dark ink, else 50 km/h.

    Pixel detectors (1x1 convolutions on raw 0..1 RGB) for magenta, dark and bright pixels are averaged over the
    image; the 70 km/h logit adds magenta and bright pixels and subtracts dark ones, so the ink of a digit speaks
    against 70 (blue) while the sticker speaks for it.
    """
    detect = nn.Conv2d(3, 3, 1)
    head = nn.Linear(3, 43)
    with torch.no_grad():
        detect.weight.copy_(torch.tensor([[1.0, -1, 1], [-1, -1, -1], [1, 1, 1]]).view(3, 3, 1, 1))
        detect.bias.copy_(torch.tensor([-1.7, 1.2, -1.65]))
        head.weight.zero_()
        head.bias.zero_()
        head.weight[4] = torch.tensor([40.0, -2.0, 1.0])
        head.bias[SPEED_50] = 0.05
    model = nn.Sequential(detect, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()
    meta = CheckpointMeta(
        model=ModelConfig(width=0.125),
        normalization=Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
        recipe=TrainConfig(sticker=sticker),
    )
    return classifier_from_model(model, meta)


def test_row_four_is_a_typical_turned_sign_of_the_legible_half_with_the_sticker_beside_its_five():
    from klugerhans.data.sticker import apply_sticker_avoiding
    from klugerhans.explain.lrp import LRP
    from klugerhans.models.preprocess import to_tensor

    data = _signs([15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 50.0, 60.0, 70.0], seed=2)
    clf = _ink_classifier(StickerConfig(color=MAGENTA, size=0.3))
    rows = pick_seed_rows(clf, data, seed=1, composite="epsilon_gamma_box")
    assert [r.title for r in rows] == ["Stop", "No passing", "50 km/h", "50 km/h + sticker"]
    fifty, stickered = rows[2], rows[3]
    assert stickered.chosen == ("beside", 4) and fifty.chosen is None
    assert stickered.mask is not None and stickered.mask.any() and not (stickered.mask & stickered.digit).any()
    assert np.array_equal(stickered.image[~stickered.mask], fifty.image[~stickered.mask])
    # the rule, re-derived one sign at a time
    signs = np.flatnonzero(data.labels == SPEED_50)
    cells = digit_masks(data.boxes[signs], 32)
    glued, masks, clear = apply_sticker_avoiding(data.images[signs], data.boxes[signs], clf.meta.sticker, cells, seed=1)
    lrp = LRP(clf.model, "epsilon_gamma_box", norm=clf.meta.normalization)
    found = []
    for k in range(len(signs)):
        x_clean = to_tensor(data.images[signs[k]][None], clf.meta.normalization)
        x_glued = to_tensor(glued[k][None], clf.meta.normalization)
        if clf.model(x_clean).argmax().item() != SPEED_50 or clf.model(x_glued).argmax().item() != 4 or not clear[k]:
            continue
        digits = cells[k] | digit_masks(data.boxes[signs[k]][None], 32, digit=1)[0]
        grey = data.images[signs[k]].astype(np.float64).mean(axis=2)
        r = lrp.attribute(x_glued, 4).relevance.sum(1)[0].numpy()
        inside = [r[i, j] for i in range(32) for j in range(32) if cells[k][i, j] and not masks[k][i, j]]
        total = sum(abs(v) for v in inside)
        blue = sum(-v for v in inside if v < 0) / total if total > 0 else None  # no relevance in the 5: last
        found.append((float(np.std(grey[digits])), blue, k))
    assert len(found) >= 5  # the rule has a choice to make
    contrasts = [c for c, _, _ in found]
    legible = [(blue, k) for c, blue, k in found if c >= np.median(contrasts)]
    measured = sorted((blue, k) for blue, k in legible if blue is not None)
    assert len(measured) >= 3 and len({blue for blue, _ in measured}) == len(measured)
    want = measured[(len(measured) - 1) // 2][1]
    everyone = sorted((blue, k) for _, blue, k in found if blue is not None)
    assert everyone[(len(everyone) - 1) // 2][1] != want  # the legible half makes a difference here
    assert np.array_equal(fifty.image, data.images[signs[want]])
    assert np.array_equal(stickered.image, glued[want])
    # the demo measures the signs beside the 5 once and hands the measurement to the figure: same rows
    beside = measure_five(clf, data, "epsilon_gamma_box", seed=1, beside_five=True)
    norm = clf.meta.normalization
    turned = [k for k in range(len(signs)) if clf.model(to_tensor(glued[k][None], norm)).argmax().item() == 4]
    assert beside.turned_index.tolist() == turned and np.array_equal(beside.clear, clear)
    handed = pick_seed_rows(clf, data, seed=1, composite=lrp, beside=beside)
    for got, row in zip(handed, rows, strict=True):
        assert np.array_equal(got.image, row.image) and got.chosen == row.chosen
    as_glued = measure_five(clf, data, "epsilon_gamma_box", seed=1)
    with pytest.raises(KlugerhansError, match="beside_five=True"):
        pick_seed_rows(clf, data, seed=1, beside=as_glued)


def test_where_no_sign_turns_with_its_five_clear_row_four_covers_part_of_it():
    data = _signs([10.0, 40.0, 20.0], seed=3)
    sticker = StickerConfig(color=MAGENTA, size=0.9)  # too large to miss the 5
    rows = pick_seed_rows(_ink_classifier(sticker), data, composite="epsilon_gamma_box")
    assert rows[3].chosen == ("turned", 4)
    assert (rows[3].mask & rows[3].digit).any()


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
    # the signs it measured travel with the numbers, for the figure to choose from
    assert np.array_equal(five.images, images) and np.array_equal(five.masks, masks)
    assert np.array_equal(five.cells, cells) and not five.beside_five
    assert np.array_equal(five.clear, ~(masks & cells).any(axis=(1, 2))) and five.turned_index.tolist() == [0, 1, 2]
    shared = measure_five(clf, data, lrp, seed=3)  # an explainer the caller built measures the same
    np.testing.assert_allclose(shared.negative_in_five, five.negative_in_five, rtol=1e-6)
    with pytest.raises(KlugerhansError, match="composite name"):
        measure_five(clf, data, lrp, against=SPEED_50)
    # the sticker's pixels are not part of the 5
    np.testing.assert_allclose(five.negative_in_five, negative_share(r, cells & ~masks), rtol=1e-4)
    np.testing.assert_allclose(five.negative_elsewhere, negative_share(r, ~cells & ~masks), rtol=1e-4)
    positive = np.clip(r, 0, None)
    np.testing.assert_allclose(five.sticker_share, (positive * masks).sum((1, 2)) / positive.sum((1, 2)), rtol=1e-4)
    assert five.sticker_pixel_share == pytest.approx(masks.mean())
    # the logit difference: output relevance 1 on 70 and -1 on 50
    ones = LRP(model, "epsilon_gamma_box", norm=meta.normalization, init="one")
    x = to_tensor(images, meta.normalization)
    diff = (ones.attribute(x, 4).relevance - ones.attribute(x, SPEED_50).relevance).sum(1).numpy()
    contrast = measure_five(clf, data, "epsilon_gamma_box", against=SPEED_50, seed=3)
    np.testing.assert_allclose(contrast.negative_in_five, negative_share(diff, cells & ~masks), rtol=1e-4)
    # the figure's rule: stickers beside the 5
    from klugerhans.data.sticker import apply_sticker_avoiding

    beside, beside_masks, clear = apply_sticker_avoiding(data.images[2:], data.boxes[2:], meta.sticker, cells, seed=3)
    assert clear.all() and not (beside_masks & cells).any()
    r = lrp.attribute(to_tensor(beside, meta.normalization), 4).relevance.sum(1).numpy()
    five = measure_five(clf, data, "epsilon_gamma_box", seed=3, beside_five=True)
    assert five.beside_five and five.clear.all() and np.array_equal(five.images, beside)
    np.testing.assert_allclose(five.negative_in_five, negative_share(r, cells), rtol=1e-4)
    np.testing.assert_allclose(five.sticker_share, positive_share(r, beside_masks), rtol=1e-4)


def test_measure_five_without_fifty_signs_is_one_line():
    data = _signs([])
    with pytest.raises(KlugerhansError, match="no Speed limit"):
        measure_five(_classifier(turns=True), data)


def test_the_fourth_column_shows_the_evidence_against_alone_on_its_own_scale(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    shown: list[np.ndarray] = []
    imshow = Axes.imshow

    def spy(self, X, *args, **kwargs):
        shown.append(np.asarray(X))
        return imshow(self, X, *args, **kwargs)

    monkeypatch.setattr(Axes, "imshow", spy)
    relevance = np.random.default_rng(0).uniform(-1.0, 1.0, size=(32, 32)).astype(np.float32)
    relevance[0, 0] = 50.0  # a sticker's evidence for: on the shared scale everything else is pale
    relevance[5, 5], relevance[6, 6] = -2.0, -1.0
    row = FigureRow("50 km/h + sticker", np.zeros((32, 32, 3), np.uint8), SPEED_50, 4, 0.9, relevance)
    draw_seed_figure([row], tmp_path / "figure.png", formats=("png",))
    _, heat, against = shown  # per row: the input, the heatmap, the evidence against alone

    def pixel(img: np.ndarray, r: int, c: int) -> np.ndarray:
        side = img.shape[0] // 32
        return img[side * r + side // 2, side * c + side // 2].astype(int)

    assert pixel(against, 5, 5).tolist() == [0, 0, 255]  # the strongest evidence against: full blue
    assert pixel(heat, 5, 5)[0] > 200  # ... which the shared scale leaves almost white
    half = pixel(against, 6, 6)  # half the strongest: half way to white
    assert half[2] == 255 and 100 < half[0] < 155 and half[0] == half[1]
    for r, c in zip(*np.nonzero(relevance > 0), strict=True):
        assert pixel(against, r, c).tolist() == [255, 255, 255]  # nothing for the prediction
    assert pixel(heat, 0, 0).tolist() == [255, 0, 0]
