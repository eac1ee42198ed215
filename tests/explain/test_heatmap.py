"""Heatmap rendering: colour convention, symmetric normalisation, neutral zero, shapes, PNG files."""

import numpy as np
import pytest
import torch
from PIL import Image

from klugerhans.errors import KlugerhansError
from klugerhans.explain import CMAPS, overlay_heatmap, render_heatmap, save_png

NEUTRAL = {"bwr": (255, 255, 255), "coldnhot": (0, 0, 0), "seismic": (255, 255, 255)}


def _signed_map():
    r = np.zeros((4, 4))
    r[0, 0], r[0, 1], r[1, 0] = 2.0, -2.0, 0.7
    return r


@pytest.mark.parametrize("cmap", sorted(CMAPS))
def test_positive_is_red_negative_is_blue(cmap):
    rgb = render_heatmap(_signed_map(), cmap).astype(int)
    pos, neg, weak = rgb[0, 0], rgb[0, 1], rgb[1, 0]
    assert pos[0] >= pos[2] and neg[2] >= neg[0]
    assert weak[0] > weak[2]  # a moderately positive pixel is clearly red-dominant
    assert tuple(rgb[3, 3]) == NEUTRAL[cmap]


def test_extremes_of_bwr():
    rgb = render_heatmap(_signed_map(), "bwr").astype(int)
    assert tuple(rgb[0, 0]) == (255, 0, 0) and tuple(rgb[0, 1]) == (0, 0, 255)


@pytest.mark.parametrize("name", ["seismic", "bwr"])
def test_red_blue_maps_are_matplotlibs(name):
    matplotlib = pytest.importorskip("matplotlib")
    r = np.linspace(-1.0, 1.0, 41)[None]
    theirs = matplotlib.colormaps[name]((r[0] + 1) / 2)[:, :3] * 255
    # matplotlib looks colours up in a 256-entry table: up to one entry (3 units) apart
    assert np.abs(render_heatmap(r, name)[0].astype(float) - theirs).max() <= 4


def test_bwr_is_mirror_symmetric():
    r = np.random.default_rng(0).normal(size=(6, 6))
    rgb, flipped = render_heatmap(r, "bwr").astype(int), render_heatmap(-r, "bwr").astype(int)
    # negating relevance swaps red and blue
    np.testing.assert_array_equal(flipped, rgb[..., ::-1])


def test_normalisation_is_symmetric_around_zero():
    r = np.array([[2.0, -0.5, 0.0]])
    rgb = render_heatmap(r, "bwr").astype(int)
    # -0.5 is a quarter of max |R|: a light blue, not the full blue a min-max scaling would give
    assert tuple(rgb[0, 1]) == (191, 191, 255)
    assert tuple(rgb[0, 2]) == (255, 255, 255)


def test_scale_does_not_matter_but_vmax_does():
    r = _signed_map()
    np.testing.assert_array_equal(render_heatmap(r), render_heatmap(1e-9 * r))
    shared = render_heatmap(r, vmax=4.0)
    assert shared[0, 0, 1] > 0  # half the shared scale: a lighter red than at full scale
    assert render_heatmap(r)[0, 0, 1] == 0


@pytest.mark.parametrize("cmap", sorted(CMAPS))
def test_all_zero_and_non_finite_give_neutral_colour(cmap):
    rgb = render_heatmap(np.zeros((5, 7)), cmap)
    assert rgb.shape == (5, 7, 3) and rgb.dtype == np.uint8
    assert (rgb == np.array(NEUTRAL[cmap], dtype=np.uint8)).all()
    nan = np.full((3, 3), np.nan)
    nan[1, 1] = np.inf
    assert (render_heatmap(nan, cmap) == np.array(NEUTRAL[cmap], dtype=np.uint8)).all()


def test_channels_are_summed_and_tensors_accepted():
    r = torch.zeros(3, 4, 4)
    r[0, 0, 0], r[1, 0, 0], r[2, 0, 0] = 1.0, 1.0, -3.0  # sums to -1: blue
    rgb = render_heatmap(r)
    assert rgb[0, 0, 2] == 255 and rgb[0, 0, 0] == 0
    np.testing.assert_array_equal(render_heatmap(r.double()), render_heatmap(r.sum(0).numpy()))


@pytest.mark.parametrize(("size", "shape"), [(None, (4, 4)), (8, (8, 8)), ((12, 6), (12, 6))])
@pytest.mark.parametrize("resample", ["nearest", "bilinear"])
def test_sizes(size, shape, resample):
    rgb = render_heatmap(_signed_map(), size=size, resample=resample)
    assert rgb.shape == (*shape, 3) and rgb.dtype == np.uint8


def test_nearest_upsampling_repeats_pixels():
    r = _signed_map()
    big = render_heatmap(r, size=16)
    np.testing.assert_array_equal(big, np.repeat(np.repeat(render_heatmap(r), 4, 0), 4, 1))


def test_overlay():
    image = np.full((8, 8, 3), 100, dtype=np.uint8)
    r = np.zeros((4, 4))
    r[0, 0] = 1.0
    assert overlay_heatmap(image, r, alpha=0.0).tolist() == image.tolist()
    blended = overlay_heatmap(image, r, alpha=1.0)
    assert blended.shape == (8, 8, 3) and blended.dtype == np.uint8
    np.testing.assert_array_equal(blended, render_heatmap(r, size=8, resample="bilinear"))
    half = overlay_heatmap(image, r, alpha=0.5).astype(int)
    assert half[0, 0, 0] > half[0, 0, 2]  # red shows where relevance is positive
    assert tuple(half[7, 7]) == (178, 178, 178)  # zero relevance: the image halfway to white


@pytest.mark.parametrize(
    "call",
    [
        lambda: render_heatmap(np.zeros((2, 3, 4, 4))),
        lambda: render_heatmap(np.zeros((4, 4)), cmap="jet"),
        lambda: render_heatmap(np.zeros((4, 4)), size=0),
        lambda: render_heatmap(np.zeros((4, 4)), vmax=-1.0),
        lambda: render_heatmap(np.zeros((4, 4)), size=8, resample="cubic"),
        lambda: overlay_heatmap(np.zeros((4, 4), dtype=np.uint8), np.zeros((4, 4))),
        lambda: overlay_heatmap(np.zeros((4, 4, 3), dtype=np.uint8), np.zeros((4, 4)), alpha=2.0),
    ],
)
def test_bad_arguments(call):
    with pytest.raises(KlugerhansError):
        call()


def test_save_png_roundtrip_is_atomic(tmp_path):
    rgb = render_heatmap(_signed_map(), size=8)
    path = tmp_path / "sub" / "heat.png"
    save_png(path, rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), rgb)
    assert [p.name for p in path.parent.iterdir()] == ["heat.png"]
    with pytest.raises(KlugerhansError):
        save_png(path, rgb.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(Image.open(path)), rgb)  # a failed write keeps the old file
