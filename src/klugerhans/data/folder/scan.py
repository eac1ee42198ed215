"""Find an image folder's layout, classes and files the way torchvision's ``ImageFolder`` does.

Layouts (split folder names are matched case-insensitively):

- ``train/val/test``: ``DIR/train/<class>/*``, ``DIR/val/<class>/*`` and ``DIR/test/<class>/*``;
- ``train/test``: no ``val/``;
- ``train/val``: no ``test/``; the test split is ``val/`` (ImageNet, Imagenette ship it so);
- ``train``: only ``train/``, read as the train split; there is no test split, so asking for one is an error that
  names the train split;
- ``bare``: ``DIR/<class>/*`` read as one split that is both train and test.

Classes are the sorted names of ``train/``'s class folders (of ``DIR``'s in a bare folder), the list
``ImageFolder(DIR/train).classes`` gives and so the one a model trained on it outputs. ``val/`` and ``test/``
use that same list: a class folder missing there is fine (the class has no images in that split), but a class
folder ``train/`` lacks is an error, because the model has no label for it (``ImageFolder(DIR/test)`` would
instead renumber every class after it, silently).

Files are those of ``torchvision.datasets.folder.make_dataset``: everything under a class folder, subfolders
included (symlinks followed, except back into a folder above, where ImageFolder would loop), whose name ends in
one of :data:`IMG_EXTENSIONS` in any case, in its sorted walk order; other files are skipped silently.

Hidden entries (names starting with ".", like ``.DS_Store``, ``.ipynb_checkpoints`` or macOS's ``._photo.jpg``)
are skipped too. Here ImageFolder differs: it takes a hidden folder as a class (and fails when that holds no
images) and reads hidden image files. The class lists agree wherever ImageFolder reads the tree, and a hidden
class-level folder that holds images is an error, because ImageFolder would count it and shift every label after it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from klugerhans.errors import DataError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""File endings read as images (torchvision's ``IMG_EXTENSIONS``), compared in lower case."""
SPLIT_FOLDERS = ("train", "val", "test")
"""Folder names that make ``DIR`` a split layout instead of a bare one."""
_SHOWN = 5  # names listed in one error message


@dataclass(frozen=True, eq=False)
class FolderSplit:
    """The image files of one split, in ImageFolder's sample order (nothing decoded)."""

    name: str
    """"train", "val" or "test"; "all" for a bare folder."""
    folder: str
    """The split's folder (absolute)."""
    paths: np.ndarray
    """(N,) str file paths, ``folder/<class>/...``."""
    labels: np.ndarray
    """(N,) int64 class indices into :attr:`FolderIndex.class_names`."""

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, index: np.ndarray | slice) -> FolderSplit:
        """The files selected by ``index`` (boolean mask, integer indices or slice)."""
        return FolderSplit(self.name, self.folder, self.paths[index], self.labels[index])

    def class_counts(self, num_classes: int) -> np.ndarray:
        """(num_classes,) number of files per class."""
        return np.bincount(self.labels, minlength=num_classes)


@dataclass(frozen=True, eq=False)
class FolderIndex:
    """What :func:`scan_folder` found: the layout, the class list and every split's files."""

    root: str
    """The folder given (absolute)."""
    layout: str
    """"train/val/test", "train/test", "train/val", "train" or "bare" (see the module docstring)."""
    class_names: tuple[str, ...]
    """Class folder names in label order (sorted, as ``ImageFolder.classes``)."""
    train: FolderSplit
    """Training files (a bare folder: all files)."""
    test: FolderSplit | None
    """Test files (``val/``'s in the train/val layout; a bare folder: all files, the same object as train); None
    where ``train/`` stands alone."""
    val: FolderSplit | None = None
    """Validation files where a ``val/`` folder exists."""


def scan_folder(data_dir: str | os.PathLike[str] | None) -> FolderIndex:
    """List the classes and image files of an ImageFolder-style folder (no image is opened).

    Args:
        data_dir: ``DIR`` with ``train/`` and, optionally, ``test/`` and/or ``val/``, each holding one folder per
            class, or a bare ``DIR/<class>/`` folder.

    Raises:
        DataError: a missing folder, no class folders, empty class folders, a class folder that ``train/``
            lacks, split folders mixed with class folders, or a hidden folder with images (one-line message).
    """
    root = _check_root(data_dir)
    dirs = sorted(_subfolders(root, check_hidden=False))
    splits: dict[str, str] = {}
    for name in dirs:
        key = name.lower()
        if key in SPLIT_FOLDERS:
            if key in splits:
                raise DataError(f"{root} has both {splits[key]}/ and {name}/: keep one {key} folder")
            splits[key] = name
    if not splits:
        class_names = _class_names(root)
        everything = _split_files("all", root, class_names)
        return FolderIndex(str(root), "bare", class_names, everything, everything)
    others = sorted(name for name in dirs if name.lower() not in SPLIT_FOLDERS)
    if others:
        hint = "; rename it to val/" if others[0].lower() in ("valid", "validation") else ""
        raise DataError(
            f"{root} mixes split folders ({', '.join(sorted(splits.values()))}) with other folders "
            f"({_listing(others)}): move the class folders into train/ and test/{hint}"
        )
    if "train" not in splits:
        present = sorted(splits.values())
        raise DataError(
            f"{root} has {'/, '.join(present)}/ but no train/ folder, whose class folders define the labels: "
            f"add train/<class>/, or point --data-dir at {root / present[0]} to read it as one split"
        )
    class_names = _class_names(root / splits["train"])
    found = {key: _split_files(key, root / name, class_names) for key, name in splits.items()}
    layout = "/".join(key for key in SPLIT_FOLDERS if key in found)
    test = found.get("test", found.get("val"))
    return FolderIndex(str(root), layout, class_names, found["train"], test, found.get("val"))


