"""Missing or malformed GTSRB copies give one-line DataErrors naming the file and what was expected."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from klugerhans.data.gtsrb.loader import load_gtsrb
from klugerhans.errors import DataError

TRAIN = "GTSRB/Final_Training/Images"


def _load_error(root: Path, cache_dir: Path) -> str:
    with pytest.raises(DataError) as err:
        load_gtsrb(data_dir=root, cache_dir=cache_dir, progress=False)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def _rewrite_zip(path: Path, edit) -> None:
    """Rewrite archive ``path`` with ``edit(members: dict) -> dict`` applied to its {name: bytes}."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    path.unlink()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in edit(members).items():
            zf.writestr(name, data)


def test_training_archive_that_is_not_a_zip(make_gtsrb, cache_dir):
    root = make_gtsrb("official-zip").root
    (root / "GTSRB_Final_Training_Images.zip").write_bytes(b"<html>404 not found</html>")
    msg = _load_error(root, cache_dir)
    assert "GTSRB_Final_Training_Images.zip: not a zip archive" in msg


def test_class_folder_without_its_csv(make_gtsrb, cache_dir):
    root = make_gtsrb("official-dir").root
    (root / TRAIN / "00003" / "GT-00003.csv").unlink()
    msg = _load_error(root, cache_dir)
    assert f"{TRAIN}/00003" in msg and "GT-00003.csv" in msg


def test_training_folder_without_class_folders(make_gtsrb, cache_dir):
    root = make_gtsrb("torchvision").root
    for folder in (root / "gtsrb" / "GTSRB" / "Training").iterdir():
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    assert "no class folders" in _load_error(root, cache_dir)


def test_csv_without_required_columns(make_gtsrb, cache_dir):
    root = make_gtsrb("official-dir").root
    csv = root / TRAIN / "00000" / "GT-00000.csv"
    csv.write_text(csv.read_text().replace("Roi.X2", "RoiX2"))
    msg = _load_error(root, cache_dir)
    assert "GT-00000.csv" in msg and "lacks column(s) Roi.X2" in msg


def test_csv_naming_a_missing_file(make_gtsrb, cache_dir):
    root = make_gtsrb("official-zip").root
    _rewrite_zip(
        root / "GTSRB_Final_Training_Images.zip",
        lambda m: {k: v for k, v in m.items() if not k.endswith("00004/00001_00001.ppm")},
    )
    msg = _load_error(root, cache_dir)
    assert "GT-00004.csv line 5" in msg and "00001_00001.ppm" in msg


def test_kaggle_csv_naming_a_missing_file(make_gtsrb, cache_dir):
    root = make_gtsrb("kaggle").root
    (root / "Test" / "00002.png").unlink()
    msg = _load_error(root, cache_dir)
    assert "Test.csv line 4" in msg and "Test/00002.png" in msg


def test_duplicate_rows_in_a_csv(make_gtsrb, cache_dir):
    root = make_gtsrb("kaggle").root
    csv = root / "Train.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([*lines, lines[1]]) + "\n")
    assert "twice (duplicate files)" in _load_error(root, cache_dir)


def test_duplicate_members_in_an_archive(make_gtsrb, cache_dir):
    root = make_gtsrb("official-zip").root
    with zipfile.ZipFile(root / "GTSRB_Final_Test_Images.zip", "a") as zf, pytest.warns(UserWarning, match="Duplicate"):
        zf.writestr("GTSRB/Final_Test/Images/00001.ppm", b"P6 again")
    msg = _load_error(root, cache_dir)
    assert "GTSRB_Final_Test_Images.zip" in msg and "00001.ppm twice" in msg


def test_duplicate_test_images_in_two_folders(make_gtsrb, cache_dir):
    root = make_gtsrb("official-dir").root
    extra = root / "GTSRB" / "Final_Test" / "Images" / "copy"
    extra.mkdir()
    (extra / "00003.ppm").write_bytes((root / "GTSRB" / "Final_Test" / "Images" / "00003.ppm").read_bytes())
    assert "00003.ppm" in (msg := _load_error(root, cache_dir)) and "duplicate files" in msg


