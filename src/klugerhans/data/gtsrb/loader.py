"""Real GTSRB: find the user's copy, crop every sign around its ROI once, and serve it from the cache.

The German Traffic Sign Recognition Benchmark (Stallkamp et al., Neural Networks 2012) ships each image with
its sign box (ROI) in a CSV. Each image is cropped to that box plus a margin and resized to S x S with
:func:`klugerhans.data.images.resize_square`; ``SignData.boxes`` records where the ROI ended up, so stickers
land on the sign. Some copies (like the shared one) store downscaled files but keep the CSV's original sizes
and ROIs, so the ROI is scaled by file size / CSV size first instead of being applied blindly.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from klugerhans.data.dataset import SignData, SignDataset, register_dataset, take_balanced
from klugerhans.data.gtsrb.annotations import Annotation
from klugerhans.data.gtsrb.cache import cache_root, fingerprint, prune_entries, read_entry, write_entry
from klugerhans.data.gtsrb.download import download_gtsrb
from klugerhans.data.gtsrb.layouts import TRAIN_ZIP, Container, Layout, find_layout, open_container
from klugerhans.data.images import decode_image, resize_square
from klugerhans.errors import DataError, ImageError, KlugerhansError

DATA_ENV = "KLUGERHANS_GTSRB_DIR"
"""Environment variable naming the GTSRB folder when no ``data_dir`` is given."""
DEFAULT_MARGIN = 0.1
"""Context kept around the ROI on each side, as a fraction of the ROI's width/height."""
SPLITS = ("train", "test")
_PARALLEL_MIN = 2000  # below this, starting worker processes costs more than it saves
_PROGRESS_MIN = 500
_Item = tuple[str, int, int, tuple[int, int, int, int]]  # member, CSV width, CSV height, ROI

Box = tuple[float, float, float, float]


def sign_geometry(
    roi: tuple[int, int, int, int],
    csv_size: tuple[int, int],
    file_size: tuple[int, int],
    margin: float,
    size: int,
) -> tuple[Box, Box]:
    """Where to crop a sign and where its ROI lands in the S x S result.

    Args:
        roi: ``(x0, y0, x1, y1)`` from the CSV, in pixels of an image of ``csv_size``; x1/y1 exclusive.
        csv_size: ``(width, height)`` the CSV states.
        file_size: ``(width, height)`` of the decoded file; the ROI is scaled by file_size / csv_size.
        margin: context added on each side, as a fraction of the ROI's width (x) and height (y).
        size: output side S.

    Returns:
        ``(crop, box)``: the crop in file pixels (clipped to the image) and the ROI in output pixels.
    """
    (w, h), (csv_w, csv_h) = file_size, csv_size
    sx, sy = w / csv_w, h / csv_h
    x0, y0, x1, y1 = roi[0] * sx, roi[1] * sy, roi[2] * sx, roi[3] * sy
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    cx0, cy0, cx1, cy1 = max(0.0, x0 - mx), max(0.0, y0 - my), min(float(w), x1 + mx), min(float(h), y1 + my)
    # A sub-pixel crop cannot be resized; fall back to the whole axis (the box below stays consistent).
    if cx1 - cx0 < 1:
        cx0, cx1 = 0.0, float(w)
    if cy1 - cy0 < 1:
        cy0, cy1 = 0.0, float(h)
    kx, ky = size / (cx1 - cx0), size / (cy1 - cy0)
    bx0, by0, bx1, by1 = ((x0 - cx0) * kx, (y0 - cy0) * ky, (x1 - cx0) * kx, (y1 - cy0) * ky)
    box = (max(0.0, bx0), max(0.0, by0), min(float(size), bx1), min(float(size), by1))
    return (cx0, cy0, cx1, cy1), box