def _check_root(data_dir: str | os.PathLike[str] | None) -> Path:
    if data_dir is None:
        raise DataError("the folder dataset needs its images: give --data-dir DIR with one folder per class")
    root = Path(os.path.abspath(Path(data_dir).expanduser()))
    if not root.exists():
        raise DataError(f"{root}: no such folder; give --data-dir a folder with one sub-folder per class")
    if not root.is_dir():
        raise DataError(f"{root}: is a file, not a folder; give --data-dir a folder with one sub-folder per class")
    return root


def _scandir(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as err:
        raise DataError(f"{folder}: cannot list the folder ({err.strerror}); check its permissions") from None


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks, as ImageFolder's find_classes does
    except OSError:
        return False


def _subfolders(folder: Path, check_hidden: bool = True) -> list[str]:
    """Names of the non-hidden folders in ``folder``; with ``check_hidden``, a hidden one with images is an error."""
    names = []
    for entry in _scandir(folder):
        if not _is_dir(entry):
            continue
        if entry.name.startswith("."):
            if check_hidden and _walk_images(entry.path):
                raise DataError(
                    f"{entry.path}: a hidden folder with images; ImageFolder would count it as a class and "
                    "shift every label after it: move its images into a class folder or remove it"
                )
            continue
        names.append(entry.name)
    return names


def _class_names(folder: Path) -> tuple[str, ...]:
    """The sorted class folder names of ``folder`` (ImageFolder's ``find_classes``)."""
    names = sorted(_subfolders(folder))
    if not names:
        loose = sum(1 for e in _scandir(folder) if not _is_dir(e) and _is_image_name(e.name))
        held = f" (it holds {loose} images directly: sort them into one folder per class)" if loose else ""
        raise DataError(f"{folder}: no class folders{held}; expected {folder}/<class>/<image>")
    return tuple(names)


def _split_files(name: str, folder: Path, class_names: tuple[str, ...]) -> FolderSplit:
    """The image files of one split folder, labelled by ``class_names`` (ImageFolder's ``make_dataset``)."""
    if name != "train" and name != "all":
        present = _subfolders(folder)
        if not present:
            raise DataError(f"{folder}: no class folders; expected {folder}/<class>/<image> as in train/")
        unknown = sorted(set(present) - set(class_names))
        if unknown:
            raise DataError(
                f"{folder}: class folder(s) {_listing(unknown)} not in train/, so the model has no label for "
                "them: add them to train/ or remove them here"
            )
    paths: list[str] = []
    labels: list[int] = []
    empty: list[str] = []
    for label, class_name in enumerate(class_names):
        top = folder / class_name
        if not top.is_dir():
            continue
        files = _walk_images(str(top))
        if not files:
            empty.append(class_name)
        paths += files
        labels += [label] * len(files)
    if empty:
        raise DataError(
            f"{folder}: no images in the class folder(s) {_listing(empty)} "
            f"(read: {' '.join(IMG_EXTENSIONS)}): add images or remove the folder(s)"
        )
    return FolderSplit(name, str(folder), np.array(paths, dtype=str), np.array(labels, dtype=np.int64))


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def _walk_images(top: str) -> list[str]:
    """Image files under ``top`` in ``sorted(os.walk(top, followlinks=True))`` order, hidden entries skipped."""

    def fail(err: OSError) -> None:
        raise DataError(f"{err.filename}: cannot list the folder ({err.strerror}); check its permissions")

    found: list[tuple[str, list[str]]] = []
    for here, dirs, names in os.walk(top, onerror=fail, followlinks=True):
        real = os.path.realpath(here)
        # A symlink to the folder itself or one above it would loop for ever; ImageFolder never returns there.
        dirs[:] = [d for d in dirs if not d.startswith(".") and not _loops(real, os.path.join(here, d))]
        found.append((here, sorted(n for n in names if _is_image_name(n))))
    found.sort(key=lambda item: item[0])
    return [os.path.join(here, name) for here, names in found for name in names]


def _loops(real_parent: str, child: str) -> bool:
    real = os.path.realpath(child)
    return real == real_parent or real_parent.startswith(real.rstrip(os.sep) + os.sep)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
