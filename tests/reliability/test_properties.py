"""Property tests: image decoding and preprocessing, sticker placement and heatmap rendering on random inputs.

Decisions recorded here: non-finite relevance (NaN, +-inf) is *handled* by the heatmap renderer (drawn as zero,
the neutral colour, as its module says), while a non-finite or negative ``vmax`` is a clean KlugerhansError.
Undecodable bytes are always an ImageError, never another exception.
"""

from __future__ import annotations

import io
import math
from fractions import Fraction

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from klugerhans.data.images import decode_image
from klugerhans.data.sticker import SHAPES, StickerConfig, apply_sticker, sticker_positions
from klugerhans.errors import ImageError, KlugerhansError
from klugerhans.explain.heatmap import CMAPS, overlay_heatmap, render_heatmap
from klugerhans.models.preprocess import Normalization, make_preprocess

PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pillow modes and a format that stores each of them.
MODES = {
    "1": ("PNG", "BMP", "PPM"),
    "L": ("PNG", "JPEG", "PPM", "BMP", "GIF", "TIFF"),
    "LA": ("PNG", "TIFF"),
    "P": ("PNG", "GIF", "BMP"),
    "RGB": ("PNG", "JPEG", "PPM", "BMP", "TIFF", "WEBP"),
    "RGBA": ("PNG", "TIFF", "WEBP"),
    "CMYK": ("JPEG", "TIFF"),
    "I;16": ("PNG", "TIFF"),
    "I": ("TIFF",),
    "F": ("TIFF",),
}
_DTYPE = {"I;16": np.uint16, "I": np.int32, "F": np.float32}


@st.composite
def encoded_images(draw: st.DrawFn) -> tuple[bytes, str, tuple[int, int]]:
    """(file bytes, mode, (width, height)) of a random image in a random mode and a format that can hold it."""
    mode = draw(st.sampled_from(sorted(MODES)))
    fmt = draw(st.sampled_from(MODES[mode]))
    width, height = draw(st.integers(1, 70)), draw(st.integers(1, 70))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if mode in _DTYPE:
        dtype = _DTYPE[mode]
        if mode == "F":
            values = draw(st.sampled_from([1.0, 255.0, 1e6, 1e30]))
            pixels = (rng.standard_normal((height, width)) * values).astype(dtype)
        else:
            info = np.iinfo(dtype)
            pixels = rng.integers(max(info.min, -(2**20)), min(info.max, 2**20), (height, width), dtype=dtype)
        img = Image.fromarray(pixels, mode="I" if mode == "I" else None)
    else:
        img = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        assume(False)  # this Pillow cannot write that combination; nothing to test
    return buf.getvalue(), mode, (width, height)


@PROPERTY
@given(encoded_images(), st.sampled_from([32, 48, 64]))
def test_any_valid_image_decodes_and_preprocesses_to_finite_3xSxS(encoded, size):
    data, _mode, (width, height) = encoded
    img = decode_image(data, "random")
    assert img.mode == "RGB" and img.size == (width, height)
    norm = Normalization()
    x = make_preprocess(size, norm)(img)
    assert x.shape == (3, size, size) and x.dtype == torch.float32 and torch.isfinite(x).all()
    low = torch.tensor([(0 - m) / s for m, s in zip(norm.mean, norm.std, strict=True)]).view(3, 1, 1)
    high = torch.tensor([(1 - m) / s for m, s in zip(norm.mean, norm.std, strict=True)]).view(3, 1, 1)
    assert (x >= low - 1e-5).all() and (x <= high + 1e-5).all()


@PROPERTY
@given(encoded_images(), st.data())
def test_damaged_image_bytes_give_an_image_or_an_image_error(encoded, data):
    raw = bytearray(encoded[0])
    cut = data.draw(st.integers(0, len(raw)), label="keep")
    del raw[cut:]
    for _ in range(data.draw(st.integers(0, 8), label="flips")):
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        img = decode_image(bytes(raw), "damaged")
    except ImageError as err:
        assert "\n" not in str(err) and str(err).startswith("damaged: ")
    else:
        assert img.mode == "RGB" and min(img.size) >= 1


@PROPERTY
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_an_image_or_an_image_error(raw):
    try:
        decode_image(raw, "junk")
    except ImageError as err:
        assert "\n" not in str(err)


# --- stickers ------------------------------------------------------------------------------------------------------


@st.composite
def sign_boxes(draw: st.DrawFn) -> tuple[int, np.ndarray]:
    """(image side S, (N, 4) float32 boxes inside the image, each at least 1 px wide and high)."""
    size = draw(st.sampled_from([8, 16, 32, 48, 64]))
    boxes = []
    for _ in range(draw(st.integers(1, 4))):
        x0 = draw(st.floats(0, size - 1, allow_nan=False))
        y0 = draw(st.floats(0, size - 1, allow_nan=False))
        x1 = draw(st.floats(x0 + 1, size, allow_nan=False))
        y1 = draw(st.floats(y0 + 1, size, allow_nan=False))
        boxes.append((x0, y0, x1, y1))
    return size, np.asarray(boxes, dtype=np.float32)


