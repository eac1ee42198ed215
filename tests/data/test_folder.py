"""The "folder" dataset: ImageFolder layouts, torchvision's class order and pixels, bad input, the streamed reader."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from klugerhans.data import (
    LazyImages,
    SignData,
    SignDataset,
    iter_batches,
    load_dataset,
    load_folder,
    select_split,
)
from klugerhans.data.dataset import take_balanced
from klugerhans.data.folder import is_lazy, lazy_sign_data
from klugerhans.errors import DataError, KlugerhansError

SIZES = ((40, 30), (23, 57), (64, 64), (31, 17))
"""(width, height) of the generated files, cycled: landscape, portrait, square, tiny."""


def write_image(path: Path, size: tuple[int, int] = (40, 30), seed: int = 0) -> None:
    """A random RGB image of ``size`` (width, height), in the format its extension names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    ext = path.suffix.lower()
    if ext == ".pgm":
        img = img.convert("L")
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".pgm": "PPM"}.get(ext)
    img.save(path, format=fmt or ext[1:].upper())


def write_classes(folder: Path, counts: dict[str, int], ext: str = ".png", seed: int = 0) -> None:
    """``counts[name]`` images in ``folder/name/`` for every class name."""
    for c, (name, n) in enumerate(counts.items()):
        for i in range(n):
            write_image(folder / name / f"img{i}{ext}", SIZES[(c + i) % len(SIZES)], seed + 100 * c + i)


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(err.value)
    assert message and "\n" not in message
    return message


# --- class order, labels and pixels as torchvision's ImageFolder --------------------------------------------------


def test_classes_labels_and_pixels_equal_torchvision_imagefolder(tmp_path: Path) -> None:
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    root = tmp_path / "photos"
    # Case, digits and underscores sort as Python sorts strings ("10" before "2", "B" before "a").
    for c, name in enumerate(("b", "B", "a", "10", "2", "_x")):
        for i, ext in enumerate((".png", ".JPG", ".jpeg", ".ppm", ".bmp", ".pgm", ".tif", ".webp")[c : c + 3]):
            write_image(root / name / f"f{i}{ext}", SIZES[(c + i) % len(SIZES)], seed=10 * c + i)
    write_image(root / "a" / "nested" / "deeper" / "z.png", (50, 20), seed=99)  # subfolders count, as in ImageFolder
    (root / "a" / "notes.txt").write_text("not an image")  # skipped: unknown extension
    (root / "b" / "labels.csv").write_text("x,y")
    (root / ".DS_Store").write_bytes(b"\0\1")
    (root / "b" / ".DS_Store").write_bytes(b"\0\1")

    size = 24
    ds = load_folder(data_dir=root, size=size, progress=False)
    tv = ImageFolder(str(root), transform=transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size)]))
    assert ds.info["class_names"] == tv.classes == ["10", "2", "B", "_x", "a", "b"]
    assert list(zip(ds.train.sources.tolist(), ds.train.labels.tolist(), strict=True)) == tv.samples
    for i in range(len(tv)):
        image, label = tv[i]
        assert ds.train.labels[i] == label
        assert np.array_equal(ds.train.images[i], np.asarray(image)), tv.samples[i][0]
    assert ds.train.images.shape == (len(tv), size, size, 3) and ds.train.images.dtype == np.uint8
    assert (ds.train.tracks == -1).all() and (ds.train.boxes == [0, 0, size, size]).all()


def test_split_layout_uses_trains_classes_everywhere(tmp_path: Path) -> None:
    from torchvision.datasets import ImageFolder

    write_classes(tmp_path / "train", {"cat": 2, "dog": 2, "emu": 2})
    write_classes(tmp_path / "test", {"cat": 1, "emu": 2})  # no dog folder: fine, emu keeps label 2
    ds = load_folder(data_dir=tmp_path, size=16, progress=False)
    assert ds.info["class_names"] == ImageFolder(str(tmp_path / "train")).classes == ["cat", "dog", "emu"]
    assert ds.test.labels.tolist() == [0, 2, 2]  # ImageFolder(test/) alone would call emu 1
    assert ds.info["test"] == {"images": 3, "available": 3, "classes": 2, "per_class": [1, 0, 2]}


