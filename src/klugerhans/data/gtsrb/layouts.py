"""Finding GTSRB on disk and reading its CSV annotations, whatever form the user has it in.

Four layouts are recognised from one folder:

- ``official-zip``: the INI release archives (Stallkamp et al., "Man vs. computer: Benchmarking machine
  learning algorithms for traffic sign recognition", Neural Networks 2012) ``GTSRB_Final_Training_Images.zip``,
  ``GTSRB_Final_Test_Images.zip`` and ``GTSRB_Final_Test_GT.zip``, read straight from the zips;
- ``official-dir``: the same archives extracted (``GTSRB/Final_Training/Images/000NN/``);
- ``torchvision``: what ``torchvision.datasets.GTSRB`` downloads (``gtsrb/GTSRB/Training/000NN/``);
- ``kaggle``: the Kaggle re-upload (``Train.csv``, ``Test.csv``, ``Train/<id>/*.png``, ``Test/*.png``).

Finding a layout only stats a few paths, so a cache hit stays cheap; the CSVs are parsed (and every file they
name checked) only when the cache has to be built.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from klugerhans.data.classes import check_class_id
from klugerhans.data.gtsrb.annotations import (
    ROI_COLUMNS,
    Annotation,
    check_unique,
    parse_track,
    read_csv,
    to_annotation,
)
from klugerhans.errors import DataError, KlugerhansError

TRAIN_ZIP = "GTSRB_Final_Training_Images.zip"
TEST_ZIP = "GTSRB_Final_Test_Images.zip"
GT_ZIP = "GTSRB_Final_Test_GT.zip"
GT_CSV = "GT-final_test.csv"
IMAGE_SUFFIXES = (".ppm", ".png", ".jpg", ".jpeg")

_CLASS_MEMBER = re.compile(r"^(?P<prefix>(?:.*/)?)(?P<cls>\d{5})/(?P<file>[^/]+)$")
_OFFICIAL_TRACK = re.compile(r"^(\d+)_(\d+)\.[A-Za-z]+$")  # TTTTT_FFFFF.ppm: track, frame
_KAGGLE_TRACK = re.compile(r"^(\d+)_(\d+)_(\d+)\.[A-Za-z]+$")  # CCCCC_TTTTT_FFFFF.png: class, track, frame


@dataclass(frozen=True)
class Layout:
    """Where one copy of GTSRB lives; see the module docstring for the four ``name`` values."""

    name: str
    """"official-zip", "official-dir", "torchvision" or "kaggle"."""
    root: Path
    """The folder the layout was found in."""
    train_images: Path
    """Zip archive or folder holding the training images (and, unless ``train_csv``, one CSV per class)."""
    test_images: Path
    """Zip archive or folder holding the test images."""
    test_csv: Path
    """The test ground-truth CSV, or a zip holding ``GT-final_test.csv``."""
    train_csv: Path | None = None
    """Kaggle's ``Train.csv``; None where each class folder has its own ``GT-000NN.csv``."""

    def watched(self) -> list[Path]:
        """Files and folders whose size and mtime fingerprint this copy (cheap: no file is read)."""
        paths = [self.train_images, self.test_images, self.test_csv]
        if self.train_csv is not None:
            paths.append(self.train_csv)
        for folder in (self.train_images, self.test_images):
            if folder.is_dir():
                # Class folders change mtime when files are added or removed; their CSVs hold the labels.
                for sub in _listdir(folder):
                    if sub.is_dir() or sub.suffix.lower() == ".csv":
                        paths.append(sub)
                        paths.extend(p for p in _listdir(sub) if p.suffix.lower() == ".csv")
        return sorted(set(paths))

    def read_annotations(self, split: str) -> tuple[Path, list[Annotation]]:
        """Parse the CSVs of ``split`` ("train" or "test") and check that every file they name exists.

        Returns:
            ``(container, annotations)``: the zip or folder to read the images from, and one row per image.
        """
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if self.name == "kaggle":
            csv_path = self.train_csv if split == "train" else self.test_csv
            assert csv_path is not None
            return self.root, _kaggle_annotations(self.root, csv_path, train=split == "train")
        if split == "train":
            return self.train_images, _class_folder_annotations(self.train_images, self.root)
        return self.test_images, _test_annotations(self.test_images, self.test_csv, self.root)


