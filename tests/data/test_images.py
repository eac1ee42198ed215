import io

import numpy as np
import pytest
from PIL import Image

from klugerhans.data.images import decode_image, read_image, resize_square
from klugerhans.errors import ImageError


def _png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "RGB", "I;16", "CMYK"])
def test_any_mode_becomes_rgb(mode):
    img = Image.new(mode, (20, 10))
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    out = decode_image(_png(img, fmt))
    assert out.mode == "RGB" and out.size == (20, 10)


def test_exif_rotation_is_applied():
    img = Image.new("RGB", (20, 10), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    out = decode_image(_png(img, "JPEG", exif=exif))
    assert out.size == (10, 20)


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b"hello, I am text", "not an image"), (_png(Image.new("RGB", (40, 40)))[:60], "truncated")],
)
def test_bad_bytes_are_one_line_errors(data, message):
    with pytest.raises(ImageError, match=message) as err:
        decode_image(data, "x.png")
    assert "\n" not in str(err.value)


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (12_000, 9_000)).save(path)  # 108 megapixels, a few kB on disk
    with pytest.raises(ImageError, match="too large"):
        read_image(path)


def test_missing_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "nope.ppm")
    with pytest.raises(ImageError, match="directory"):
        read_image(tmp_path)


def test_resize_square_crops_then_resizes():
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, 20:] = 255
    out = resize_square(Image.fromarray(arr), 8, box=(20, 0, 40, 20))
    assert out.shape == (8, 8, 3) and out[:, 1:].min() == 255 and out.mean() > 250
    assert resize_square(Image.fromarray(arr), 16).shape == (16, 16, 3)


@pytest.mark.parametrize(
    ("h", "w", "size", "resize"),
    [
        (300, 200, 224, 256),
        (40, 90, 32, None),
        (64, 64, 64, None),
        # torchvision truncates the long side and rounds the crop offset half to even: 41 * 16 / 23 = 28.52 -> 28
        # (not 29); 57 * 24 / 23 = 59.48 -> 59, offset round(17.5) = 18 (not 17); it resizes without reducing_gap
        (23, 41, 16, None),
        (23, 57, 24, None),
        (57, 23, 24, None),
        (480, 333, 31, None),
        (99, 640, 224, None),
    ],
)
def test_resize_center_crop_equals_torchvision_eval_transform(h, w, size, resize):
    from PIL import Image
    from torchvision import transforms

    from klugerhans.data.images import resize_center_crop

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    want = transforms.Compose([transforms.Resize(resize or size), transforms.CenterCrop(size)])(img)
    got = resize_center_crop(img, size, resize)
    assert got.shape == (size, size, 3) and np.array_equal(got, np.asarray(want))
