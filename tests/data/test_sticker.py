import numpy as np
import pytest

from klugerhans.data.dataset import SignData
from klugerhans.data.sticker import StickerConfig, apply_sticker, manipulate_class, sticker_positions
from klugerhans.errors import KlugerhansError


def _signs(n: int = 40, size: int = 32, labels: np.ndarray | None = None) -> SignData:
    rng = np.random.default_rng(0)
    images = rng.integers(60, 255, size=(n, size, size, 3), dtype=np.uint8)
    margin = size // 10
    boxes = np.tile(np.array([margin, margin, size - margin, size - margin], dtype=np.float32), (n, 1))
    labels = labels if labels is not None else np.arange(n) % 5
    return SignData(images, labels.astype(np.int64), np.arange(n) // 4, boxes, np.array([f"s{i}" for i in range(n)]))


def test_sticker_is_deterministic_per_seed():
    data = _signs()
    a, ma = apply_sticker(data.images, data.boxes, seed=3)
    b, mb = apply_sticker(data.images, data.boxes, seed=3)
    c, _ = apply_sticker(data.images, data.boxes, seed=4)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert not np.array_equal(a, c)


def test_mask_marks_exactly_the_changed_pixels_and_lies_in_the_sign():
    data = _signs()
    cfg = StickerConfig(size=0.2, color=(0, 0, 0))
    out, masks = apply_sticker(data.images, data.boxes, cfg, seed=1)
    changed = np.any(out != data.images, axis=-1)
    assert np.array_equal(changed, masks)  # source pixels are >= 60, so every sticker pixel changes
    assert np.all(out[masks] == 0)
    ys, xs = np.nonzero(masks.any(axis=0))
    box = data.boxes[0]
    centre, half = (box[0] + box[2]) / 2, cfg.region * (box[2] - box[0]) / 2
    assert xs.min() >= np.floor(centre - half) and xs.max() < np.ceil(centre + half)
    assert ys.min() >= np.floor(centre - half) and ys.max() < np.ceil(centre + half)
    # ~3% of a 32x32 crop with a 26 px sign: 5x5 = 25 px
    assert set(masks.sum(axis=(1, 2)).tolist()) == {25}


@pytest.mark.parametrize("shape", ["square", "circle", "triangle"])
def test_shapes_and_colours(shape):
    data = _signs(8, 64)
    out, masks = apply_sticker(data.images, data.boxes, StickerConfig(shape=shape, color=(255, 0, 0), size=0.3), 0)
    assert masks.any(axis=(1, 2)).all()
    assert np.all(out[masks] == [255, 0, 0])
    area = masks[0].sum()
    side = round(0.3 * (64 - 2 * 6))
    assert area == side * side if shape == "square" else 0.3 * side * side < area < side * side


def test_manipulate_class_touches_only_the_chosen_fraction_of_the_target_class():
    data = _signs(100)
    cfg = StickerConfig(target_class=2, fraction=0.5)
    out, masks = manipulate_class(data, cfg, seed=7)
    touched = masks.any(axis=(1, 2))
    assert set(data.labels[touched].tolist()) == {2}
    assert touched.sum() == round(0.5 * (data.labels == 2).sum())
    assert np.array_equal(out.images[~touched], data.images[~touched])
    again, masks2 = manipulate_class(data, cfg, seed=7)
    assert np.array_equal(again.images, out.images) and np.array_equal(masks, masks2)


def test_fraction_zero_is_a_control():
    data = _signs(20)
    out, masks = manipulate_class(data, StickerConfig(fraction=0.0))
    assert not masks.any() and np.array_equal(out.images, data.images)


@pytest.mark.parametrize(
    "kwargs",
    [{"size": 0.0}, {"size": 1.0}, {"fraction": 1.5}, {"target_class": 43}, {"shape": "star"}, {"color": (0, 0, 300)}],
)
def test_invalid_config_is_a_one_line_error(kwargs):
    with pytest.raises(KlugerhansError) as err:
        StickerConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_positions_stay_inside_tiny_and_off_centre_boxes():
    boxes = np.array([[0, 0, 3, 3], [28, 28, 32, 32], [-5, -5, 40, 40]], dtype=np.float32)
    pos = sticker_positions(boxes, 32, StickerConfig(size=0.5), seed=0)
    assert np.all(pos[:, 0] >= 0) and np.all(pos[:, 0] + pos[:, 2] <= 32)
    assert np.all(pos[:, 1] >= 0) and np.all(pos[:, 1] + pos[:, 2] <= 32)


def test_corner_placement_puts_the_mark_in_the_images_corner_off_the_sign():
    data = _signs(n=8)
    for pattern in ("solid", "text"):
        cfg = StickerConfig(size=0.25, color=(0, 0, 0), pattern=pattern, placement="corner", text="KH")
        pos = sticker_positions(data.boxes, 32, cfg, seed=0)
        side = round(0.25 * 26)  # the side follows the box (26 px), the place does not
        assert (pos == [32 - side - 1, 32 - side - 1, side]).all()
        out, masks = apply_sticker(data.images, data.boxes, cfg, seed=5)
        assert masks.any(axis=(1, 2)).all() and not masks[:, : 32 - side - 1].any()
        assert not masks[:, :, : 32 - side - 1].any() and not masks[:, 31].any()  # 1 px in
        again, _ = apply_sticker(data.images, data.boxes, cfg, seed=6)
        assert np.array_equal(out, again)  # no draw: the same spot whatever the seed


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({}, "a black square sticker"),
        ({"shape": "circle", "color": (255, 0, 255)}, "a #ff00ff circle sticker"),
        ({"pattern": "text", "text": "AB", "color": (255, 255, 255)}, "a white text mark 'AB'"),
        ({"pattern": "frame", "colors": ((1, 2, 3), (4, 5, 6))}, "a multicoloured frame"),
        ({"pattern": "cast", "color": (0, 200, 0)}, "a #00c800 colour cast"),
        ({"pattern": "noise", "shape": "triangle"}, "a noise triangle sticker"),
    ],
)
def test_describe_says_what_the_artefact_looks_like(kwargs, words):
    assert StickerConfig(**kwargs).describe() == words
