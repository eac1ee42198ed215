import numpy as np
import pytest

from klugerhans.data.sticker import StickerConfig, apply_sticker, paint_sticker, sticker_positions
from klugerhans.errors import KlugerhansError


def _image(h: int = 32, w: int = 32) -> np.ndarray:
    return np.random.default_rng(0).integers(60, 255, size=(h, w, 3), dtype=np.uint8)


def test_sticker_is_centred_on_the_point_and_marks_exactly_the_changed_pixels():
    img = _image()
    out, mask = paint_sticker(img, x=10.5, y=20.5, side_px=5, color=(0, 0, 0))
    ys, xs = np.nonzero(mask)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (8, 12, 18, 22)
    assert np.array_equal(np.any(out != img, axis=-1), mask)
    assert np.all(out[mask] == 0)
    assert img.min() >= 60  # the input is untouched


def test_sticker_near_the_border_is_shifted_inside_and_keeps_its_size():
    out, mask = paint_sticker(_image(16, 24), x=0.0, y=100.0, side_px=6, color=(255, 0, 0))
    ys, xs = np.nonzero(mask)
    assert mask.sum() == 36 and xs.min() == 0 and ys.max() == 15
    assert np.all(out[mask] == [255, 0, 0])
    _, whole = paint_sticker(_image(8, 8), 4.0, 4.0, side_px=50)
    assert whole.all()


@pytest.mark.parametrize("shape", ["square", "circle", "triangle"])
def test_same_stamp_as_apply_sticker(shape):
    """A sticker placed where apply_sticker put one has exactly the same pixels (one drawing for both)."""
    img = _image(64, 64)
    boxes = np.array([[8, 8, 56, 56]], dtype=np.float32)
    config = StickerConfig(shape=shape, size=0.3)
    ref, ref_mask = apply_sticker(img[None], boxes, config, seed=2)
    x0, y0, side = sticker_positions(boxes, 64, config, seed=2)[0]
    out, mask = paint_sticker(img, x0 + side / 2, y0 + side / 2, int(side), shape=shape)
    assert np.array_equal(mask, ref_mask[0]) and np.array_equal(out, ref[0])


@pytest.mark.parametrize(
    "kwargs",
    [{"shape": "star"}, {"color": (0, 0, 256)}, {"side_px": 0}, {"x": float("nan")}],
)
def test_bad_arguments_are_one_line_errors(kwargs):
    args = {"x": 5.0, "y": 5.0, "side_px": 3} | kwargs
    with pytest.raises(KlugerhansError) as err:
        paint_sticker(_image(), **args)
    assert "\n" not in str(err.value)


def test_bad_image_is_an_error():
    with pytest.raises(KlugerhansError):
        paint_sticker(np.zeros((4, 4), dtype=np.uint8), 1.0, 1.0, 2)