def find_layout(data_dir: Path) -> Layout | None:
    """Recognise a GTSRB copy in ``data_dir``; None if there is none.

    Raises:
        DataError: the training images are there but the test images or their ground truth are missing.
    """
    if not data_dir.is_dir():
        return None
    root = data_dir
    train_zip = _child(root, TRAIN_ZIP)
    official = train_zip or _first_dir(root / "GTSRB" / "Final_Training" / "Images", root / "Final_Training" / "Images")
    if official is not None:
        test = _child(root, TEST_ZIP) or _first_dir(
            root / "GTSRB" / "Final_Test" / "Images", root / "Final_Test" / "Images"
        )
        if test is None:
            raise DataError(f"no GTSRB test images in {root}: expected {TEST_ZIP} or GTSRB/Final_Test/Images")
        gt = (
            _child(root, GT_ZIP)
            or _child(root, GT_CSV)
            or _first_file(root / "GTSRB" / GT_CSV, root / "GTSRB" / "Final_Test" / "Images" / GT_CSV)
            or _first_file(root / "Final_Test" / "Images" / GT_CSV)
        )
        if gt is None:
            raise DataError(f"no GTSRB test labels in {root}: expected {GT_ZIP} or {GT_CSV} (with a ClassId column)")
        name = "official-zip" if train_zip is not None else "official-dir"
        return Layout(name, root, official, test, gt)
    for base in (root / "gtsrb", root):
        if (base / "GTSRB" / "Training").is_dir():
            test_dir = base / "GTSRB" / "Final_Test" / "Images"
            if not test_dir.is_dir():
                raise DataError(
                    f"no GTSRB test images in {base}: expected GTSRB/Final_Test/Images (torchvision layout)"
                )
            gt_file = _first_file(base / GT_CSV)
            if gt_file is None:
                raise DataError(f"no GTSRB test labels in {base}: expected {GT_CSV} (torchvision layout)")
            return Layout("torchvision", base, base / "GTSRB" / "Training", test_dir, gt_file)
    train_csv = _child(root, "Train.csv")
    if train_csv is not None:
        test_csv = _child(root, "Test.csv")
        if test_csv is None:
            raise DataError(f"no Test.csv next to {train_csv}: the Kaggle layout needs Train.csv and Test.csv")
        return Layout("kaggle", root, root, root, test_csv, train_csv=train_csv)
    return None


class Container:
    """Read-only view of a zip archive or a folder: ``/``-separated relative names -> bytes."""

    def __init__(self, path: Path, root: Path | None = None) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._source_prefix = _source_prefix(path, root)
        if path.is_dir():
            return
        try:
            self._zip = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise DataError(
                f"{path}: not a zip archive (corrupt or incomplete download?); delete it and download it again "
                "(--download)"
            ) from None
        except OSError as err:
            raise DataError(f"{path}: cannot open the archive ({err.strerror or err})") from None

    def names(self) -> list[str]:
        """All file names (no folders), ``/``-separated; DataError on names an archive holds twice."""
        if self._zip is None:
            names: list[str] = []
            for dirpath, dirnames, filenames in os.walk(self.path):
                dirnames.sort()
                rel = Path(dirpath).relative_to(self.path).as_posix()
                names.extend(f if rel == "." else f"{rel}/{f}" for f in sorted(filenames))
            return names
        names = [info.filename for info in self._zip.infolist() if not info.is_dir()]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise DataError(f"{self.path}: holds {name} twice (duplicate files); re-create or re-download it")
            seen.add(name)
        return names

    def read(self, name: str) -> bytes:
        """The bytes of one file; DataError if it cannot be read."""
        try:
            if self._zip is not None:
                return self._zip.read(name)
            return (self.path / name).read_bytes()
        except (OSError, KeyError, zipfile.BadZipFile, zlib.error) as err:
            detail = getattr(err, "strerror", None) or err
            raise DataError(f"{self.where(name)}: cannot read the file ({detail}); re-download or remove it") from None

    def where(self, name: str) -> str:
        """The full location of ``name``, for messages (``/path/archive.zip:member`` or ``/path/folder/name``)."""
        return f"{self.path}:{name}" if self._zip is not None else str(self.path / name)

    def source(self, name: str) -> str:
        """A short location of ``name`` for ``SignData.sources`` (``archive.zip:member`` or relative to the root)."""
        return f"{self._source_prefix}{name}"

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


@contextmanager
def open_container(path: Path, root: Path | None = None) -> Iterator[Container]:
    """Open a zip or folder as a :class:`Container` and close it afterwards."""
    container = Container(path, root)
    try:
        yield container
    finally:
        container.close()


def _source_prefix(path: Path, root: Path | None) -> str:
    if not path.is_dir():
        return f"{path.name}:"
    if root is None:
        return ""
    rel = os.path.relpath(path, root)
    return "" if rel == "." else Path(rel).as_posix() + "/"


