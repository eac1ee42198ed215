"""DIN 1451-style digits drawn from strokes."""

from __future__ import annotations

import numpy as np
import pytest

from klugerhans.data.synthetic.digits import DIGIT_STROKES, digits_mask


def test_every_digit_fills_its_box_with_a_plausible_amount_of_ink():
    for ch in "0123456789":
        mask = digits_mask(ch, 30, 60)
        assert mask.shape == (60, 30) and not mask.flags.writeable
        assert 0.12 < mask.mean() < 0.65, ch
        # The grid box is filled: ink reaches the top and bottom rows' neighbourhood.
        rows = np.flatnonzero(mask.any(axis=1))
        assert rows[0] <= 3 and rows[-1] >= 56, ch


def test_digits_are_told_apart_and_the_one_has_no_foot():
    masks = {ch: digits_mask(ch, 30, 60).astype(int) for ch in "0123456789"}
    for a in masks:
        for b in masks:
            if a < b:
                assert np.abs(masks[a] - masks[b]).sum() > 60, (a, b)
    one = masks["1"]
    assert one[-4:, :10].sum() == 0  # DIN's "1" stands on its stem alone (DejaVu's has a foot)
    three = masks["3"]
    assert three[:6, 3:27].mean() > 0.5  # the flat top of DIN's "3"


def test_a_digit_keeps_its_place_whatever_its_neighbour():
    fifty, seventy = digits_mask("50", 64, 60), digits_mask("70", 64, 60)
    np.testing.assert_array_equal(fifty[:, 34:], seventy[:, 34:])
    assert (fifty[:, :30] != seventy[:, :30]).sum() > 100


def test_weight_thickens_the_strokes():
    assert digits_mask("8", 30, 60, 1.3).sum() > 1.05 * digits_mask("8", 30, 60, 1.0).sum()


def test_only_digits_are_drawn():
    assert set(DIGIT_STROKES) == set("0123456789")
    with pytest.raises(ValueError, match="only digits"):
        digits_mask("7a", 30, 60)
    with pytest.raises(ValueError, match="only digits"):
        digits_mask("", 30, 60)
