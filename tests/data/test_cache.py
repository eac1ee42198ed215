"""The decoded-dataset cache: hits, rebuilds when the source changes, recovery from damage, where it lives."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from klugerhans.data.gtsrb import cache as cache_mod
from klugerhans.data.gtsrb.cache import cache_root, fingerprint, read_entry
from klugerhans.data.gtsrb.layouts import Layout
from klugerhans.data.gtsrb.loader import load_gtsrb
from klugerhans.errors import DataError


def _load(root: Path, cache_dir: Path, **kw):
    return load_gtsrb(data_dir=root, cache_dir=cache_dir, progress=False, **kw)


def _entries(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "datasets").iterdir())


def _touch_later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def test_second_load_is_a_hit_with_identical_arrays(make_gtsrb, cache_dir, monkeypatch):
    root = make_gtsrb("official-zip").root
    first = _load(root, cache_dir)
    # A hit must not parse or decode anything: make that impossible.
    monkeypatch.setattr(Layout, "read_annotations", lambda *a: pytest.fail("parsed on a cache hit"))
    second = _load(root, cache_dir)
    assert (first.info["cache_state"], second.info["cache_state"]) == ("built", "hit")
    assert first.info["cache_path"] == second.info["cache_path"]
    assert Path(second.info["cache_path"]).parent == cache_dir / "datasets"
    for a, b in ((first.train, second.train), (first.test, second.test)):
        for field in ("images", "labels", "tracks", "boxes", "sources"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert second.info["train"] == first.info["train"]


def test_changed_csv_rebuilds_and_prunes_the_stale_entry(make_gtsrb, cache_dir):
    root = make_gtsrb("official-dir").root
    old = _load(root, cache_dir)
    gt = root / "GT-final_test.csv"
    gt.write_bytes(gt.read_bytes().replace(b";34;31;", b";30;31;", 1))  # same size, narrower ROI
    _touch_later(gt)
    new = _load(root, cache_dir)
    assert new.info["cache_state"] == "built"
    assert new.info["cache_path"] != old.info["cache_path"]
    assert not np.array_equal(new.test.images[0], old.test.images[0])
    np.testing.assert_array_equal(new.test.images[1:], old.test.images[1:])
    assert _entries(cache_dir) == [Path(new.info["cache_path"])]


def test_replaced_archive_rebuilds(make_gtsrb, cache_dir):
    root = make_gtsrb("official-zip").root
    assert len(_load(root, cache_dir).train) == 12
    make_gtsrb("official-zip", root=root, tracks=3)
    again = _load(root, cache_dir)
    assert again.info["cache_state"] == "built" and len(again.train) == 18


def test_new_kaggle_rows_rebuild(make_gtsrb, cache_dir):
    root = make_gtsrb("kaggle").root
    _load(root, cache_dir)
    csv = root / "Train.csv"
    lines = csv.read_bytes().splitlines()
    csv.write_bytes(b"\n".join(lines[:-1]) + b"\n")
    again = _load(root, cache_dir)
    assert again.info["cache_state"] == "built" and len(again.train) == 11


@pytest.mark.parametrize("damage", ["truncate", "no-meta", "bad-json"])
def test_damaged_entry_is_rebuilt(make_gtsrb, cache_dir, damage):
    root = make_gtsrb("official-zip").root
    entry = Path(_load(root, cache_dir).info["cache_path"])
    if damage == "truncate":
        path = entry / "train_images.npy"
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "no-meta":
        (entry / "meta.json").unlink()
    else:
        (entry / "meta.json").write_text("{not json")
    again = _load(root, cache_dir)
    assert again.info["cache_state"] == "built" and len(again.train) == 12
    assert _load(root, cache_dir).info["cache_state"] == "hit"


def test_size_and_margin_get_their_own_entries(make_gtsrb, cache_dir):
    root = make_gtsrb("official-zip").root
    a = _load(root, cache_dir)
    b = _load(root, cache_dir, size=48)
    c = _load(root, cache_dir, margin=0.0)
    assert b.train.size == 48 and b.info["cache_state"] == "built" and c.info["cache_state"] == "built"
    assert len({a.info["cache_path"], b.info["cache_path"], c.info["cache_path"]}) == 3
    assert len(_entries(cache_dir)) == 3


def test_cache_dir_from_environment(make_gtsrb, cache_dir, monkeypatch):
    monkeypatch.setenv("KLUGERHANS_CACHE_DIR", str(cache_dir / "env"))
    ds = load_gtsrb(data_dir=make_gtsrb("kaggle").root, progress=False)
    assert Path(ds.info["cache_path"]).parent == cache_dir / "env" / "datasets"


def test_cache_root_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("KLUGERHANS_CACHE_DIR", raising=False)
    assert "klugerhans" in str(cache_root())
    monkeypatch.setenv("KLUGERHANS_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"


def test_fingerprint_follows_size_and_mtime(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("x")
    before = fingerprint([f], "official-zip", 32)
    assert fingerprint([f], "official-zip", 32) == before
    assert fingerprint([f], "official-zip", 48) != before
    _touch_later(f)
    touched = fingerprint([f], "official-zip", 32)
    assert touched != before
    f.write_text("xy")
    assert fingerprint([f], "official-zip", 32) != touched


def test_unwritable_cache_is_a_data_error(make_gtsrb, tmp_path, monkeypatch):
    monkeypatch.delenv("KLUGERHANS_CACHE_DIR", raising=False)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(DataError, match="KLUGERHANS_CACHE_DIR"):
        load_gtsrb(data_dir=make_gtsrb("kaggle").root, cache_dir=blocker, progress=False)


def test_read_entry_of_a_missing_folder_is_none(tmp_path):
    assert read_entry(tmp_path / "nothing", "key") is None
    assert cache_mod.CACHE_VERSION >= 1
