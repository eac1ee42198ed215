"""Fixtures that build tiny fake GTSRB copies in every layout the loader reads.

Each image is FILE_SIZE pixels: black background, the sign ROI a solid colour that encodes the row
(R=250, G=20+5*label, B=20+30*track+10*frame for training, B=200+index for test), so tests can check that
every output image is the crop of the right file.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FILE_SIZE = (40, 36)
"""(width, height) of the fake image files."""
FILE_ROI = (6, 5, 34, 31)
"""Sign box in file pixels, x1/y1 exclusive; leaves the >= 5 px border the INI release has."""
LAYOUTS = ("official-zip", "official-dir", "torchvision", "kaggle")
HEADER = ("Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId")


@dataclass(frozen=True)
class Row:
    label: int
    track: int
    frame: int
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class FakeGTSRB:
    """A fake copy on disk and what the loader should find in it."""

    root: Path
    layout: str
    train: list[Row]
    test: list[Row]
    file_size: tuple[int, int] = FILE_SIZE
    """(width, height) of the image files."""


def sign_image(colour: tuple[int, int, int], fmt: str) -> bytes:
    """Encode a FILE_SIZE image, black with the ROI in ``colour``, as PPM or PNG."""
    pixels = np.zeros((FILE_SIZE[1], FILE_SIZE[0], 3), dtype=np.uint8)
    x0, y0, x1, y1 = FILE_ROI
    pixels[y0:y1, x0:x1] = colour
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def csv_text(rows: list[tuple[object, ...]], header: tuple[str, ...] = HEADER, sep: str = ";") -> bytes:
    lines = [sep.join(header), *(sep.join(str(v) for v in row) for row in rows)]
    return ("\r\n".join(lines) + "\r\n").encode()


def _geometry(scale: float) -> tuple[int, int, int, int, int, int]:
    """CSV (Width, Height, X1, Y1, X2, Y2): the file's, times ``scale`` (the shared copy stores originals)."""
    w, h = FILE_SIZE
    return (round(w * scale), round(h * scale), *(round(v * scale) for v in FILE_ROI))  # type: ignore[return-value]


def _write_tree(files: dict[str, bytes], root: Path) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _write_zip(files: dict[str, bytes], path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)


def build_gtsrb(
    root: Path,
    layout: str,
    *,
    classes: tuple[int, ...] = (0, 3, 4),
    tracks: int = 2,
    frames: int = 2,
    test_images: int = 6,
    scale: float = 1.0,
) -> FakeGTSRB:
    """Write a fake GTSRB copy in ``layout`` under ``root`` (created)."""
    root.mkdir(parents=True, exist_ok=True)
    geo = _geometry(scale)
    fmt = "PNG" if layout == "kaggle" else "PPM"
    ext = fmt.lower()
    train = [
        Row(c, t, f, (250, 20 + 5 * c, 20 + 30 * t + 10 * f))
        for c in classes
        for t in range(tracks)
        for f in range(frames)
    ]
    test_labels = [classes[i % len(classes)] for i in range(test_images)]
    test = [Row(c, -1, i, (250, 20 + 5 * c, 200 + i)) for i, c in enumerate(test_labels)]
    if layout == "kaggle":
        train_names = [f"Train/{r.label}/{r.label:05d}_{r.track:05d}_{r.frame:05d}.png" for r in train]
        test_names = [f"Test/{r.frame:05d}.png" for r in test]
        files = {
            n: sign_image(r.colour, fmt) for n, r in zip([*train_names, *test_names], [*train, *test], strict=True)
        }
        # Kaggle's headers are matched case-insensitively; write them in lower case to prove it.
        header = ("width", "height", "roi.x1", "roi.y1", "roi.x2", "roi.y2", "classid", "path")
        files["Train.csv"] = csv_text(
            [(*geo, r.label, n) for r, n in zip(train, train_names, strict=True)], header, ","
        )
        files["Test.csv"] = csv_text([(*geo, r.label, n) for r, n in zip(test, test_names, strict=True)], header, ",")
        _write_tree(files, root)
        return FakeGTSRB(root, layout, train, test)

    train_dir = "GTSRB/Training" if layout == "torchvision" else "GTSRB/Final_Training/Images"
    train_files: dict[str, bytes] = {}
    for c in classes:
        rows = [r for r in train if r.label == c]
        names = [f"{r.track:05d}_{r.frame:05d}.{ext}" for r in rows]
        train_files |= {f"{train_dir}/{c:05d}/{n}": sign_image(r.colour, fmt) for r, n in zip(rows, names, strict=True)}
        train_files[f"{train_dir}/{c:05d}/GT-{c:05d}.csv"] = csv_text([(n, *geo, c) for n in names])
    test_files = {f"GTSRB/Final_Test/Images/{r.frame:05d}.{ext}": sign_image(r.colour, fmt) for r in test}
    # The official test archive has a CSV without ClassId; the labels come in the separate GT archive.
    test_files["GTSRB/Final_Test/Images/GT-final_test.test.csv"] = csv_text(
        [(f"{r.frame:05d}.{ext}", *geo) for r in test], HEADER[:-1]
    )
    gt = csv_text([(f"{r.frame:05d}.{ext}", *geo, r.label) for r in test])
    if layout == "official-zip":
        _write_zip(train_files, root / "GTSRB_Final_Training_Images.zip")
        _write_zip(test_files, root / "GTSRB_Final_Test_Images.zip")
        _write_zip({"GT-final_test.csv": gt}, root / "GTSRB_Final_Test_GT.zip")
    elif layout == "official-dir":
        _write_tree({**train_files, **test_files, "GT-final_test.csv": gt}, root)
    elif layout == "torchvision":
        _write_tree({**train_files, **test_files, "GT-final_test.csv": gt}, root / "gtsrb")
    else:
        raise ValueError(layout)
    return FakeGTSRB(root, layout, train, test)


@pytest.fixture
def make_gtsrb(tmp_path: Path) -> Callable[..., FakeGTSRB]:
    """Factory: ``make_gtsrb(layout, root=None, **options)`` writes a fake copy (by default in a fresh tmp folder)."""
    count = 0

    def make(layout: str, root: Path | None = None, **options: object) -> FakeGTSRB:
        nonlocal count
        count += 1
        return build_gtsrb(root or tmp_path / f"data{count}", layout, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache folder; the environment variables that would redirect the loader are cleared."""
    monkeypatch.delenv("KLUGERHANS_CACHE_DIR", raising=False)
    monkeypatch.delenv("KLUGERHANS_GTSRB_DIR", raising=False)
    return tmp_path / "cache"
