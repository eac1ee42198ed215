"""Contact sheets: picking real examples from different tracks, several real images per class."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from klugerhans.data.classes import NUM_CLASSES
from klugerhans.data.dataset import SignData
from klugerhans.data.synthetic.sheets import contact_sheet, pick_examples, save_contact_sheet
from klugerhans.errors import KlugerhansError


def _data(labels: list[int], tracks: list[int]) -> SignData:
    n = len(labels)
    images = np.zeros((n, 8, 8, 3), np.uint8)
    images[:, :, :, 0] = np.arange(n, dtype=np.uint8)[:, None, None]  # red channel = row index
    return SignData(images, np.asarray(labels), np.asarray(tracks), np.zeros((n, 4), np.float32),
                    np.array(["x"] * n))  # fmt: skip


def test_pick_examples_spreads_over_tracks_and_takes_middle_frames():
    # class 1: tracks 10, 11, 12, 13 with 3 frames each (rows 0..11); class 2: one untracked image.
    data = _data([1] * 12 + [2], [10, 10, 10, 11, 11, 11, 12, 12, 12, 13, 13, 13, -1])
    assert pick_examples(data, 1, 2).tolist() == [1, 10]  # first and last track, middle frames
    assert pick_examples(data, 1, 4).tolist() == [1, 4, 7, 10]
    assert pick_examples(data, 1, 6).tolist() == [1, 4, 7, 10, 0, 2]  # more than tracks: other frames
    assert pick_examples(data, 2, 3).tolist() == [12]
    assert pick_examples(data, 5, 3).tolist() == [] and pick_examples(data, 1, 0).tolist() == []
    untracked = _data([0, 0, 0, 0, 0], [-1] * 5)
    assert pick_examples(untracked, 0, 3).tolist() == [0, 2, 4]
    with pytest.raises(KlugerhansError):
        pick_examples(data, 1, -1)


def test_contact_sheet_shows_several_real_examples(tmp_path):
    data = _data([0, 0, 0, 3], [0, 1, 2, -1])
    one = contact_sheet(8, real=data, examples=1, zoom=1, columns=NUM_CLASSES, real_examples=1)
    three = contact_sheet(8, real=data, examples=1, zoom=1, columns=NUM_CLASSES, real_examples=3)
    assert three.height == one.height and three.width - one.width == NUM_CLASSES * 2 * (8 + 2)
    path = save_contact_sheet(tmp_path / "s.png", 8, real=data, examples=1, zoom=1, columns=5, real_examples=3)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == contact_sheet(8, data, 1, zoom=1, columns=5, real_examples=3).size
    with pytest.raises(KlugerhansError, match="real_examples"):
        contact_sheet(8, real=data, real_examples=0)
