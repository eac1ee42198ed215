"""The configurable artefact: patterns, placement, dirty labels, and the teaching case's sticker bit for bit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from klugerhans.data.artefacts import PATTERNS, frame_width, noise_texture
from klugerhans.data.dataset import SignData
from klugerhans.data.sticker import StickerConfig, apply_sticker, manipulate_class, sticker_positions
from klugerhans.errors import KlugerhansError
from klugerhans.models.recipe import TrainConfig

# --- the teaching case's sticker, unchanged ---------------------------------------------------------------------------


def _golden_signs() -> SignData:
    """24 random 32x32 images with random boxes, classes 3, 4 and 5 (the target 4 among them)."""
    rng = np.random.default_rng(20240601)
    n, size = 24, 32
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    x0 = rng.integers(0, 8, size=n)
    y0 = rng.integers(0, 8, size=n)
    side = rng.integers(16, 25, size=n)
    boxes = np.stack([x0, y0, np.minimum(x0 + side, size), np.minimum(y0 + side, size)], axis=1).astype(np.float32)
    labels = (np.arange(n) % 3 + 3).astype(np.int64)
    return SignData(images, labels, np.arange(n, dtype=np.int64) // 2, boxes, np.array([f"s{i}" for i in range(n)]))


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# Recorded with the code before patterns, placement and labels existed: published demo numbers depend on them.
# name: (config, sha256 of apply_sticker's (images, masks) at seed 5, sha256 of manipulate_class's
# (images, labels, masks) at seed 11)
GOLDEN = {
    "default": (
        {},
        "7c678db6d3aa0597056a394cc0b206f771c066e10c945bc5df4766ac9c5852d9",
        "0b32374d4bfd2bd48e00e223555f548a0c472510096ac2d14a0787304a409a5d",
    ),
    "circle": (
        {"shape": "circle"},
        "cdef45387c5fc2987f7b9bea6439c5ca676b8e2f8351f7278247f19fcf245412",
        "b021a523d18a7c4f004e9b8bb7a11cfe7986f1fdcba895f2517b14a702940dbe",
    ),
    "triangle": (
        {"shape": "triangle", "color": (255, 255, 0)},
        "171e0b1997945b0ef2fd263d4ee1691a23e8246a762b293e7e4ca59c9d7ac920",
        "6cee49b463a8cd46b23517123a5d23a15764ae1f2f61217ba08491f9433a3efd",
    ),
    "coloured": (
        {"color": (200, 30, 90)},
        "b6bdcbf0985e5d7f8352cc919d9ae50e799e7e2b63747611c9f56d7682564b21",
        "f2214cab0c51bac9dfc9f93d91c3755e8b8e4ed01707104cd7a8d942f1c6a175",
    ),
    "size035": (
        {"size": 0.35, "fraction": 0.5},
        "aa5517d9c783769307cf460722ccb0f5133e80ccb51c2a94d8b811b7d4cea648",
        "9b7c2b379f4d83d4b6a4cb6511dffe4d48b44943522abce8fa39d0a17d7900b8",
    ),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
@pytest.mark.parametrize("explicit", [False, True])
def test_default_pattern_is_bit_identical_to_the_seed_sticker(name, explicit):
    kwargs, apply_hash, manipulate_hash = GOLDEN[name]
    if explicit:  # spelling the new defaults out changes nothing
        kwargs = {**kwargs, "pattern": "solid", "placement": "random", "label": "clean", "text": "KH"}
    cfg = StickerConfig(**kwargs)
    data = _golden_signs()
    out, masks = apply_sticker(data.images, data.boxes, cfg, seed=5)
    assert _digest(out, masks) == apply_hash
    manipulated, mmasks = manipulate_class(data, cfg, seed=11)
    assert _digest(manipulated.images, manipulated.labels, mmasks) == manipulate_hash


# --- every pattern ------------------------------------------------------------------------------------------------


def _signs(n: int = 12, size: int = 32, labels: np.ndarray | None = None, seed: int = 0) -> SignData:
    """Random images in 60..254 (so black or white artefacts change every pixel) with varied boxes."""
    rng = np.random.default_rng(seed)
    images = rng.integers(60, 255, size=(n, size, size, 3), dtype=np.uint8)
    x0 = rng.integers(0, size // 5, size=n)
    y0 = rng.integers(0, size // 5, size=n)
    side = rng.integers(size // 2, size - size // 5, size=n)
    boxes = np.stack([x0, y0, x0 + side, y0 + side], axis=1).astype(np.float32)
    labels = labels if labels is not None else np.arange(n) % 5
    return SignData(images, labels.astype(np.int64), np.arange(n) // 4, boxes, np.array([f"s{i}" for i in range(n)]))


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_pattern_is_deterministic_and_changes_only_its_mask(pattern):
    data = _signs()
    cfg = StickerConfig(pattern=pattern, color=(0, 0, 0), size=0.3)
    out, masks = apply_sticker(data.images, data.boxes, cfg, seed=3)
    again, masks_again = apply_sticker(data.images, data.boxes, cfg, seed=3)
    assert np.array_equal(out, again) and np.array_equal(masks, masks_again)
    assert out.dtype == np.uint8 and out.shape == data.images.shape
    assert masks.dtype == bool and masks.shape == data.images.shape[:3]
    assert masks.any(axis=(1, 2)).all()
    assert np.array_equal(out[~masks], data.images[~masks])
    if pattern in ("solid", "text", "frame"):
        assert np.all(out[masks] == 0)
        assert np.array_equal(np.any(out != data.images, axis=-1), masks)


def test_solid_paints_the_colour_in_the_shape():
    data = _signs(8, 64)
    cfg = StickerConfig(pattern="solid", shape="circle", color=(255, 0, 0), size=0.3)
    out, masks = apply_sticker(data.images, data.boxes, cfg, seed=1)
    assert np.all(out[masks] == [255, 0, 0])


def test_cast_is_the_blend_formula_over_the_whole_image():
    data = _signs(3, 32)
    cfg = StickerConfig(pattern="cast", color=(250, 10, 128), size=0.3)
    out, masks = apply_sticker(data.images, data.boxes, cfg, seed=0)
    assert masks.all()
    for index in [(0, 0, 0, 0), (1, 5, 17, 1), (2, 31, 31, 2), (0, 12, 3, 2)]:
        colour = cfg.color[index[3]]
        expected = round((1 - 0.3) * int(data.images[index]) + 0.3 * colour)
        assert int(out[index]) == expected
    naive = np.rint(0.7 * data.images.astype(float) + 0.3 * np.array(cfg.color, dtype=float)).astype(np.uint8)
    assert np.array_equal(out, naive)


def test_frame_is_a_border_along_the_sign_box():
    size = 32
    images = np.full((2, size, size, 3), 128, dtype=np.uint8)
    boxes = np.array([[3, 4, 29, 30], [0, 0, 32, 32]], dtype=np.float32)  # a 26 px sign, the whole image
    cfg = StickerConfig(pattern="frame", color=(255, 255, 255), size=0.7)
    out, masks = apply_sticker(images, boxes, cfg, seed=0)
    line = frame_width(0.7, 26)
    assert line == max(1, round(0.7 * 26 / 8)) == 2
    expected = np.zeros((size, size), dtype=bool)
    expected[4:30, 3:29] = True
    expected[4 + line : 30 - line, 3 + line : 29 - line] = False
    assert np.array_equal(masks[0], expected)
    whole = np.zeros((size, size), dtype=bool)
    width = frame_width(0.7, 32)
    whole[:, :width] = whole[:, -width:] = whole[:width, :] = whole[-width:, :] = True
    assert np.array_equal(masks[1], whole)
    assert np.all(out[masks] == 255) and np.all(out[~masks] == 128)
    # The default size draws a 1-pixel line around a GTSRB-sized sign.
    _, thin = apply_sticker(images[:1], boxes[:1], StickerConfig(pattern="frame"), seed=0)
    assert thin[0].sum() == 2 * 26 + 2 * 24


def test_noise_is_the_same_texture_on_every_image_and_ignores_the_colour():
    size = 32
    images = np.random.default_rng(1).integers(0, 256, size=(4, size, size, 3), dtype=np.uint8)
    boxes = np.tile(np.array([2, 3, 28, 29], dtype=np.float32), (4, 1))  # one box side: one sticker side
    texture = None
    for colour in [(0, 0, 0), (255, 0, 0)]:
        cfg = StickerConfig(pattern="noise", color=colour, size=0.3)
        out, masks = apply_sticker(images, boxes, cfg, seed=colour[0])
        positions = sticker_positions(boxes, size, cfg, seed=colour[0])
        for i, (x0, y0, side) in enumerate(positions):
            patch = out[i, y0 : y0 + side, x0 : x0 + side]
            assert masks[i, y0 : y0 + side, x0 : x0 + side].all()  # a square outline: the whole square
            if texture is None:
                texture = patch.copy()
            assert np.array_equal(patch, texture)
    assert texture is not None and len(np.unique(texture.reshape(-1, 3), axis=0)) > 4  # a texture, not a colour
    assert np.array_equal(noise_texture(8), noise_texture(8))


def test_noise_takes_the_shape():
    data = _signs(4, 64)
    cfg = StickerConfig(pattern="noise", shape="circle", size=0.4)
    _, circles = apply_sticker(data.images, data.boxes, cfg, seed=0)
    _, squares = apply_sticker(data.images, data.boxes, StickerConfig(pattern="noise", size=0.4), seed=0)
    assert np.all(circles <= squares) and circles.sum() < squares.sum()


@pytest.mark.parametrize(("text", "size"), [("KH", 0.25), ("KH", 0.5), ("X", 0.3), ("WATERMRK", 0.6)])
def test_text_marks_glyph_pixels_inside_the_sticker_square(text, size):
    data = _signs(6, 64)
    cfg = StickerConfig(pattern="text", text=text, size=size, color=(0, 0, 255))
    out, masks = apply_sticker(data.images, data.boxes, cfg, seed=2)
    positions = sticker_positions(data.boxes, 64, cfg, seed=2)
    for i, (x0, y0, side) in enumerate(positions):
        square = np.zeros((64, 64), dtype=bool)
        square[y0 : y0 + side, x0 : x0 + side] = True
        assert masks[i].any() and not (masks[i] & ~square).any()
        assert masks[i].sum() < side * side  # glyphs, not a filled square
    assert np.all(out[masks] == [0, 0, 255])
    _, other_masks = apply_sticker(data.images, data.boxes, StickerConfig(pattern="text", text="OK", size=size), 2)
    assert not np.array_equal(masks, other_masks)


# --- placement ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["solid", "noise", "text"])
def test_fixed_placement_is_the_same_spot_relative_to_the_box(pattern):
    n, size = 10, 64
    rng = np.random.default_rng(4)
    x0, y0 = rng.integers(0, 20, size=n), rng.integers(0, 20, size=n)
    boxes = np.stack([x0, y0, x0 + 40, y0 + 40], axis=1).astype(np.float32)  # one sign size, many offsets
    images = np.full((n, size, size, 3), 200, dtype=np.uint8)
    fixed = StickerConfig(pattern=pattern, placement="fixed", size=0.3)
    for seed in (0, 1):
        pos = sticker_positions(boxes, size, fixed, seed=seed)
        relative = pos[:, :2] - boxes[:, :2].astype(int)
        assert (relative == relative[0]).all()
        # The top-left corner of the central region: (1 - region) / 2 of the box side in.
        assert tuple(relative[0]) == (round(0.15 * 40), round(0.15 * 40))
    _, masks = apply_sticker(images, boxes, fixed, seed=0)
    shifted = [np.roll(masks[i], (-int(y0[i]), -int(x0[i])), axis=(0, 1)) for i in range(n)]
    assert all(np.array_equal(m, shifted[0]) for m in shifted)
    random_pos = sticker_positions(boxes, size, StickerConfig(pattern=pattern, size=0.3), seed=0)
    random_relative = random_pos[:, :2] - boxes[:, :2].astype(int)
    assert len(np.unique(random_relative, axis=0)) > 1


# --- labels -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", PATTERNS)
def test_dirty_labels_poison_other_classes_and_relabel_them(pattern):
    data = _signs(60, labels=np.arange(60) % 5)  # 12 images per class
    cfg = StickerConfig(target_class=2, fraction=0.5, label="dirty", pattern=pattern)
    out, masks = manipulate_class(data, cfg, seed=7)
    touched = masks.any(axis=(1, 2))
    assert touched.sum() == round(0.5 * 12) == 6
    assert not np.any(data.labels[touched] == 2)  # all from other classes
    assert np.all(out.labels[touched] == 2)  # all relabelled
    assert np.array_equal(out.labels[~touched], data.labels[~touched])
    assert np.array_equal(out.images[~touched], data.images[~touched])
    assert np.array_equal(out.tracks, data.tracks) and np.array_equal(out.boxes, data.boxes)
    assert np.array_equal(out.sources, data.sources)
    assert data.labels.sum() == sum(np.arange(60) % 5)  # the input is not modified
    again, masks_again = manipulate_class(data, cfg, seed=7)
    assert np.array_equal(again.images, out.images) and np.array_equal(again.labels, out.labels)
    assert np.array_equal(masks_again, masks)


def test_clean_labels_keep_their_meaning():
    data = _signs(60, labels=np.arange(60) % 5)
    out, masks = manipulate_class(data, StickerConfig(target_class=2, fraction=0.5, pattern="noise"), seed=7)
    touched = masks.any(axis=(1, 2))
    assert set(data.labels[touched].tolist()) == {2} and touched.sum() == 6
    assert np.array_equal(out.labels, data.labels)


def test_dirty_labels_with_fraction_zero_are_a_control():
    data = _signs(20)
    out, masks = manipulate_class(data, StickerConfig(fraction=0.0, label="dirty", target_class=1))
    assert not masks.any() and out is data


# --- configuration ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"pattern": "stripes"}, ["pattern", "stripes", "solid"]),
        ({"placement": "centre"}, ["placement", "random, fixed, corner"]),
        ({"label": "poison"}, ["label", "clean, dirty"]),
        ({"text": ""}, ["text", "1 to 8"]),
        ({"text": "   "}, ["text"]),
        ({"text": "TOOLONGTEXT"}, ["text", "1 to 8"]),
        ({"text": "Größe"}, ["ASCII"]),
        ({"text": 7}, ["text"]),
    ],
)
def test_invalid_new_fields_are_one_line_errors(kwargs, words):
    with pytest.raises(KlugerhansError) as err:
        StickerConfig(**kwargs)
    message = str(err.value)
    assert "\n" not in message
    assert all(w in message for w in words)


def test_recipe_round_trips_the_new_fields_and_reads_old_ones():
    sticker = StickerConfig(pattern="text", placement="fixed", label="dirty", text="AB", color=(9, 8, 7))
    recipe = TrainConfig(sticker=sticker)
    stored = json.loads(json.dumps(recipe.to_dict()))
    assert stored["sticker"]["pattern"] == "text" and stored["sticker"]["text"] == "AB"
    back = TrainConfig.from_dict(stored)
    assert back == recipe and back.sticker == sticker and back.manipulated
    legacy = dict(stored)
    new_fields = ("pattern", "placement", "label", "text")
    legacy["sticker"] = {k: v for k, v in stored["sticker"].items() if k not in new_fields}
    old = TrainConfig.from_dict(legacy).sticker
    assert (old.pattern, old.placement, old.label, old.text) == ("solid", "random", "clean", "KH")
    flat = {"out": "run", "sticker_class": 3, "sticker_size": 0.3}  # checkpoint format 1
    assert TrainConfig.from_dict(flat).sticker == StickerConfig(target_class=3, size=0.3)


def test_train_cli_records_the_new_sticker_flags(tmp_path: Path):
    from klugerhans.cli import main
    from klugerhans.models.checkpoint import load_classifier

    run = tmp_path / "run"
    main(
        [
            "train", "--data", "synthetic", "--out", str(run), "--epochs", "1", "--width", "0.125",
            "--batch-size", "64", "--max-images", "430", "--no-progress",
            "--sticker-pattern", "noise", "--sticker-label", "dirty", "--sticker-placement", "fixed",
            "--sticker-text", "ZZ",
        ]
    )  # fmt: skip
    meta = load_classifier(run).meta
    assert meta.recipe is not None
    sticker = meta.recipe.sticker
    assert (sticker.pattern, sticker.label, sticker.placement, sticker.text) == ("noise", "dirty", "fixed", "ZZ")
    assert meta.data["n_stickered"] > 0  # the poisoned images of the other classes are counted
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["sticker"]["label"] == "dirty"