# --- layouts ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folders", "layout", "test_from"),
    [
        (("train", "test"), "train/test", "test"),
        (("train", "val", "test"), "train/val/test", "test"),
        (("Train", "Val"), "train/val", "Val"),
        ((), "bare", "."),
    ],
)
def test_every_layout(tmp_path: Path, folders: tuple[str, ...], layout: str, test_from: str) -> None:
    counts = {"a": 2, "b": 3}
    for i, folder in enumerate(folders):
        write_classes(tmp_path / folder, counts, seed=i)
    if not folders:
        write_classes(tmp_path, counts)
    ds = load_folder(data_dir=tmp_path, size=12, progress=False)
    assert ds.info["layout"] == layout and ds.info["splits"]["test"] == test_from
    assert ds.info["class_names"] == ["a", "b"]
    assert len(ds.train) == len(ds.test) == 5 and ds.train.labels.tolist() == [0, 0, 1, 1, 1]
    has_val = any(f.lower() == "val" for f in folders)
    assert (ds.val is not None) == has_val and ("val" in ds.info) == has_val
    if has_val:
        assert select_split(ds, "val") is ds.val and Path(ds.val.sources[0]).parts[-3].lower() == "val"
    else:
        with pytest.raises(KlugerhansError, match=rf"^{tmp_path} has no val split: use one of train, test$"):
            select_split(ds, "val")
    assert select_split(ds, "train") is ds.train and select_split(ds, "test") is ds.test
    if layout in ("bare", "train/val"):
        assert ds.test is (ds.train if layout == "bare" else ds.val)  # one split, decoded once


@pytest.mark.parametrize("lazy", [False, True])
def test_a_folder_with_only_train_reads_that_split_and_names_it_for_others(tmp_path: Path, lazy: bool) -> None:
    write_classes(tmp_path / "train", {"a": 2, "b": 1})
    ds = load_folder(data_dir=tmp_path, size=12, lazy=lazy, progress=False)
    assert ds.info["layout"] == "train" and ds.info["splits"] == {"train": "train"} and "test" not in ds.info
    assert select_split(ds, "train") is ds.train and ds.train.labels.tolist() == [0, 0, 1]
    assert len(ds.test) == 0 and ds.val is None
    for split in ("test", "val"):
        what = "no val split" if split == "val" else "no split 'test'"
        with pytest.raises(KlugerhansError, match=rf"^{tmp_path} has {what}: use one of train$"):
            select_split(ds, split)


def test_select_split_on_datasets_without_val() -> None:
    data = load_dataset("synthetic", max_images=4).train
    ds = SignDataset(data, data, {"name": "synthetic"})  # positional, as before `val` existed
    assert ds.val is None and select_split(ds, "test") is data
    with pytest.raises(KlugerhansError, match=r"^synthetic has no split 'dev': use one of train, test$"):
        select_split(ds, "dev")


def test_hidden_entries_are_ignored(tmp_path: Path) -> None:
    write_classes(tmp_path, {"a": 1, "b": 1})
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "x-checkpoint.ipynb").write_text("{}")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "a" / "._img0.png").write_bytes(b"AppleDouble, not a PNG")  # macOS resource fork
    write_image(tmp_path / "a" / ".thumbs" / "t.png")
    ds = load_folder(data_dir=tmp_path, size=8, progress=False)
    assert ds.info["class_names"] == ["a", "b"] and [Path(s).name for s in ds.train.sources] == ["img0.png"] * 2


# --- sizes, max_images, seed -----------------------------------------------------------------------------------


def test_any_size_from_8_for_folder_only(tmp_path: Path) -> None:
    write_classes(tmp_path, {"a": 1})
    assert load_dataset("folder", data_dir=str(tmp_path), size=20).train.images.shape == (1, 20, 20, 3)
    with pytest.raises(KlugerhansError, match=r"^image size 7 is too small") as err:
        load_dataset("folder", data_dir=str(tmp_path), size=7)
    _one_line(err)
    with pytest.raises(KlugerhansError, match=r"^unsupported image size 20: use 32, 48 or 64$"):
        load_dataset("synthetic", size=20)


