import io

import numpy as np
import pytest
from PIL import Image
from web_payloads import bomb_png

from klugerhans.data.images import resize_center_crop, resize_square
from klugerhans.data.sticker import paint_sticker
from klugerhans.data.synthetic.loader import RENDER_SIZES, render_sign
from klugerhans.errors import ImageError, KlugerhansError
from klugerhans.web.state import MAX_SIZES, MAX_STICKERS, Scene, Sticker, example_scene, upload_scene


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "kwargs", [{"x": 1.5}, {"y": -0.1}, {"image_share": 0.0}, {"shape": "star"}, {"color": (0, 0, 999)}]
)
def test_bad_sticker_is_a_one_line_error(kwargs):
    args = {"x": 0.5, "y": 0.5, "image_share": 0.2} | kwargs
    with pytest.raises(KlugerhansError) as err:
        Sticker(**args)
    assert "\n" not in str(err.value)


def test_upload_is_resized_like_its_models_training_and_stickers_land_on_the_same_spot_at_every_size():
    photo = np.random.default_rng(0).integers(40, 255, size=(90, 70, 3), dtype=np.uint8)
    scene = upload_scene(_png(photo), "sign.png")
    assert scene.title == "upload: sign.png"
    assert np.array_equal(scene.image(32), resize_square(Image.fromarray(photo), 32))
    # a torchvision or timm model gets torchvision's evaluation crop, at whatever size it takes
    assert np.array_equal(scene.image(224, "center_crop"), resize_center_crop(Image.fromarray(photo), 224))

    sticker = Sticker(0.25, 0.75, 0.25, (255, 0, 0), "square")
    stickered = scene.with_sticker(sticker)
    for size in (32, 64, 224):
        image, mask = stickered.render(size)
        expected, expected_mask = paint_sticker(scene.image(size), 0.25 * size, 0.75 * size, size // 4, (255, 0, 0))
        assert np.array_equal(image, expected) and np.array_equal(mask, expected_mask)
        assert mask.sum() == (size // 4) ** 2
    assert np.array_equal(stickered.without_stickers().render(32)[0], scene.image(32))
    assert scene.stickers == ()  # scenes are immutable


def test_masks_of_several_stickers_are_united_and_capped():
    scene = example_scene(2, seed=1)
    for i in range(MAX_STICKERS + 3):
        scene = scene.with_sticker(Sticker((i % 5) / 5 + 0.1, 0.5, 0.1))
    assert len(scene.stickers) == MAX_STICKERS
    image, mask = scene.render(32)
    assert mask.any() and np.all(image[mask] == 0)


def test_examples_are_deterministic_synthetic_signs_at_any_size():
    a, b, c = example_scene(14, 0), example_scene(14, 0), example_scene(14, 1)
    assert np.array_equal(a.image(48), b.image(48))
    assert not np.array_equal(a.image(48), c.image(48))
    assert a.image(32).shape == (32, 32, 3) and a.image(32).dtype == np.uint8
    assert np.array_equal(a.image(224), render_sign(14, 224, np.random.default_rng([0, 14]))[0])
    # beyond the renderer's largest size: its largest, resized as the model's preprocessing resizes
    largest = render_sign(14, RENDER_SIZES[1], np.random.default_rng([0, 14]))[0]
    big = RENDER_SIZES[1] + 6
    assert np.array_equal(a.image(big), resize_square(Image.fromarray(largest), big))
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


def test_each_size_is_drawn_once_and_only_a_few_are_kept():
    drawn = []

    def draw(size, resize):
        drawn.append((size, resize))
        return np.full((size, size, 3), size % 256, np.uint8)

    scene = Scene(draw, "x")
    for size in (32, 224, 32):
        assert scene.with_sticker(Sticker(0.5, 0.5, 0.2)).render(size)[0].shape == (size, size, 3)
    assert drawn == [(32, "square"), (224, "square")]  # copies with stickers share what was drawn
    for size in range(100, 100 + MAX_SIZES - 1):
        scene.image(size)
    assert len(scene._drawn) == MAX_SIZES  # the least recently used size went: 224, not 32
    assert (32, "square") in scene._drawn and (224, "square") not in scene._drawn
    with pytest.raises(KlugerhansError, match="at least 1"):
        scene.render(0)


def test_missing_gradio_is_a_one_line_error_with_the_install_command(monkeypatch):
    import sys

    import klugerhans.web as web_package

    monkeypatch.setitem(sys.modules, "gradio", None)  # what Python does for a module that is not installed
    monkeypatch.delitem(sys.modules, "klugerhans.web.app", raising=False)
    monkeypatch.delattr(web_package, "app", raising=False)
    with pytest.raises(KlugerhansError, match=r"pip install 'klugerhans\[web\]'"):
        _ = web_package.serve
