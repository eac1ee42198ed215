"""Loading real-GTSRB layouts from tiny generated copies (see conftest.py for what the fixtures contain)."""

from __future__ import annotations

import numpy as np
import pytest

from klugerhans.data.dataset import DATASETS, SignData, split_by_track
from klugerhans.data.gtsrb import loader as gtsrb
from klugerhans.data.gtsrb.loader import load_gtsrb, sign_geometry
from klugerhans.errors import DataError, KlugerhansError

LAYOUTS = ("official-zip", "official-dir", "torchvision", "kaggle")


def _centre_colours(data: SignData) -> list[tuple[int, ...]]:
    s = data.size // 2
    return [tuple(int(v) for v in img[s, s]) for img in data.images]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_loads_every_image_with_its_label_and_track(layout, make_gtsrb, cache_dir):
    fake = make_gtsrb(layout)
    ds = load_gtsrb(data_dir=fake.root, cache_dir=cache_dir, progress=False)

    assert ds.info["layout"] == layout
    assert ds.info["cache_state"] == "built"
    assert len(ds.train) == len(fake.train) and len(ds.test) == len(fake.test)
    assert ds.train.images.shape[1:] == (32, 32, 3) and ds.train.images.dtype == np.uint8
    # Each output is the crop of the file its label/track came from: the ROI colour encodes the row.
    assert sorted(_centre_colours(ds.train)) == sorted(r.colour for r in fake.train)
    assert sorted(_centre_colours(ds.test)) == sorted(r.colour for r in fake.test)
    for split in (ds.train, ds.test):
        colours = np.array(_centre_colours(split))
        np.testing.assert_array_equal(colours[:, 1], 20 + 5 * split.labels)
    np.testing.assert_array_equal((np.array(_centre_colours(ds.train))[:, 2] - 20) // 30, ds.train.tracks)
    assert (ds.test.tracks == -1).all()
    assert ds.train.labels.dtype == np.int64 and ds.train.boxes.dtype == np.float32
    assert all(str(s).endswith((".ppm", ".png")) for s in ds.train.sources)
    info = ds.info["train"]
    assert info["images"] == len(fake.train) and info["classes"] == 3 and info["roi"] == "cropped"
    assert info["csv_width"] == info["file_width"] == [fake.file_size[0]] * 2


def test_torchvision_layout_from_the_gtsrb_folder_itself(make_gtsrb, cache_dir):
    fake = make_gtsrb("torchvision")
    ds = load_gtsrb(data_dir=fake.root / "gtsrb", cache_dir=cache_dir, progress=False)
    assert ds.info["layout"] == "torchvision" and len(ds.train) == len(fake.train)


def test_official_dir_from_the_gtsrb_folder_itself(make_gtsrb, cache_dir):
    fake = make_gtsrb("official-dir")
    (fake.root / "GT-final_test.csv").rename(fake.root / "GTSRB" / "GT-final_test.csv")
    ds = load_gtsrb(data_dir=fake.root / "GTSRB", cache_dir=cache_dir, progress=False)
    assert ds.info["layout"] == "official-dir" and len(ds.test) == len(fake.test)


def test_scaled_roi_gives_the_same_crop_as_matching_sizes(make_gtsrb, cache_dir):
    # The shared copy stores small files but original-size CSVs: the ROI must be scaled, not applied blindly.
    fake = make_gtsrb("official-zip")
    same = load_gtsrb(data_dir=fake.root, cache_dir=cache_dir, margin=0.0, progress=False)
    scaled = load_gtsrb(
        data_dir=make_gtsrb("official-zip", scale=2.0).root, cache_dir=cache_dir, margin=0.0, progress=False
    )
    assert same.info["train"]["roi"] == "cropped" and scaled.info["train"]["roi"] == "scaled"
    assert scaled.info["train"]["csv_width"] == [2 * fake.file_size[0]] * 2
    assert scaled.info["train"]["file_width"] == [fake.file_size[0]] * 2
    np.testing.assert_array_equal(scaled.train.images, same.train.images)
    np.testing.assert_allclose(scaled.train.boxes, same.train.boxes)
    # margin 0: the crop is the sign only, so (almost) no black background is left.
    dark = (same.train.images.max(axis=3) < 60).mean()
    assert dark < 0.02


def test_boxes_mark_the_sign_in_the_output_image(make_gtsrb, cache_dir):
    ds = load_gtsrb(data_dir=make_gtsrb("official-zip").root, cache_dir=cache_dir, size=48, progress=False)
    size = ds.train.size
    assert size == 48
    for img, (x0, y0, x1, y1) in zip(ds.train.images, ds.train.boxes, strict=True):
        assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
        assert x0 > 0 and x1 < size, "a 10% margin leaves background on each side"
        inside = img[int(np.ceil(y0)) + 1 : int(y1) - 1, int(np.ceil(x0)) + 1 : int(x1) - 1]
        assert (inside[..., 0] == 250).all()
        outside = np.ones((size, size), dtype=bool)
        outside[int(y0) - 1 : int(np.ceil(y1)) + 1, int(x0) - 1 : int(np.ceil(x1)) + 1] = False
        assert (img[outside] == 0).all()


def test_sign_geometry_scales_then_adds_a_clipped_margin():
    crop, box = sign_geometry((10, 8, 70, 64), (80, 72), (40, 36), margin=0.1, size=32)
    # ROI in file pixels: (5, 4, 35, 32), 30 x 28; margin 3 x 2.8.
    np.testing.assert_allclose(crop, (2.0, 1.2, 38.0, 34.8))
    np.testing.assert_allclose(box, (3 / 36 * 32, 2.8 / 33.6 * 32, 33 / 36 * 32, 30.8 / 33.6 * 32))
    crop, box = sign_geometry((0, 0, 40, 36), (40, 36), (40, 36), margin=0.2, size=32)
    assert crop == (0.0, 0.0, 40.0, 36.0) and box == (0.0, 0.0, 32.0, 32.0)


def test_max_images_keeps_every_class(make_gtsrb, cache_dir):
    ds = load_gtsrb(data_dir=make_gtsrb("kaggle").root, cache_dir=cache_dir, max_images=5, progress=False)
    assert len(ds.train) == 5 and set(ds.train.labels) == {0, 3, 4}
    assert len(ds.test) == 5
    assert ds.info["train"]["images"] == 5 and ds.info["train"]["available"] == 12


def test_parallel_decoding_matches_serial(make_gtsrb, cache_dir, monkeypatch):
    root = make_gtsrb("official-zip", tracks=3).root
    serial = load_gtsrb(data_dir=root, cache_dir=cache_dir / "a", workers=1, progress=False)
    monkeypatch.setattr(gtsrb, "_PARALLEL_MIN", 1)
    parallel = load_gtsrb(data_dir=root, cache_dir=cache_dir / "b", workers=2, progress=False)
    for a, b in ((serial.train, parallel.train), (serial.test, parallel.test)):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.sources, b.sources)