def test_max_images_is_take_balanced_of_the_full_split(tmp_path: Path) -> None:
    write_classes(tmp_path / "train", {"a": 5, "b": 2, "c": 4})
    write_classes(tmp_path / "test", {"a": 3, "b": 3, "c": 3})
    full = load_folder(data_dir=tmp_path, size=8, progress=False)
    for seed in (0, 1):
        sub = load_dataset("folder", data_dir=str(tmp_path), size=8, max_images=5, seed=seed)
        for split in ("train", "test"):
            want = take_balanced(select_split(full, split), 5, seed)
            got = select_split(sub, split)
            assert got.sources.tolist() == want.sources.tolist() and np.array_equal(got.images, want.images)
            assert set(got.labels.tolist()) == {0, 1, 2}
        assert sub.info["train"]["images"] == 5 and sub.info["train"]["available"] == 11
    a = load_folder(data_dir=tmp_path, size=8, max_images=4, seed=0, progress=False).train.sources.tolist()
    b = load_folder(data_dir=tmp_path, size=8, max_images=4, seed=1, progress=False).train.sources.tolist()
    assert a != b


# --- bad input: one line each ------------------------------------------------------------------------------------


def _bad_trees(root: Path) -> dict[str, tuple[Path | None, str]]:
    """Name -> (data_dir, the message's pattern); writes each tree under ``root``."""
    cases: dict[str, tuple[Path | None, str]] = {"none": (None, "needs its images: give --data-dir")}
    cases["missing"] = (root / "nowhere", "nowhere: no such folder")
    write_image(root / "file.png")
    cases["file"] = (root / "file.png", "file.png: is a file, not a folder")
    (root / "empty").mkdir()
    cases["no classes"] = (root / "empty", "empty: no class folders; expected")
    write_image(root / "loose" / "a.png")
    write_image(root / "loose" / "b.jpg")
    cases["loose images"] = (root / "loose", "it holds 2 images directly")
    write_classes(root / "hollow", {"a": 1, "b": 0, "c": 0})
    (root / "hollow" / "b").mkdir()
    (root / "hollow" / "c").mkdir()
    (root / "hollow" / "c" / "readme.txt").write_text("x")
    cases["empty classes"] = (root / "hollow", r"no images in the class folder\(s\) b, c \(read: .jpg")
    write_classes(root / "broken", {"a": 1})
    (root / "broken" / "a" / "bad.png").write_bytes(b"this is not a png")
    cases["undecodable"] = (root / "broken", r"broken/a/bad\.png: not an image")
    write_classes(root / "unknown" / "train", {"a": 1})
    write_classes(root / "unknown" / "test", {"a": 1, "zebra": 1})
    cases["class not in train"] = (root / "unknown", r"test: class folder\(s\) zebra not in train/")
    write_classes(root / "mixed" / "train", {"a": 1})
    write_classes(root / "mixed" / "test", {"a": 1})
    write_classes(root / "mixed" / "valid", {"a": 1})
    cases["mixed"] = (root / "mixed", r"mixes split folders \(test, train\) with other folders \(valid\).*to val/$")
    write_classes(root / "testonly" / "test", {"a": 1})
    cases["no train"] = (root / "testonly", "has test/ but no train/ folder.*point --data-dir at .*testonly/test")
    write_classes(root / "twice" / "train", {"a": 1})
    write_classes(root / "twice" / "Train", {"a": 1})
    cases["split twice"] = (root / "twice", "has both Train/ and train/")
    write_classes(root / "hiddenclass", {"a": 1})
    write_image(root / "hiddenclass" / ".secret" / "x.png")
    cases["hidden class with images"] = (root / "hiddenclass", r"\.secret: a hidden folder with images")
    write_classes(root / "emptytest" / "train", {"a": 1, "b": 1})
    (root / "emptytest" / "test" / "b").mkdir(parents=True)
    write_image(root / "emptytest" / "test" / "a" / "x.png")
    cases["empty test class"] = (root / "emptytest", r"emptytest/test: no images in the class folder\(s\) b ")
    write_classes(root / "flattest" / "train", {"a": 1})
    write_image(root / "flattest" / "test" / "x.png")
    cases["flat test"] = (root / "flattest", "flattest/test: no class folders")
    return cases


def test_bad_input_is_a_one_line_data_error(tmp_path: Path) -> None:
    for name, (data_dir, pattern) in _bad_trees(tmp_path).items():
        with pytest.raises(DataError, match=pattern) as err:
            load_dataset("folder", data_dir=None if data_dir is None else str(data_dir), size=8)
        assert err.value.exit_code != 0, name
        _one_line(err)


# --- the streamed reader --------------------------------------------------------------------------------------------


