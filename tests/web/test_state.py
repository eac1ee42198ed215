import io

import numpy as np
import pytest
from PIL import Image
from web_payloads import bomb_png

from klugerhans.data.images import resize_square
from klugerhans.data.sticker import paint_sticker
from klugerhans.errors import ImageError, KlugerhansError
from klugerhans.web.state import MAX_STICKERS, Scene, Sticker, example_scene, parse_color, upload_scene


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("value", "rgb"),
    [("#000000", (0, 0, 0)), ("#FF8000", (255, 128, 0)), ("#0f0", (0, 255, 0)), ("rgba(10, 20, 30, 1)", (10, 20, 30))],
)
def test_parse_color(value, rgb):
    assert parse_color(value) == rgb


@pytest.mark.parametrize("value", ["red", "#12345", "rgb(1, 2, 300)", "#gggggg"])
def test_parse_color_rejects_garbage(value):
    with pytest.raises(KlugerhansError):
        parse_color(value)


@pytest.mark.parametrize(
    "kwargs", [{"x": 1.5}, {"y": -0.1}, {"image_share": 0.0}, {"shape": "star"}, {"color": (0, 0, 999)}]
)
def test_bad_sticker_is_a_one_line_error(kwargs):
    args = {"x": 0.5, "y": 0.5, "image_share": 0.2} | kwargs
    with pytest.raises(KlugerhansError) as err:
        Sticker(**args)
    assert "\n" not in str(err.value)


def test_upload_is_resized_like_training_and_stickers_land_on_the_same_spot_at_every_size():
    photo = np.random.default_rng(0).integers(40, 255, size=(90, 70, 3), dtype=np.uint8)
    scene = upload_scene(_png(photo), "sign.png")
    assert scene.title == "upload: sign.png" and sorted(scene.images) == [32, 48, 64]
    assert np.array_equal(scene.images[32], resize_square(Image.fromarray(photo), 32))

    sticker = Sticker(0.25, 0.75, 0.25, (255, 0, 0), "square")
    stickered = scene.with_sticker(sticker)
    for size in (32, 64):
        image, mask = stickered.render(size)
        expected, expected_mask = paint_sticker(scene.images[size], 0.25 * size, 0.75 * size, size // 4, (255, 0, 0))
        assert np.array_equal(image, expected) and np.array_equal(mask, expected_mask)
        assert mask.sum() == (size // 4) ** 2
    assert np.array_equal(stickered.without_stickers().render(32)[0], scene.images[32])
    assert scene.stickers == ()  # scenes are immutable


def test_masks_of_several_stickers_are_united_and_capped():
    scene = example_scene(2, seed=1)
    for i in range(MAX_STICKERS + 3):
        scene = scene.with_sticker(Sticker((i % 5) / 5 + 0.1, 0.5, 0.1))
    assert len(scene.stickers) == MAX_STICKERS
    image, mask = scene.render(32)
    assert mask.any() and np.all(image[mask] == 0)


def test_examples_are_deterministic_synthetic_signs():
    a, b, c = example_scene(14, 0), example_scene(14, 0), example_scene(14, 1)
    assert np.array_equal(a.images[48], b.images[48])
    assert not np.array_equal(a.images[48], c.images[48])
    assert a.images[32].shape == (32, 32, 3) and a.images[32].dtype == np.uint8
    assert "Stop" in a.title
    with pytest.raises(KlugerhansError):
        example_scene(43)


@pytest.mark.parametrize(
    ("data", "words"),
    [(b"", "empty"), (b"hello, not an image", "not an image"), (bomb_png(), "too large")],
)
def test_bad_uploads_are_one_line_image_errors(data, words):
    with pytest.raises(ImageError) as err:
        upload_scene(data, "evil.png")
    message = str(err.value)
    assert words in message and message.startswith("evil.png") and "\n" not in message


def test_render_of_unknown_size_is_an_error():
    with pytest.raises(KlugerhansError):
        Scene({32: np.zeros((32, 32, 3), np.uint8)}, "x").render(64)


def test_missing_gradio_is_a_one_line_error_with_the_install_command(monkeypatch):
    import sys

    import klugerhans.web as web_package

    monkeypatch.setitem(sys.modules, "gradio", None)  # what Python does for a module that is not installed
    monkeypatch.delitem(sys.modules, "klugerhans.web.app", raising=False)
    monkeypatch.delattr(web_package, "app", raising=False)
    with pytest.raises(KlugerhansError, match=r"pip install 'klugerhans\[web\]'"):
        _ = web_package.serve
