"""The real GTSRB archives (``$KLUGERHANS_GTSRB_DIR`` or ``../shared/gtsrb``): counts, classes, boxes, tracks.

The first test decodes the archives into a session-wide temporary cache (a few seconds on 2 cores); the others
reuse it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from klugerhans.data.classes import NUM_CLASSES
from klugerhans.data.dataset import SignDataset, split_by_track
from klugerhans.data.gtsrb.loader import load_gtsrb

pytestmark = pytest.mark.gtsrb


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gtsrb-cache")


@pytest.fixture(scope="session")
def real(gtsrb_dir: Path, real_cache: Path) -> SignDataset:
    return load_gtsrb(data_dir=gtsrb_dir, cache_dir=real_cache, progress=False)


def test_official_split_sizes_and_classes(real):
    assert real.info["layout"] == "official-zip"
    assert len(real.train) == 39_209
    assert len(real.test) == 1_000
    assert set(real.train.labels.tolist()) == set(range(NUM_CLASSES))
    assert set(real.test.labels.tolist()) == set(range(NUM_CLASSES))
    assert real.train.images.shape[1:] == (32, 32, 3)
    assert real.info["train"]["classes"] == real.info["test"]["classes"] == NUM_CLASSES


def test_shared_copy_is_downscaled_so_rois_are_scaled(real):
    # The shared files are 32x32 while the CSVs keep the original sizes (up to ~250 px).
    train = real.info["train"]
    assert train["file_width"] == train["file_height"] == [32, 32]
    assert train["csv_width"][1] > 32
    assert train["roi"] in ("scaled", "mixed")


def test_boxes_inside_the_image_and_around_the_sign(real):
    for data in (real.train, real.test):
        x0, y0, x1, y1 = data.boxes.T
        assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 32).all() and (y1 <= 32).all()
        assert ((x1 - x0) >= 8).all() and ((y1 - y0) >= 8).all(), "a 10% margin keeps the sign most of the crop"


def test_tracks_parsed_and_track_split_has_no_leak(real):
    assert (real.train.tracks >= 0).all()
    assert (real.test.tracks == -1).all()
    pairs = set(zip(real.train.labels.tolist(), real.train.tracks.tolist(), strict=True))
    assert len(pairs) > 10 * NUM_CLASSES, "~30 frames per track: far fewer tracks than images"
    train, val = split_by_track(real.train, val_fraction=0.1, seed=0)
    assert len(train) + len(val) == len(real.train) and len(val) > 0
    assert not set(zip(train.labels.tolist(), train.tracks.tolist(), strict=True)) & set(
        zip(val.labels.tolist(), val.tracks.tolist(), strict=True)
    )


def test_second_load_hits_the_cache(real, gtsrb_dir, real_cache):
    again = load_gtsrb(data_dir=gtsrb_dir, cache_dir=real_cache, max_images=430, progress=False)
    assert again.info["cache_state"] == "hit"
    assert len(again.train) == 430 and np.bincount(again.train.labels).min() == 10
    assert again.info["cache_path"] == real.info["cache_path"]