def test_lazy_images_equal_the_decoded_ones(tmp_path: Path) -> None:
    write_classes(tmp_path / "train", {"a": 3, "b": 4}, ext=".jpg")
    write_classes(tmp_path / "val", {"a": 2, "b": 1})
    eager = load_folder(data_dir=tmp_path, size=16, progress=False)
    lazy = load_folder(data_dir=tmp_path, size=16, lazy=True)
    assert lazy.info["lazy"] and is_lazy(lazy.train) and not is_lazy(eager.train)
    images = lazy.train.images
    assert isinstance(images, LazyImages) and images.shape == (7, 16, 16, 3) and images.dtype == np.uint8
    assert len(lazy.train) == 7 and lazy.train.size == 16 and repr(images) == "LazyImages(7 files, 16 px)"
    want = eager.train.images
    assert np.array_equal(np.asarray(images), want)
    assert np.array_equal(images[2], want[2]) and np.array_equal(images[-1], want[-1])
    assert np.array_equal(images[1:5], want[1:5]) and np.array_equal(images[[4, 0]], want[[4, 0]])
    mask = eager.train.labels == 1
    assert np.array_equal(images[mask], want[mask]) and np.array_equal(images[[1, 3], :, 2, 0], want[[1, 3], :, 2, 0])
    assert np.array_equal(images.take(slice(2, 4))[:], want[2:4])
    with pytest.raises(IndexError):
        images[7]
    batches = list(iter_batches(lazy.train, 3))
    assert [len(b) for b in batches] == [3, 3, 1] and all(isinstance(b.images, np.ndarray) for b in batches)
    assert np.array_equal(np.concatenate([b.images for b in batches]), want)
    assert np.concatenate([b.sources for b in batches]).tolist() == eager.train.sources.tolist()
    # take_balanced decodes only the rows it keeps
    sub = take_balanced(lazy.train, 3, seed=0)
    assert np.array_equal(sub.images, take_balanced(eager.train, 3, seed=0).images)
    assert lazy.val is lazy.test and np.array_equal(np.asarray(lazy.test.images), eager.test.images)


def test_lazy_images_report_a_bad_file_when_read(tmp_path: Path) -> None:
    write_classes(tmp_path, {"a": 2})
    (tmp_path / "a" / "img1.png").write_bytes(b"")
    ds = load_folder(data_dir=tmp_path, size=8, lazy=True)  # nothing decoded yet
    assert ds.train.images[0].shape == (8, 8, 3)
    with pytest.raises(DataError, match=r"img1\.png: the file is empty") as err:
        ds.train.images[0:2]
    _one_line(err)
    with pytest.raises(KlugerhansError, match="batch size must be at least 1"):
        next(iter_batches(ds.train, 0))


def _peak_bytes(run: Callable[[], object]) -> int:
    """Peak bytes allocated (NumPy buffers included) while ``run`` runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streamed_memory_stays_flat_while_loading_all_grows(tmp_path: Path) -> None:
    # 2,000 small files; at 48 px the whole split is 13.8 MB decoded, one batch of 50 is 0.35 MB.
    pixels = np.random.default_rng(0).integers(0, 256, (20, 26, 3), dtype=np.uint8)
    for i in range(2000):
        folder = tmp_path / f"c{i % 4}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(np.roll(pixels, i, axis=1)).save(folder / f"{i:04d}.png", compress_level=0)
    size, batch = 48, 50
    lazy = load_folder(data_dir=tmp_path, size=size, lazy=True).train
    small = lazy_sign_data(lazy.sources[:500], lazy.labels[:500], size)  # a quarter of the files, still lazy

    def stream(data: SignData) -> None:
        for b in iter_batches(data, batch):
            assert b.images.shape[1:] == (size, size, 3)

    stream(lazy.subset(slice(0, 2)))  # first reads import Pillow's plugins: not part of the measurement
    peak_500 = _peak_bytes(lambda: stream(small))
    peak_2000 = _peak_bytes(lambda: stream(lazy))
    peak_all = _peak_bytes(lambda: np.asarray(lazy.images))
    full = 2000 * size * size * 3
    assert peak_all >= full
    assert peak_2000 < 4 * batch * size * size * 3 and peak_2000 < full / 8, (peak_2000, full)
    assert peak_2000 < 1.25 * peak_500 + 64 * 1024  # 4x the images, the same peak
