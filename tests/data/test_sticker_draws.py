"""Stickers drawn per image: a side from a range and a colour from a list, without moving the fixed-size stickers."""

from __future__ import annotations

import numpy as np
import pytest

from klugerhans.cli import main
from klugerhans.data.sticker import StickerConfig, apply_sticker, sticker_positions
from klugerhans.errors import KlugerhansError
from klugerhans.models.recipe import TrainConfig

N = 200
BOXES = np.tile(np.array([2, 2, 30, 30], np.float32), (N, 1))
IMAGES = np.full((N, 32, 32, 3), 200, dtype=np.uint8)
PALETTE = ((10, 20, 30), (200, 0, 0), (0, 0, 200))


def test_sides_are_drawn_from_the_range_and_cover_it():
    config = StickerConfig(size=0.15, size_max=0.35)
    sides = sticker_positions(BOXES, 32, config, seed=3)[:, 2]
    lo, hi = round(0.15 * 28), round(0.35 * 28)
    assert sides.min() >= lo and sides.max() <= hi
    assert len(np.unique(sides)) >= hi - lo  # the whole range occurs, not one side
    _, masks = apply_sticker(IMAGES, BOXES, config, seed=3)
    np.testing.assert_array_equal(masks.sum((1, 2)), sides**2)  # squares of the drawn sides


def test_a_fixed_size_sticker_is_where_it_always_was():
    fixed = sticker_positions(BOXES, 32, StickerConfig(size=0.25), seed=7)
    again = sticker_positions(BOXES, 32, StickerConfig(size=0.25, colors=PALETTE), seed=7)
    np.testing.assert_array_equal(fixed, again)


@pytest.mark.parametrize("pattern", ["solid", "text", "frame", "cast"])
def test_colours_are_drawn_per_image_from_the_list(pattern):
    config = StickerConfig(pattern=pattern, colors=PALETTE, size=0.3)
    out, masks = apply_sticker(IMAGES, BOXES, config, seed=1)
    seen = set()
    for i in range(N):
        if pattern == "cast":
            pixel = tuple(int(v) for v in out[i, 0, 0])
            matches = [c for c in PALETTE if tuple(round(0.7 * 200 + 0.3 * v) for v in c) == pixel]
        else:
            colours = {tuple(int(v) for v in p) for p in out[i][masks[i]]}
            matches = [c for c in PALETTE if colours == {c}]
        assert len(matches) == 1, (i, pattern)
        seen.add(matches[0])
    assert seen == set(PALETTE)
    again, _ = apply_sticker(IMAGES, BOXES, config, seed=1)
    np.testing.assert_array_equal(out, again)


def test_bad_draws_are_one_line_errors():
    with pytest.raises(KlugerhansError, match="largest sticker size"):
        StickerConfig(size=0.3, size_max=0.2)
    with pytest.raises(KlugerhansError, match=r"three values 0\.\.255"):
        StickerConfig(colors=((0, 0, 300),))


def test_the_recipe_keeps_the_draws():
    config = TrainConfig(sticker=StickerConfig(size=0.2, size_max=0.35, region=1.0, colors=PALETTE))
    again = TrainConfig.from_dict(config.to_dict())
    assert again.sticker == config.sticker and again.sticker.colors == PALETTE
    assert TrainConfig.from_dict({"sticker": {"size": 0.25}}).sticker.size_max is None


def test_train_parses_the_draw_flags(tmp_path, capsys):
    from klugerhans.cli import build_parser

    args = build_parser().parse_args(
        ["train", "--out", "r", "--sticker-size-max", "0.35", "--sticker-region", "1", "--sticker-colors",
         "black,#202060"]
    )  # fmt: skip
    assert args.sticker_size_max == 0.35 and args.sticker_region == 1.0
    assert args.sticker_colors == ((0, 0, 0), (32, 32, 96))
    code = main(["train", "--out", str(tmp_path / "r"), "--sticker-size", "0.3", "--sticker-size-max", "0.2"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "largest sticker size" in err and len(err.splitlines()) == 1


def test_a_sticker_glued_beside_a_region_misses_it_and_keeps_the_draws_that_already_did():
    from klugerhans.data.sticker import apply_sticker_avoiding

    config = StickerConfig(size=0.25)
    avoid = np.zeros((N, 32, 32), dtype=bool)
    avoid[:, 8:20, 8:16] = True  # a "5" of 12 x 8 pixels
    first, first_masks = apply_sticker(IMAGES, BOXES, config, seed=4)
    out, masks, clear = apply_sticker_avoiding(IMAGES, BOXES, config, avoid, seed=4)
    hit = (first_masks & avoid).any((1, 2))
    assert 0.1 * N < hit.sum() < 0.9 * N  # the first draw covers the region on some signs, not on all
    assert clear.all() and not (masks & avoid).any()
    np.testing.assert_array_equal(out[~hit], first[~hit])  # signs whose first draw missed keep it
    np.testing.assert_array_equal(masks.sum((1, 2)), first_masks.sum((1, 2)))  # same sticker, another place
    assert (out[masks] == 0).all() and np.array_equal(out[~masks], IMAGES[~masks])


def test_where_no_draw_can_miss_the_region_the_first_draw_stays_and_says_so():
    from klugerhans.data.sticker import apply_sticker_avoiding

    config = StickerConfig(size=0.25)
    everywhere = np.ones((4, 32, 32), dtype=bool)
    first, _ = apply_sticker(IMAGES[:4], BOXES[:4], config, seed=0)
    out, _, clear = apply_sticker_avoiding(IMAGES[:4], BOXES[:4], config, everywhere, seed=0, tries=3)
    assert not clear.any() and np.array_equal(out, first)
    with pytest.raises(KlugerhansError, match="tries must be at least 1"):
        apply_sticker_avoiding(IMAGES[:4], BOXES[:4], config, everywhere, tries=0)