def gtsrb_dir(data_dir: str | os.PathLike[str] | None = None, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder to look for GTSRB in: ``data_dir``, else ``$KLUGERHANS_GTSRB_DIR``, else the download folder."""
    if data_dir is not None:
        path = Path(os.path.abspath(Path(data_dir).expanduser()))
        # Accept the path of one of the archives, too.
        return path.parent if path.is_file() else path
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(os.path.abspath(Path(env).expanduser()))
    return Path(os.path.abspath(cache_root(cache_dir) / "downloads" / "gtsrb"))


@register_dataset("gtsrb", title="GTSRB")
def load_gtsrb(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    size: int = 32,
    download: bool = False,
    max_images: int | None = None,
    seed: int = 0,
    margin: float = DEFAULT_MARGIN,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> SignDataset:
    """Load real GTSRB (official training split, official test images with ground truth) from any known layout.

    The first load decodes every image (a few seconds for the 39,209 training images) into the cache; later
    loads read the cache until the source files change.

    Args:
        data_dir: folder with the data (see :mod:`klugerhans.data.gtsrb.layouts`); default :func:`gtsrb_dir`.
        size: side S of the (N, S, S, 3) uint8 images.
        download: fetch the official archives into the folder if no data is found there.
        max_images: keep a class-balanced subset of at most this many images per split.
        seed: seed of that subset.
        margin: context kept around the ROI on each side, as a fraction of the ROI size.
        cache_dir: cache folder; default ``$KLUGERHANS_CACHE_DIR`` or the per-user cache dir.
        workers: decoding processes; default the available cores (at most 8).
        progress: show a progress bar on stderr while decoding or downloading.

    Returns:
        A :class:`SignDataset` whose ``info`` (JSON-serialisable, for ``klugerhans data``) holds ``name``,
        ``layout``, ``root``, ``image_size``, ``margin``, ``cache_path``, ``cache_state`` ("hit" or "built")
        and per split (``info["train"]``, ``info["test"]``): ``images`` (returned), ``available`` (in the
        source), ``classes``, ``csv_width``/``csv_height`` and ``file_width``/``file_height`` as [min, max],
        and ``roi``: "cropped" (CSV sizes match the files), "scaled" (they never do) or "mixed".

    Raises:
        DataError: no data in the folder, or missing or malformed files (one-line message).
    """
    if size < 8:
        raise KlugerhansError(f"image size {size} is too small: use 32, 48 or 64")
    if not 0.0 <= margin <= 1.0:
        raise KlugerhansError(f"ROI margin must be in [0, 1] (a fraction of the sign size), got {margin}")
    root = gtsrb_dir(data_dir, cache_dir)
    try:
        layout = find_layout(root)
    except DataError:
        # A partial copy (say, the test archives missing): --download fetches what is not there yet.
        if not download:
            raise
        layout = None
    if layout is None and download:
        download_gtsrb(root, progress=progress)
        layout = find_layout(root)
    if layout is None:
        raise DataError(
            f"no GTSRB data in {root}: expected {TRAIN_ZIP}, gtsrb/GTSRB/Training or Train.csv; "
            "pass --data-dir or --download"
        )
    source_id = hashlib.sha256(str(layout.root.resolve()).encode()).hexdigest()[:8]
    prefix = f"gtsrb-{layout.name}-{size}px-m{margin:g}-{source_id}-"
    key = prefix + fingerprint(layout.watched(), layout.name, size, margin)
    parent = cache_root(cache_dir) / "datasets"
    folder = parent / key
    entry = read_entry(folder, key)
    state = "hit"
    if entry is None:
        entry = _build(layout, size, margin, workers, progress)
        write_entry(folder, key, *entry)
        prune_entries(parent, prefix, keep=folder)
        state = "built"
    splits, meta = entry
    chosen = {split: take_balanced(splits[split], max_images, seed) for split in SPLITS}
    info: dict[str, Any] = {
        "name": "gtsrb",
        "layout": layout.name,
        "root": str(layout.root),
        "image_size": size,
        "margin": margin,
        "cache_path": str(folder),
        "cache_state": state,
    }
    for split in SPLITS:
        info[split] = {**meta["splits"][split], "images": len(chosen[split]), "available": len(splits[split])}
    return SignDataset(train=chosen["train"], test=chosen["test"], info=info)


def _build(
    layout: Layout, size: int, margin: float, workers: int | None, progress: bool
) -> tuple[dict[str, SignData], dict[str, Any]]:
    """Parse and decode both splits; returns the splits and their metadata for the cache."""
    splits: dict[str, SignData] = {}
    stats: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        container, annotations = layout.read_annotations(split)
        if not annotations:
            raise DataError(f"{container}: no {split} images listed in the CSVs; expected the GTSRB {split} split")
        images, boxes, file_sizes = _decode(container, layout.root, annotations, size, margin, workers, progress, split)
        csv_sizes = np.array([(a.width, a.height) for a in annotations], dtype=np.int64)
        splits[split] = SignData(
            images=images,
            labels=np.array([a.label for a in annotations], dtype=np.int64),
            tracks=np.array([a.track for a in annotations], dtype=np.int64),
            boxes=boxes,
            sources=np.array([a.source for a in annotations]),
        )
        same = (csv_sizes == file_sizes).all(axis=1)
        stats[split] = {
            "classes": len(np.unique(splits[split].labels)),
            "csv_width": _range(csv_sizes[:, 0]),
            "csv_height": _range(csv_sizes[:, 1]),
            "file_width": _range(file_sizes[:, 0]),
            "file_height": _range(file_sizes[:, 1]),
            "roi": "cropped" if same.all() else "scaled" if not same.any() else "mixed",
        }
    meta = {"layout": layout.name, "root": str(layout.root), "size": size, "margin": margin, "splits": stats}
    return splits, meta


def _range(values: np.ndarray) -> list[int]:
    return [int(values.min()), int(values.max())]


def _decode(
    container: Path,
    root: Path,
    annotations: list[Annotation],
    size: int,
    margin: float,
    workers: int | None,
    progress: bool,
    split: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode and crop all images of one split, in worker processes when there are many.

    Returns:
        (N, S, S, 3) uint8 images, (N, 4) float32 boxes, (N, 2) int64 decoded file sizes (width, height).
    """
    from tqdm import tqdm

    items: list[_Item] = [(a.member, a.width, a.height, a.roi) for a in annotations]
    n = len(items)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    boxes = np.empty((n, 4), dtype=np.float32)
    file_sizes = np.empty((n, 2), dtype=np.int64)
    workers = workers or min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    # Fork only: spawn would re-import the caller's script in each worker, which breaks unguarded scripts.
    parallel = workers > 1 and n >= _PARALLEL_MIN and sys.platform.startswith("linux")
    chunk = max(250, -(-n // (workers * 8))) if parallel else 500
    starts = range(0, n, chunk)
    bar_args = {"total": n, "desc": f"decoding GTSRB {split}", "unit": "img", "file": sys.stderr, "leave": False}

    def store(start: int, result: tuple[np.ndarray, np.ndarray, np.ndarray]) -> int:
        end = start + len(result[0])
        images[start:end], boxes[start:end], file_sizes[start:end] = result
        return end - start

    if parallel:
        # Load Pillow's format plugins before forking, so workers do not import while the parent may hold locks.
        Image.preinit()
        pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("fork"), initializer=_ignore_interrupts
        )
        try:
            futures = {
                pool.submit(_decode_chunk, str(container), str(root), items[s : s + chunk], size, margin): s
                for s in starts
            }
            # The bar (and its monitor thread) starts after the workers were forked.
            with tqdm(disable=not progress, **bar_args) as bar:
                for future in as_completed(futures):
                    bar.update(store(futures[future], future.result()))
            return images, boxes, file_sizes
        except BrokenProcessPool:
            warnings.warn("GTSRB decoding workers died (out of memory?); decoding in one process", stacklevel=2)
        finally:
            # After a bad file or Ctrl-C, drop the queued chunks instead of decoding them all first.
            pool.shutdown(wait=True, cancel_futures=True)
    with (
        open_container(container, root) as box,
        tqdm(disable=not progress or n < _PROGRESS_MIN, **bar_args) as bar,
    ):
        for s in starts:
            bar.update(store(s, _decode_items(box, items[s : s + chunk], size, margin)))
    return images, boxes, file_sizes


def _ignore_interrupts() -> None:
    # Ctrl-C reaches every process of the terminal's group; the parent stops the pool, workers would only
    # print their own KeyboardInterrupt tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


_OPEN: dict[tuple[int, str], Container] = {}
"""Containers opened by worker processes, by (pid, path): a zip's central directory is read once per worker."""


def _decode_chunk(
    container: str, root: str, items: list[_Item], size: int, margin: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Keyed by pid so a forked worker never reuses a file handle (and its shared offset) from its parent.
    key = (os.getpid(), container)
    if key not in _OPEN:
        _OPEN[key] = Container(Path(container), Path(root))
    return _decode_items(_OPEN[key], items, size, margin)


def _decode_items(
    box: Container, items: list[_Item], size: int, margin: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images = np.empty((len(items), size, size, 3), dtype=np.uint8)
    boxes = np.empty((len(items), 4), dtype=np.float32)
    file_sizes = np.empty((len(items), 2), dtype=np.int64)
    for i, (member, csv_w, csv_h, roi) in enumerate(items):
        try:
            img = decode_image(box.read(member), box.where(member))
        except ImageError as err:
            raise DataError(str(err)) from None
        crop, boxes[i] = sign_geometry(roi, (csv_w, csv_h), img.size, margin, size)
        images[i] = resize_square(img, size, crop)
        file_sizes[i] = img.size
    return images, boxes, file_sizes