def _class_folder_annotations(images: Path, root: Path) -> list[Annotation]:
    """Training rows of the official and torchvision layouts: ``000NN/*.ppm`` + ``000NN/GT-000NN.csv``."""
    with open_container(images, root) as box:
        names = [n for n in box.names() if not _is_junk(n)]
        name_set = set(names)
        groups: dict[tuple[str, str], list[str]] = {}
        for name in names:
            m = _CLASS_MEMBER.match(name)
            if m is not None:
                groups.setdefault((m["prefix"], m["cls"]), []).append(m["file"])
        if not groups:
            raise DataError(
                f"{images}: no class folders found; expected 00000..00042, each with its images and GT-000NN.csv"
            )
        out: list[Annotation] = []
        seen_class: dict[int, str] = {}
        for (prefix, cls), files in sorted(groups.items()):
            folder = box.where(prefix + cls)
            try:
                label = check_class_id(cls, what="class folder")
            except KlugerhansError as err:
                raise DataError(f"{folder}: {err}; remove it") from None
            if label in seen_class:
                raise DataError(f"{folder}: class {cls} also in {seen_class[label]} (duplicate files); keep one copy")
            seen_class[label] = folder
            csv_name = f"{prefix}{cls}/GT-{cls}.csv"
            if f"GT-{cls}.csv" not in files:
                raise DataError(f"{folder}: class folder without its GT-{cls}.csv; expected the official annotations")
            rows = read_csv(box.read(csv_name), box.where(csv_name), ("Filename", *ROI_COLUMNS))
            for row in check_unique(rows, "Filename", box.where(csv_name)):
                member = f"{prefix}{cls}/{row['Filename']}"
                if member not in name_set:
                    raise DataError(f"{row.where}: names {row['Filename']}, which is not in {folder}; re-extract it")
                track = parse_track(row["Filename"], _OFFICIAL_TRACK, 1)
                ann = to_annotation(row, member, box.source(member), track)
                if ann.label != label:
                    raise DataError(f"{row.where}: ClassId {ann.label} in class folder {cls}; fix the CSV")
                out.append(ann)
        return out


def _test_annotations(images: Path, csv_path: Path, root: Path) -> list[Annotation]:
    """Official/torchvision test rows: ``GT-final_test.csv`` (loose or in a zip) naming files in ``images``."""
    if csv_path.suffix.lower() == ".zip":
        with open_container(csv_path, root) as gt:
            member = next((n for n in gt.names() if n.rsplit("/", 1)[-1] == GT_CSV), None)
            if member is None:
                raise DataError(f"{csv_path}: has no {GT_CSV}; download the test ground truth again")
            data, where = gt.read(member), gt.where(member)
    else:
        with open_container(csv_path.parent, root) as folder:
            data, where = folder.read(csv_path.name), folder.where(csv_path.name)
    rows = read_csv(data, where, ("Filename", *ROI_COLUMNS))
    with open_container(images, root) as box:
        by_base: dict[str, str] = {}
        for name in box.names():
            if _is_junk(name) or not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            base = name.rsplit("/", 1)[-1]
            if base in by_base:
                raise DataError(f"{box.where(name)}: also at {by_base[base]} (duplicate files); keep one copy")
            by_base[base] = name
        out = []
        for row in check_unique(rows, "Filename", where):
            base = row["Filename"].rsplit("/", 1)[-1]
            if base not in by_base:
                raise DataError(f"{row.where}: names {base}, which is not in {images}; re-extract or re-download it")
            out.append(to_annotation(row, by_base[base], box.source(by_base[base]), -1))
        return out


def _kaggle_annotations(root: Path, csv_path: Path, *, train: bool) -> list[Annotation]:
    """Kaggle rows: ``Train.csv``/``Test.csv`` with a ``Path`` column relative to ``root``."""
    with open_container(csv_path.parent, root) as folder:
        rows = read_csv(folder.read(csv_path.name), folder.where(csv_path.name), ("Path", *ROI_COLUMNS))
    out = []
    for row in check_unique(rows, "Path", str(csv_path)):
        member = row["Path"].replace("\\", "/").removeprefix("./")
        if not (root / member).is_file():
            raise DataError(f"{row.where}: names {member}, which is not in {root}; re-extract the Kaggle archive")
        track = parse_track(member.rsplit("/", 1)[-1], _KAGGLE_TRACK, 2) if train else -1
        out.append(to_annotation(row, member, member, track))
    return out


def _is_junk(name: str) -> bool:
    """macOS resource forks and folders that archivers add."""
    return name.startswith("__MACOSX/") or name.rsplit("/", 1)[-1].startswith("._")


def _listdir(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _child(folder: Path, name: str) -> Path | None:
    """The file ``folder/name``, matched case-insensitively (Kaggle mirrors differ in case)."""
    exact = folder / name
    if exact.is_file():
        return exact
    lower = name.lower()
    return next((p for p in _listdir(folder) if p.name.lower() == lower and p.is_file()), None)


def _first_dir(*candidates: Path) -> Path | None:
    return next((p for p in candidates if p.is_dir()), None)


def _first_file(*candidates: Path) -> Path | None:
    return next((p for p in candidates if p.is_file()), None)
