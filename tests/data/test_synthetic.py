"""The synthetic GTSRB renderer: shapes, determinism, boxes, tracks, class content and the registered loader."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from klugerhans.data.classes import NUM_CLASSES, SPEED_50, SPEED_70
from klugerhans.data.dataset import SignData, load_dataset, split_by_track
from klugerhans.data.synthetic.loader import (
    SyntheticConfig,
    render_sign,
    render_signs,
    synthetic_layout,
    synthetic_split,
)
from klugerhans.data.synthetic.sheets import save_contact_sheet
from klugerhans.errors import KlugerhansError

SMALL = SyntheticConfig(train_per_class=4, test_per_class=2, frames_per_track=2)
CLEAN = SyntheticConfig(lighting=0.0, blur=0.0, noise=0.0, jpeg=0.0, clutter=0.0)
RED_CLASSES = (14, 17)  # STOP, no entry: mostly red
BLUE_CLASSES = (33, 35, 38, 40)  # mandatory signs: mostly blue


@pytest.mark.parametrize("size", [32, 48, 64])
def test_every_class_renders_at_every_size(size):
    labels = np.arange(NUM_CLASSES)
    images, boxes = render_signs(labels, size, seed=1)
    assert images.shape == (NUM_CLASSES, size, size, 3) and images.dtype == np.uint8
    assert boxes.shape == (NUM_CLASSES, 4) and boxes.dtype == np.float32
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= size).all()
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    # GTSRB-like crops: the sign fills most of the image but leaves a border.
    assert (width > 0.45 * size).all() and (width < size).all() and (height > 0.4 * size).all()
    assert images.reshape(NUM_CLASSES, -1).std(axis=1).min() > 0  # never a blank image


def test_render_sign_single_example():
    image, box = render_sign(SPEED_50, 48, np.random.default_rng(3))
    again, box_again = render_sign(SPEED_50, 48, np.random.default_rng(3))
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8 and box.shape == (4,)
    np.testing.assert_array_equal(image, again)
    np.testing.assert_array_equal(box, box_again)
    with pytest.raises(KlugerhansError, match="class id"):
        render_sign(43)


def test_same_seed_same_pixels_other_seed_or_split_differs():
    labels = np.array([0, 5, 12, 40])
    a, box_a = render_signs(labels, 32, seed=7)
    b, box_b = render_signs(labels, 32, seed=7)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(box_a, box_b)
    c, _ = render_signs(labels, 32, seed=8)
    d, _ = render_signs(labels, 32, seed=7, split="test")
    for other in (c, d):
        assert (np.abs(a.astype(int) - other.astype(int)).reshape(len(labels), -1).mean(axis=1) > 2).all()


def test_subset_equals_the_same_rows_of_the_full_split():
    full = synthetic_split("train", 32, seed=3, config=SMALL)
    idx = np.array([1, 50, 100, len(full) - 1])
    images, boxes = render_signs(
        full.labels[idx], 32, seed=3, split="train", tracks=full.tracks[idx], frames=np.asarray(_frames(SMALL))[idx],
        config=SMALL,
    )  # fmt: skip
    np.testing.assert_array_equal(images, full.images[idx])
    np.testing.assert_array_equal(boxes, full.boxes[idx])
    capped = synthetic_split("train", 32, seed=3, config=SMALL, max_images=60)
    np.testing.assert_array_equal(capped.images, full.images[:60])
    assert list(capped.sources[:2]) == ["synthetic/train/000000", "synthetic/train/000001"]


def _frames(config: SyntheticConfig) -> np.ndarray:
    return synthetic_layout(config.train_per_class, config.frames_per_track)[2]


def test_layout_prefix_is_balanced_and_tracks_hold_one_class():
    labels, tracks, frames = synthetic_layout(7, 3)
    assert len(labels) == 7 * NUM_CLASSES
    assert (np.bincount(labels[:86], minlength=NUM_CLASSES) == 2).all()
    # The first two images of each class come from two different tracks.
    assert all(tracks[c] != tracks[c + NUM_CLASSES] for c in range(NUM_CLASSES))
    for t in np.unique(tracks):
        in_track = tracks == t
        assert len(np.unique(labels[in_track])) == 1 and in_track.sum() <= 3
        assert len(np.unique(frames[in_track])) == in_track.sum()  # no two identical frames


def test_box_covers_the_sign():
    # Same track and frame, different classes with the same outline: only the sign's pixels may differ.
    for a, b in [(15, 17), (SPEED_50, SPEED_70), (33, 35)]:
        images, boxes = render_signs([a, b] * 3, 32, seed=2, tracks=[0, 0, 1, 1, 2, 2], config=CLEAN)
        for k in range(0, 6, 2):
            np.testing.assert_array_equal(boxes[k], boxes[k + 1])
            diff = np.abs(images[k].astype(int) - images[k + 1].astype(int)).sum(axis=2)
            x0, y0, x1, y1 = boxes[k]
            inside = np.zeros_like(diff, dtype=bool)
            inside[int(np.floor(y0)) : int(np.ceil(y1)), int(np.floor(x0)) : int(np.ceil(x1))] = True
            assert diff.sum() > 0 and diff[inside].sum() >= 0.97 * diff.sum()


def test_box_fits_the_sign_tightly():
    # An empty white circle and a blue disc differ on the whole sign but its thin white rim: their difference
    # must span the box.
    n = 6
    images, boxes = render_signs([15, 33] * n, 64, seed=4, tracks=np.repeat(np.arange(n), 2), config=CLEAN)
    for k in range(0, 2 * n, 2):
        diff = np.abs(images[k].astype(int) - images[k + 1].astype(int)).sum(axis=2) > 60
        ys, xs = np.nonzero(diff)
        x0, y0, x1, y1 = boxes[k]
        assert max(abs(xs.min() - x0), abs(xs.max() + 1 - x1), abs(ys.min() - y0), abs(ys.max() + 1 - y1)) <= 2.5


def test_fifty_and_seventy_differ_only_in_the_first_digit():
    # Paired renders (same sign, pose and light): 50 vs 70 differ where the "5"/"7" is, not at the "0".
    n = 12
    labels = np.array([SPEED_50, SPEED_70] * n)
    tracks = np.repeat(np.arange(n), 2)
    images, boxes = render_signs(labels, 32, seed=5, tracks=tracks)
    diff = np.abs(images[0::2].astype(float) - images[1::2].astype(float)).mean(axis=(0, 3))
    cx = round(float(np.mean((boxes[:, 0] + boxes[:, 2]) / 2)))
    cy = round(float(np.mean((boxes[:, 1] + boxes[:, 3]) / 2)))
    first_digit = diff[cy - 4 : cy + 4, cx - 6 : cx - 1].mean()
    second_digit = diff[cy - 4 : cy + 4, cx + 1 : cx + 6].mean()
    assert first_digit > 4.0 and first_digit > 3 * second_digit


def test_every_class_has_its_own_look():
    # Same sign, pose and light for all classes: any two still differ clearly in a number of pixels.
    images, _ = render_signs(np.arange(NUM_CLASSES), 32, seed=6, tracks=np.zeros(NUM_CLASSES, int), config=CLEAN)
    x = images.astype(float)
    differing = (np.abs(x[:, None] - x[None]).mean(axis=4) > 40).sum(axis=(2, 3))
    assert differing[~np.eye(NUM_CLASSES, dtype=bool)].min() >= 8


def test_red_and_blue_classes_have_their_colour_in_the_box():
    def channel_means(classes):
        labels = np.repeat(classes, 8)
        images, boxes = render_signs(labels, 32, seed=9)
        means = []
        for img, (x0, y0, x1, y1) in zip(images, boxes.round().astype(int), strict=True):
            means.append(img[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0))
        return np.mean(means, axis=0)

    red, blue = channel_means(RED_CLASSES), channel_means(BLUE_CLASSES)
    assert red[0] > 1.2 * red[2] and red[0] > 1.2 * red[1]
    assert blue[2] > 1.2 * blue[0]


def test_frames_of_a_track_show_the_same_sign():
    data = synthetic_split("train", 32, seed=1, config=SyntheticConfig(train_per_class=6, frames_per_track=3))
    x = data.images.astype(float)
    same, other = [], []
    for c in range(0, NUM_CLASSES, 7):
        tracks = np.unique(data.tracks[data.labels == c])
        assert len(tracks) == 2
        a, b = (np.flatnonzero(data.tracks == t) for t in tracks)
        same.append(np.abs(x[a[0]] - x[a[1]]).mean())
        other.append(np.abs(x[a[0]] - x[b[0]]).mean())
    assert np.mean(same) < 0.5 * np.mean(other)
    train, val = split_by_track(data, 0.5, seed=0)
    assert not set(train.tracks) & set(val.tracks)
    assert set(val.labels) == set(range(NUM_CLASSES))


def test_test_split_signs_are_all_different():
    test = synthetic_split("test", 32, seed=0, config=SMALL)
    assert len(test) == 2 * NUM_CLASSES and len(np.unique(test.tracks)) == len(test)


def test_registered_loader_through_load_dataset():
    ds = load_dataset("synthetic", size=32, max_images=50, seed=2)
    assert len(ds.train) == 50 and len(ds.test) == 50
    assert isinstance(ds.train, SignData) and ds.train.size == 32
    assert ds.train.class_counts().max() - ds.train.class_counts().min() <= 1
    assert ds.info["name"] == "synthetic" and ds.test.sources[0] == "synthetic/test/000000"
    again = load_dataset("synthetic", size=32, max_images=50, seed=2, data_dir="/nonexistent", download=True)
    np.testing.assert_array_equal(ds.train.images, again.train.images)


def test_default_config_gives_about_150_train_and_50_test_per_class():
    config = SyntheticConfig()
    assert 100 <= config.train_per_class <= 200 and 30 <= config.test_per_class <= 80


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(train_per_class=0),
        dict(frames_per_track=0),
        dict(margin=0.8),
        dict(box_jitter=0.5),
        dict(jpeg=2.0),
        dict(noise=-0.1),
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(KlugerhansError):
        SyntheticConfig(**kwargs)


def test_bad_arguments_raise():
    with pytest.raises(KlugerhansError, match="split"):
        render_signs([0], split="val")
    with pytest.raises(KlugerhansError, match="class ids"):
        render_signs([0, 43])
    with pytest.raises(KlugerhansError, match="same length"):
        render_signs([0, 1], tracks=[0])
    with pytest.raises(KlugerhansError, match="seed"):
        render_signs([0], seed=-1)
    with pytest.raises(KlugerhansError, match="size"):
        render_signs([0], size=4)


def test_contact_sheet_with_and_without_real_images(tmp_path):
    real_images, _ = render_signs(np.arange(0, NUM_CLASSES, 2), 32, seed=11)
    n = len(real_images)
    real = SignData(real_images, np.arange(0, NUM_CLASSES, 2), -np.ones(n, int), np.zeros((n, 4), np.float32),
                    np.array(["x"] * n))  # fmt: skip
    path = save_contact_sheet(tmp_path / "sheet.png", size=32, real=real, examples=2, zoom=1)
    plain = save_contact_sheet(tmp_path / "plain.png", size=32, examples=2, zoom=1)
    with Image.open(path) as a, Image.open(plain) as b:
        assert a.format == "PNG" and a.width > b.width and a.height == b.height
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.fixture
def render_calls(monkeypatch):
    """Each call of the renderer from the loader, in a process whose render cache starts empty."""
    import klugerhans.data.synthetic.loader as loader

    calls = []
    real = loader.render_signs

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(loader, "render_signs", counted)
    monkeypatch.setattr(loader, "_RENDERED", type(loader._RENDERED)())
    return calls


def test_a_split_is_rendered_once_per_process_and_every_caller_gets_its_own_arrays(monkeypatch, render_calls):
    import klugerhans.data.synthetic.loader as loader

    fresh = loader._render_split("train", 32, 5, SMALL, None)
    render_calls.clear()
    first = synthetic_split("train", 32, seed=5, config=SMALL)
    first.images[:] = 0  # a caller that pastes stickers in place
    second = synthetic_split("train", 32, seed=5, config=SMALL)
    assert len(render_calls) == 1
    for name in ("images", "labels", "tracks", "boxes", "sources"):
        np.testing.assert_array_equal(getattr(second, name), getattr(fresh, name))
    assert second.images.any()
    synthetic_split("train", 32, seed=6, config=SMALL)  # another seed is another split
    assert len(render_calls) == 2
    # a split larger than the budget is rendered every time and never kept
    monkeypatch.setattr(loader, "RENDER_CACHE_BYTES", 1)
    synthetic_split("test", 32, seed=5, config=SMALL)
    synthetic_split("test", 32, seed=5, config=SMALL)
    assert len(render_calls) == 4 and len(loader._RENDERED) == 2


def test_the_test_split_is_shared_by_configs_that_differ_only_in_the_training_split(render_calls):
    import klugerhans.data.synthetic.loader as loader

    bigger = dataclasses.replace(SMALL, train_per_class=SMALL.train_per_class + 3, frames_per_track=3)
    fresh = loader._render_split("test", 32, 5, bigger, None)
    render_calls.clear()
    test = synthetic_split("test", 32, seed=5, config=SMALL)
    shared = synthetic_split("test", 32, seed=5, config=bigger)
    assert len(render_calls) == 1  # the same test signs: rendered once
    np.testing.assert_array_equal(shared.images, fresh.images)
    np.testing.assert_array_equal(shared.images, test.images)
    synthetic_split("train", 32, seed=5, config=SMALL)
    synthetic_split("train", 32, seed=5, config=bigger)  # other training signs
    synthetic_split("test", 32, seed=5, config=dataclasses.replace(SMALL, blur=0.5))  # other test signs
    assert len(render_calls) == 4