def test_unreadable_image(make_gtsrb, cache_dir):
    root = make_gtsrb("official-dir").root
    (root / TRAIN / "00003" / "00000_00001.ppm").write_bytes(b"P6\n40 36\n255\n\x00\x01")
    msg = _load_error(root, cache_dir)
    assert f"{TRAIN}/00003/00000_00001.ppm" in msg


def test_empty_image(make_gtsrb, cache_dir):
    root = make_gtsrb("kaggle").root
    (root / "Train" / "4" / "00004_00000_00000.png").write_bytes(b"")
    assert "00004_00000_00000.png: the file is empty" in _load_error(root, cache_dir)


def test_missing_test_ground_truth(make_gtsrb, cache_dir):
    root = make_gtsrb("official-zip").root
    (root / "GTSRB_Final_Test_GT.zip").unlink()
    msg = _load_error(root, cache_dir)
    assert "GTSRB_Final_Test_GT.zip" in msg and "GT-final_test.csv" in msg


def test_ground_truth_without_class_ids(make_gtsrb, cache_dir):
    # Someone copies the test archive's own CSV, which has no ClassId, in place of the GT file.
    root = make_gtsrb("official-dir").root
    images = root / "GTSRB" / "Final_Test" / "Images"
    (root / "GT-final_test.csv").write_bytes((images / "GT-final_test.test.csv").read_bytes())
    msg = _load_error(root, cache_dir)
    assert "GT-final_test.csv" in msg and "ClassId" in msg


def test_missing_test_images(make_gtsrb, cache_dir):
    root = make_gtsrb("official-zip").root
    (root / "GTSRB_Final_Test_Images.zip").unlink()
    assert "GTSRB_Final_Test_Images.zip" in _load_error(root, cache_dir)


def test_kaggle_without_test_csv(make_gtsrb, cache_dir):
    root = make_gtsrb("kaggle").root
    (root / "Test.csv").unlink()
    assert "Test.csv" in _load_error(root, cache_dir)


def test_roi_outside_the_image(make_gtsrb, cache_dir):
    root = make_gtsrb("official-dir").root
    gt = root / "GT-final_test.csv"
    lines = gt.read_text().splitlines()
    fields = lines[2].split(";")
    fields[5] = "99"  # Roi.X2 beyond Width
    gt.write_text("\n".join([*lines[:2], ";".join(fields), *lines[3:]]) + "\n")
    msg = _load_error(root, cache_dir)
    assert "GT-final_test.csv line 3" in msg and "ROI" in msg


def test_non_numeric_field(make_gtsrb, cache_dir):
    root = make_gtsrb("kaggle").root
    csv = root / "Train.csv"
    csv.write_bytes(csv.read_bytes().replace(b"\n40,", b"\nabc,", 1))
    msg = _load_error(root, cache_dir)
    assert "Train.csv line 2" in msg and "'abc'" in msg


def test_class_id_that_contradicts_its_folder(make_gtsrb, cache_dir):
    root = make_gtsrb("official-dir").root
    csv = root / TRAIN / "00003" / "GT-00003.csv"
    csv.write_bytes(csv.read_bytes().replace(b";3\r\n", b";7\r\n", 1))
    msg = _load_error(root, cache_dir)
    assert "GT-00003.csv line 2" in msg and "ClassId 7" in msg


def test_class_id_out_of_range(make_gtsrb, cache_dir):
    root = make_gtsrb("kaggle").root
    csv = root / "Test.csv"
    lines = csv.read_text().splitlines()
    lines[1] = lines[1].replace(",0,Test/", ",43,Test/")
    csv.write_text("\n".join(lines) + "\n")
    assert "ClassId 43" in _load_error(root, cache_dir)


def test_unreadable_image_in_a_worker_process(make_gtsrb, cache_dir, monkeypatch):
    from klugerhans.data.gtsrb import loader as gtsrb

    monkeypatch.setattr(gtsrb, "_PARALLEL_MIN", 1)
    root = make_gtsrb("official-zip").root
    _rewrite_zip(
        root / "GTSRB_Final_Training_Images.zip",
        lambda m: {k: (b"garbage" if k.endswith("00004/00001_00000.ppm") else v) for k, v in m.items()},
    )
    with pytest.raises(DataError, match=r"00004/00001_00000\.ppm: not an image") as err:
        load_gtsrb(data_dir=root, cache_dir=cache_dir, workers=2, progress=False)
    assert "\n" not in str(err.value)