def test_track_split_has_no_leak(make_gtsrb, cache_dir):
    ds = load_gtsrb(data_dir=make_gtsrb("official-dir", tracks=4).root, cache_dir=cache_dir, progress=False)
    train, val = split_by_track(ds.train, val_fraction=0.25, seed=1)
    assert len(val) > 0
    pairs = lambda d: set(zip(d.labels.tolist(), d.tracks.tolist(), strict=True))  # noqa: E731
    assert not pairs(train) & pairs(val)


def test_registered_and_reachable_through_load_dataset(make_gtsrb, cache_dir, monkeypatch):
    assert DATASETS["gtsrb"].load is load_gtsrb
    pytest.importorskip("klugerhans.data.synthetic.loader", reason="load_dataset imports the synthetic loader too")
    from klugerhans.data import load_dataset

    monkeypatch.setenv("KLUGERHANS_CACHE_DIR", str(cache_dir))
    ds = load_dataset("gtsrb", data_dir=str(make_gtsrb("official-zip").root), max_images=4)
    assert len(ds.train) == 4 and ds.info["name"] == "gtsrb"


def test_data_dir_from_environment(make_gtsrb, cache_dir, monkeypatch):
    fake = make_gtsrb("torchvision")
    monkeypatch.setenv("KLUGERHANS_GTSRB_DIR", str(fake.root))
    ds = load_gtsrb(cache_dir=cache_dir, progress=False)
    assert ds.info["root"] == str(fake.root / "gtsrb")


def test_no_data_is_a_one_line_error(tmp_path, cache_dir):
    with pytest.raises(DataError) as err:
        load_gtsrb(data_dir=tmp_path / "empty", cache_dir=cache_dir)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == (
        f"no GTSRB data in {tmp_path / 'empty'}: expected GTSRB_Final_Training_Images.zip, gtsrb/GTSRB/Training "
        "or Train.csv; pass --data-dir or --download"
    )


def test_default_folder_is_the_download_folder(cache_dir):
    with pytest.raises(DataError, match="downloads"):
        load_gtsrb(cache_dir=cache_dir)


def test_bad_margin_is_refused(tmp_path):
    with pytest.raises(KlugerhansError, match="margin"):
        load_gtsrb(data_dir=tmp_path, margin=1.5)
