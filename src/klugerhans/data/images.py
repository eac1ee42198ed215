"""Reading user and dataset images safely, and the one resize every path shares.

Training crops, ``klugerhans explain`` and the web UI all go through :func:`resize_square`, so an image is
preprocessed exactly the same way wherever it enters.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from klugerhans.errors import ImageError

MAX_PIXELS = 100_000_000
"""Images above this many pixels are refused (decompression bombs)."""
RESAMPLE = Image.Resampling.BILINEAR


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode (L, LA, P, RGBA, CMYK, I;16, F, ...) to 8-bit RGB on a white background."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 1.0
        scale = 255.0 / (65535.0 if hi > 255 else 255.0)
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def decode_image(data: bytes, name: str = "image") -> Image.Image:
    """Decode image bytes into an upright RGB Pillow image.

    Raises:
        ImageError: empty, truncated, not an image, or larger than :data:`MAX_PIXELS`.
    """
    if not data:
        raise ImageError(f"{name}: the file is empty; give a PPM, PNG or JPEG image")
    try:
        with warnings.catch_warnings():
            # Pillow warns about damaged metadata (EXIF, TIFF tags) it skips; damaged pixels raise below instead.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"{name}: {w}x{h} pixels is too large (limit {MAX_PIXELS:,}); resize it first")
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return _to_rgb(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: the image is too large (limit {MAX_PIXELS:,} pixels); resize it first") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read; give a PPM, PNG or JPEG file") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageError(f"{name}: cannot decode the image ({err}); the file is damaged or truncated") from None


def read_image(path: str | os.PathLike[str]) -> Image.Image:
    """Read an image file into an upright RGB Pillow image, with one-line errors for every bad input."""
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise ImageError(f"{p}: is a directory, expected an image file")
    if not p.is_file():  # a named pipe or device would block or never end
        raise ImageError(f"{p}: not a regular file; give an image file")
    try:
        data = p.read_bytes()
    except OSError as err:
        raise ImageError(f"{p}: cannot read the file ({err.strerror})") from None
    return decode_image(data, str(p))


def resize_square(img: Image.Image, size: int, box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Crop ``img`` to ``box`` (if given) and resize to a (size, size, 3) uint8 array.

    Args:
        img: RGB image.
        size: output side in pixels.
        box: optional crop ``(x0, y0, x1, y1)`` in pixels of ``img``, clipped to the image.
    """
    if box is not None:
        w, h = img.size
        x0, y0, x1, y1 = box
        x0, y0 = max(0.0, x0), max(0.0, y0)
        x1, y1 = min(float(w), x1), min(float(h), y1)
        if x1 - x0 >= 1 and y1 - y0 >= 1:
            img = img.resize((size, size), RESAMPLE, box=(x0, y0, x1, y1), reducing_gap=3.0)
            return np.asarray(img, dtype=np.uint8)
    if img.size != (size, size):
        img = img.resize((size, size), RESAMPLE, reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8)


def resize_center_crop(img: Image.Image, size: int, resize: int | None = None) -> np.ndarray:
    """Resize the short side, then take the centre square: torchvision's evaluation transform for photos.

    ``Resize(resize)`` + ``CenterCrop(size)`` as ImageNet classifiers are evaluated, pixel for pixel on PIL
    images: the long side is truncated (``int(resize * long / short)``), the crop offsets rounded
    (``round((side - size) / 2)``) and Pillow resamples without ``reducing_gap``. ``resize`` defaults to
    ``size`` (no border lost beyond the long side's excess); below ``size`` the image is resized to ``size``
    instead of padded. Returns a (size, size, 3) uint8 array.
    """
    if size < 1:
        raise ImageError(f"image size must be at least 1 pixel, got {size}")
    short = resize or size
    w, h = img.size
    new_w, new_h = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    new_w, new_h = max(size, new_w), max(size, new_h)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), RESAMPLE)
    left, top = round((new_w - size) / 2.0), round((new_h - size) / 2.0)
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)