stickers = st.builds(
    StickerConfig,
    size=st.floats(0.01, 0.99),
    region=st.floats(0.05, 1.0),
    shape=st.sampled_from(SHAPES),
    color=st.tuples(*[st.integers(0, 255)] * 3),
)


@PROPERTY
@given(sign_boxes(), stickers, st.integers(0, 2**32 - 1))
def test_sticker_lies_inside_the_image_and_the_sign_region(boxes, config, seed):
    size, box = boxes
    positions = sticker_positions(box, size, config, seed)
    images = np.full((len(box), size, size, 3), 128, dtype=np.uint8)
    out, masks = apply_sticker(images, box, config, seed)
    for (x, y, side), b, mask in zip(positions, box.astype(np.float64), masks, strict=True):
        assert x >= 0 and y >= 0 and x + side <= size and y + side <= size
        ys, xs = np.nonzero(mask)
        assert len(xs) >= 1 and x <= xs.min() and xs.max() < x + side and y <= ys.min() and ys.max() < y + side
        w, h = b[2] - b[0], b[3] - b[1]
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        half_w, half_h = config.region * w / 2, config.region * h / 2
        if side <= 2 * half_w and side <= 2 * half_h:
            # Inside the central region, up to rounding onto the pixel grid.
            left, right, top, bottom = cx - half_w, cx + half_w, cy - half_h, cy + half_h
        else:
            # Larger than the region: centred on it, still inside the sign box.
            left, top, right, bottom = b
        assert math.floor(left) <= x and x + side <= math.ceil(right)
        assert math.floor(top) <= y and y + side <= math.ceil(bottom)
    assert np.all(out[masks] == np.asarray(config.color, dtype=np.uint8))
    assert np.array_equal(out[~masks], images[~masks])


# --- heatmaps ------------------------------------------------------------------------------------------------------

_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1e-300, 1e300, -1e308, 1.7976931348623157e308]),
)


@st.composite
def relevance_maps(draw: st.DrawFn) -> np.ndarray:
    """(H, W) or (3, H, W) arrays of float16/32/64 holding any value, tiny, huge, zero, NaN and infinities."""
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    shape = draw(
        st.one_of(hnp.array_shapes(min_dims=2, max_dims=2, max_side=9), st.tuples(st.just(3), *[st.integers(1, 9)] * 2))
    )
    values = draw(hnp.arrays(np.float64, shape, elements=_floats))
    with np.errstate(over="ignore"):
        return values.astype(dtype)


def _exact_sums(relevance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The map the renderer should draw, as exact fractions (non-finite values as zero, channels summed), and
    where a pixel holds no evidence at all (every channel zero or non-finite)."""
    finite = np.isfinite(relevance)
    values = np.vectorize(lambda v, ok: Fraction(float(v)) if ok else Fraction(0), otypes=[object])(relevance, finite)
    empty = (~finite) | (relevance == 0)
    if relevance.ndim == 3:
        return values.sum(axis=0), empty.all(axis=0)
    return values, empty


@PROPERTY
@given(relevance_maps(), st.sampled_from(sorted(CMAPS)), st.sampled_from([None, 1, 13, (5, 8)]))
def test_heatmap_is_uint8_rgb_for_any_relevance(relevance, cmap, size):
    rgb = render_heatmap(relevance, cmap, size=size)
    h, w = relevance.shape[-2:] if size is None else ((size, size) if isinstance(size, int) else size)
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8


@PROPERTY
@given(relevance_maps())
def test_bwr_heatmap_keeps_the_sign_of_every_visible_pixel(relevance):
    rgb = render_heatmap(relevance, "bwr").astype(int)
    exact, empty = _exact_sums(relevance)
    peak = max(abs(v) for v in exact.flat)
    for (i, j), value in np.ndenumerate(exact):
        share = float(value / peak) if peak else 0.0
        if share > 1 / 255:
            assert rgb[i, j, 0] == 255 and rgb[i, j, 2] < 255, (value, rgb[i, j])  # red: for the class
        elif share < -1 / 255:
            assert rgb[i, j, 2] == 255 and rgb[i, j, 0] < 255, (value, rgb[i, j])  # blue: against it
        if empty[i, j]:
            assert tuple(rgb[i, j]) == (255, 255, 255)  # white: no evidence (zero, NaN or infinite input)


@PROPERTY
@given(relevance_maps(), st.floats(0, 1), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_overlay_is_uint8_between_image_and_heatmap(relevance, alpha, height, width, seed):
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = overlay_heatmap(image, relevance, alpha)
    assert out.shape == image.shape and out.dtype == np.uint8
    if alpha == 0:
        assert np.array_equal(out, image)


@PROPERTY
@given(st.one_of(st.just(math.nan), st.just(math.inf), st.just(-math.inf), st.floats(max_value=-1e-300)))
def test_non_finite_or_negative_vmax_is_a_clean_error(vmax):
    with pytest.raises(KlugerhansError) as err:
        render_heatmap(np.ones((2, 2)), vmax=vmax)
    assert "\n" not in str(err.value)
