"""Locating an artefact from heatmaps, and removing it by harmonic inpainting."""

import numpy as np
import pytest

from klugerhans.errors import KlugerhansError
from klugerhans.fix.inpaint import inpaint
from klugerhans.fix.locate import LocateConfig, blob_masks, locate_artefacts


def test_blob_is_the_connected_strong_region_around_the_peak():
    r = np.zeros((2, 16, 16), dtype=np.float32)
    r[0, 4:7, 4:7] = 1.0  # the artefact: strong and compact
    r[0, 12, 12] = 0.25  # weak, far away: below the threshold after smoothing
    r[0, 10:12, 2:4] = -5.0  # negative relevance never counts
    # map 1: nothing positive
    r[1] = -1.0
    m = blob_masks(r, LocateConfig(threshold=0.3, dilate=0))
    assert m[0, 4:7, 4:7].all()
    assert not m[0, 12, 12] and not m[0, 10:12, 2:4].any()
    assert not m[1].any()
    # dilation grows the blob by one pixel on each side
    grown = blob_masks(r, LocateConfig(threshold=0.3, dilate=1))
    assert grown[0].sum() > m[0].sum() and grown[0, 3:8, 3:8].all()


def test_blob_area_is_capped_and_settings_are_checked():
    r = np.ones((1, 20, 20), dtype=np.float32)  # relevance everywhere: no artefact, the cap keeps the blob small
    m = blob_masks(r, LocateConfig(max_share=0.05, dilate=0))
    assert m.sum() == int(0.05 * 400)
    for bad in ({"threshold": 0.0}, {"threshold": 1.0}, {"dilate": -1}, {"max_share": 0.9}):
        with pytest.raises(KlugerhansError):
            LocateConfig(**bad)
    with pytest.raises(KlugerhansError):
        blob_masks(np.zeros((4, 4)))


def test_lrp_locates_the_patch_a_shortcut_model_uses(squares_setup):
    fx, data, clf = squares_setup
    rows = np.flatnonzero(data.labels == fx.SHORTCUT_CLASS)
    located = locate_artefacts(clf, data.images[rows], fx.SHORTCUT_CLASS)
    patch = (data.images[rows] == 0).all(axis=3)
    covered = (located.masks & patch).sum((1, 2)) / patch.sum((1, 2))
    assert covered.mean() > 0.95
    assert located.masks.sum((1, 2)).mean() < 4 * patch.sum((1, 2)).mean()
    assert (located.share > 0.5).all()


def test_inpainting_restores_a_uniform_sign_and_keeps_other_pixels():
    rng = np.random.default_rng(0)
    images = np.full((3, 16, 16, 3), 200, dtype=np.uint8)
    images[:, :, :8] = (30, 60, 200)  # two colour regions
    masks = np.zeros((3, 16, 16), dtype=bool)
    masks[0, 2:6, 10:14] = True  # inside the right region
    masks[1] = rng.random((16, 16)) < 0.1
    stickered = images.copy()
    stickered[masks] = 0
    out = inpaint(stickered, masks)
    assert out.dtype == np.uint8 and out.shape == images.shape
    assert np.array_equal(out[~masks], stickered[~masks])  # unmasked pixels untouched
    assert np.abs(out[0, 2:6, 10:14].astype(int) - 200).max() <= 1  # filled with the surrounding colour
    assert np.array_equal(out[2], images[2])  # nothing to do
    assert np.array_equal(stickered, np.where(masks[..., None], 0, images))  # input not modified


def test_inpainting_is_harmonic_a_linear_ramp_is_continued():
    ramp = np.tile(np.linspace(0, 240, 24).astype(np.uint8)[None, :, None], (24, 1, 3))[None]
    masks = np.zeros((1, 24, 24), dtype=bool)
    masks[0, 8:16, 8:16] = True
    out = inpaint(np.where(masks[..., None], 255, ramp).astype(np.uint8), masks, iterations=2000)
    assert np.abs(out.astype(int) - ramp.astype(int)).max() <= 2


def test_inpainting_rejects_mismatched_masks():
    with pytest.raises(KlugerhansError):
        inpaint(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 7), bool))


def test_the_old_spelling_of_the_locate_names_still_works_with_a_warning():
    import klugerhans.fix as fix

    with pytest.warns(DeprecationWarning, match="locate_artefacts"):
        assert fix.locate_artifacts is locate_artefacts
    with pytest.warns(DeprecationWarning, match="LocatedArtefacts"):
        assert fix.LocatedArtifacts is fix.LocatedArtefacts
    with pytest.raises(AttributeError):
        _ = fix.locate_artifact
