"""The transplant probes: each helper against naive code, and each probe finding the artefact shape it is for."""

from __future__ import annotations

import numpy as np
import pytest

from klugerhans.audit.config import AuditConfig
from klugerhans.audit.probes import (
    DEFAULT_PROBES,
    PROBES,
    best_windows,
    check_probes,
    paste_pixels,
    paste_rings,
    random_pixels,
    top_pixels,
    transfer_colour,
    unpack_pixels,
)
from klugerhans.audit.ranking import rank_classes
from klugerhans.audit.transplant import TransplantConfig, transplant_class
from klugerhans.errors import KlugerhansError

SIZE = 32


def test_top_pixels_are_the_most_relevant_positive_pixels() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(size=(4, 9, 7)).astype(np.float32)
    r[3] = -np.abs(r[3])
    r[3, 2, 2] = 1.0  # a single positive pixel: the mask holds it alone
    packed = top_pixels(r, 10)
    assert packed.shape == (4, -(-63 // 8)) and packed.dtype == np.uint8
    flat = np.unpackbits(packed, axis=1, count=63).astype(bool)
    for i in range(3):
        naive = set(np.argsort(-r[i].ravel(), kind="stable")[:10].tolist())
        naive = {j for j in naive if r[i].ravel()[j] > 0}
        assert set(np.flatnonzero(flat[i]).tolist()) == naive
    assert np.flatnonzero(flat[3]).tolist() == [2 * 7 + 2]
    square = np.zeros((1, 6, 6), np.float32)
    square[0, 1:3, 4:6] = 5.0
    assert np.array_equal(unpack_pixels(top_pixels(square, 4), 6)[0], square[0] > 0)
    with pytest.raises(KlugerhansError):
        top_pixels(square, 37)


def test_random_pixels_match_the_count_inside_the_box_and_avoid_the_mask() -> None:
    rng = np.random.default_rng(1)
    masks = np.zeros((3, SIZE, SIZE), bool)
    masks[0, 0, :20] = True
    masks[1, 10:14, 10:14] = True
    boxes = np.array([[4, 4, 28, 28], [8, 8, 16, 16], [0, 0, 32, 32]], np.float32)  # 2nd box: 64 px, 16 masked
    drawn = random_pixels(masks, boxes, rng)
    assert drawn.sum((1, 2)).tolist() == [20, 16, 0]
    assert not (drawn & masks).any()
    assert drawn[0, 4:28, 4:28].sum() == 20 and drawn[1, 8:16, 8:16].sum() == 16
    masks[1, 8:16, 8:16] = True  # the box is full: the control comes from the rest of the image
    masks[1, 10:14, 10:14] = False
    assert random_pixels(masks, boxes, rng)[1].sum() == masks[1].sum()


def test_paste_pixels_and_colour_transfer_match_their_formulas() -> None:
    rng = np.random.default_rng(2)
    rec = rng.integers(40, 200, size=(3, 8, 8, 3), dtype=np.uint8)
    don = rng.integers(60, 180, size=(3, 8, 8, 3), dtype=np.uint8)
    mask = rng.random((3, 8, 8)) < 0.3
    out = paste_pixels(rec, don, mask)
    assert np.array_equal(out[mask], don[mask]) and np.array_equal(out[~mask], rec[~mask])
    moved = transfer_colour(rec, don)
    for i in range(3):
        for ch in range(3):
            a, b = rec[i, ..., ch].astype(float), don[i, ..., ch].astype(float)
            naive = (a - a.mean()) / (a.std() + 1) * (b.std() + 1) + b.mean()
            assert np.abs(moved[i, ..., ch] - np.clip(np.rint(naive), 0, 255)).max() <= 1
            assert moved[i, ..., ch].mean() == pytest.approx(b.mean(), abs=1.0)
    assert transfer_colour(np.zeros((1, 4, 4, 3), np.uint8), don[:1, :4, :4]).dtype == np.uint8


def test_paste_rings_stretch_the_donor_box_band_onto_the_recipient_box_band() -> None:
    rng = np.random.default_rng(5)
    rec = rng.integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    don = rng.integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    whole = np.tile(np.array([[0, 0, 16, 16]], np.float32), (2, 1))
    out = paste_rings(rec, don, whole, whole, share=0.125)  # a 2 px band of the whole image
    band = np.zeros((16, 16), bool)
    band[:2], band[-2:], band[:, :2], band[:, -2:] = True, True, True, True
    assert np.array_equal(out[:, band], don[:, band]) and np.array_equal(out[:, ~band], rec[:, ~band])
    # donor box 8 px at (4, 4), recipient box 4 px at (10, 2): the band is 1 px, each pixel the donor's at the same
    # relative place (a naive loop over the recipient box)
    out = paste_rings(rec[:1], don[:1], np.array([[2, 10, 6, 14]], np.float32), np.array([[4, 4, 12, 12]]), 0.25)
    naive = rec[0].copy()
    for y in range(4):
        for x in range(4):
            if y in (0, 3) or x in (0, 3):
                naive[10 + y, 2 + x] = don[0, 4 + int((y + 0.5) * 2), 4 + int((x + 0.5) * 2)]
    assert np.array_equal(out[0], naive)


def test_check_probes() -> None:
    assert check_probes(["colour", "window"]) == ("window", "colour")
    assert check_probes(PROBES) == PROBES
    for bad in (["frame"], []):
        with pytest.raises(KlugerhansError, match="probe"):
            check_probes(bad)
    with pytest.raises(KlugerhansError, match="unknown transplant probe"):
        AuditConfig(checkpoint="x", probes=("window", "ruler"))
    with pytest.raises(KlugerhansError, match="unknown transplant probe"):
        TransplantConfig(probes=("ruler",))


# A hand-written "model" on uint8 images: class 1 when at least 40% of the image's outer ring is magenta (a frame
# shortcut), class 2 when the image is red-tinted on average (a colour-cast shortcut), else class 0.
_RING = np.zeros((SIZE, SIZE), bool)
_RING[[0, -1], :] = True
_RING[:, [0, -1]] = True
_MAGENTA = np.array([255, 0, 255], np.uint8)


def _predict(images: np.ndarray) -> np.ndarray:
    ring = (images[:, _RING] == _MAGENTA).all(-1).mean(1)
    reddish = images[..., 0].astype(float).mean((1, 2)) - images[..., 1:].astype(float).mean((1, 2, 3)) > 60
    return np.where(ring >= 0.4, 1, np.where(reddish, 2, 0))


def _world() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    images = rng.integers(90, 160, size=(60, SIZE, SIZE, 3), dtype=np.uint8)
    labels = np.repeat([0, 1, 2], 20)
    framed = images[labels == 1]
    framed[:, _RING] = _MAGENTA
    images[labels == 1] = framed
    images[labels == 2, ..., 0] = np.minimum(images[labels == 2, ..., 0].astype(int) + 110, 255).astype(np.uint8)
    relevance = np.zeros((60, SIZE, SIZE), np.float32)
    relevance[labels == 1] = _RING * 1.0  # the frame is what the "model" reads
    relevance[labels != 1] = np.random.default_rng(4).random((40, SIZE, SIZE))
    assert (_predict(images) == labels).all()
    return images, labels, relevance


@pytest.mark.parametrize(
    ("class_id", "probe", "probes"), [(1, "pixels", PROBES), (1, "ring", DEFAULT_PROBES), (2, "colour", PROBES)]
)
def test_each_probe_finds_the_shortcut_it_is_for(class_id: int, probe: str, probes: tuple[str, ...]) -> None:
    images, labels, relevance = _world()
    boxes = np.tile(np.array([[0, 0, SIZE, SIZE]], np.float32), (60, 1))
    side = 8
    donors = np.flatnonzero(labels == class_id)
    corners, share = best_windows(relevance[donors], side)
    pixels = top_pixels(relevance[donors], side * side)
    recipients = np.flatnonzero(labels != class_id)
    config = TransplantConfig(recipients=40, placement="random", probes=probes)
    result = transplant_class(
        _predict, class_id, images, boxes, donors, corners, share, recipients, config, donor_pixels=pixels
    )
    assert result.probe == probe
    assert set(result.by_probe) == set(probes)
    assert result.by_probe["window"]["hijack_rate"] == 0.0  # an 8 px window holds neither shortcut
    assert result.hijack_rate == result.by_probe[probe]["hijack_rate"] >= 0.9
    assert result.control_rate <= 0.1 and result.p_value < 1e-6
    assert result.summary()["probe"] == probe
    ranking = rank_classes({class_id: result}, threshold=0.5, alpha=0.01, n_probes=3)
    assert ranking.flagged == (class_id,) and ranking.corrected_alpha == pytest.approx(0.01 / 3)
    window_only = transplant_class(
        _predict, class_id, images, boxes, donors, corners, share, recipients,
        TransplantConfig(recipients=40, placement="random", probes=("window",)), donor_pixels=pixels,
    )  # fmt: skip
    assert window_only.probe == "window" and window_only.hijack_rate == 0.0 and set(window_only.by_probe) == {"window"}
    with pytest.raises(KlugerhansError, match="pixel masks"):
        transplant_class(
            _predict, class_id, images, boxes, donors, corners, share, recipients, TransplantConfig(probes=("pixels",))
        )
