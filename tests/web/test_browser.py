"""The page in a real browser: Playwright for Python driving the system's Chromium, headless and offline.

Needs ``pip install playwright`` and Chromium at ``$KLUGERHANS_CHROMIUM`` or ``/usr/bin/chromium`` (Debian:
``apt-get install -y chromium``); Playwright's own browser download is not used. Skips with the reason otherwise.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from web_payloads import bomb_png

from klugerhans.data.classes import CLASS_NAMES_EN
from klugerhans.data.images import resize_center_crop, resize_square
from klugerhans.data.sticker import paint_sticker
from klugerhans.models.checkpoint import load_classifier
from klugerhans.models.user_weights import load_user_model

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install playwright")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 60_000


def _chromium() -> str:
    for candidate in (os.environ.get("KLUGERHANS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("Chromium not found: apt-get install -y chromium, or set KLUGERHANS_CHROMIUM to its executable")


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    with sync_api.sync_playwright() as pw:
        try:
            chromium = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        except sync_api.Error as err:
            pytest.skip(f"Chromium at {executable} does not start under Playwright: {str(err).splitlines()[0]}")
        try:
            yield chromium
        finally:
            chromium.close()


def _open(browser, url):
    """A fresh page on the app at ``url``, its first prediction shown; any request that leaves the server is
    blocked and recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    outside: list[str] = []

    def only_local(route):
        if route.request.url.startswith(url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(url)
    pg.wait_for_selector("#title-a:has-text('predicts')")
    yield pg
    context.close()
    assert outside == [], f"the page asked the internet for {outside}"


@pytest.fixture
def page(browser, server):
    """A fresh page on the app with the tiny checkpoint."""
    yield from _open(browser, server)


@pytest.fixture
def resnet_page(browser, resnet_server):
    """A fresh page on ``klugerhans serve --arch resnet18 --weights r18.pt --image-size 224``."""
    yield from _open(browser, resnet_server)


def _upload_and_click_the_centre(page, photo: np.ndarray, path: Path) -> str:
    """Upload ``photo`` as ``path`` and glue a sticker at the centre of the picture with a click; returns the first
    panel's predicted class once its heatmap has changed."""
    Image.fromarray(photo).save(path)
    page.set_input_files("#upload-image input[type=file]", str(path))
    page.wait_for_selector(f"#status:has-text('upload: {path.name}')")
    heatmap_before = page.locator("#heat-a img").get_attribute("src")
    page.locator("#picture img").click()
    page.wait_for_selector("#status:has-text('1 sticker')")
    page.wait_for_selector("#title-a:has-text('lies on the sticker')")
    assert page.locator("#heat-a img").get_attribute("src") != heatmap_before
    return page.locator("#label-a [data-testid='label-output-value']").inner_text().strip()


def _centre_click_labels(clf, image: np.ndarray, shown: int) -> set[str]:
    """The package's answer for ``image`` (an input of ``clf``) with a 15% sticker at the centre, for each pixel a
    click on the centre of the ``shown`` px picture may report (it may round by one)."""
    side, labels = image.shape[0], set()
    for pixel in (shown // 2 - 1, shown // 2, shown // 2 + 1):
        stickered, _ = paint_sticker(image, pixel / shown * side, pixel / shown * side, round(0.15 * side))
        probs = clf.probabilities(clf.preprocess(Image.fromarray(stickered))[None])[0]
        labels.add(clf.class_names[int(torch.argmax(probs))])
    return labels


def test_upload_click_a_sticker_and_read_the_prediction(page, tiny_checkpoint, tmp_path):
    photo = np.random.default_rng(3).integers(0, 255, size=(80, 60, 3), dtype=np.uint8)
    label = _upload_and_click_the_centre(page, photo, tmp_path / "sign.png")
    assert label in CLASS_NAMES_EN
    clf = load_classifier(tiny_checkpoint)
    assert label in _centre_click_labels(clf, resize_square(Image.fromarray(photo), 32), 384)


def test_bad_uploads_show_a_message_in_the_page(page, tmp_path):
    (tmp_path / "bomb.png").write_bytes(bomb_png())
    page.set_input_files("#upload-image input[type=file]", str(tmp_path / "bomb.png"))
    page.wait_for_selector("#status:has-text('bomb.png: the image is too large')")
    assert "predicts" in page.locator("#title-a").inner_text()  # the page still works

    (tmp_path / "big.png").write_bytes(b"\0" * 2_000_000)  # over the test server's 1 MB limit
    page.set_input_files("#upload-image input[type=file]", str(tmp_path / "big.png"))
    page.wait_for_selector("text=exceed the maximum allowed size")


def test_a_224_px_resnet_from_arch_and_weights_shows_its_prediction_and_heatmap(resnet_page, resnet_weights, tmp_path):
    page = resnet_page
    about = page.locator("#about").inner_text()
    assert "weights: r18.pt" in about and "resnet18, 224 px input, 43 classes" in about

    photo = np.random.default_rng(5).integers(0, 255, size=(150, 200, 3), dtype=np.uint8)
    label = _upload_and_click_the_centre(page, photo, tmp_path / "photo.png")
    assert "Error" not in page.locator("body").inner_text()
    # The picture and the heatmap show the 224 px input at twice its size, every input pixel a 2x2 square.
    for image in ("#picture img", "#heat-a img"):
        assert page.locator(image).evaluate("img => [img.naturalWidth, img.naturalHeight]") == [448, 448]
    heatmap_alone = page.locator("#heat-a img").get_attribute("src")
    page.locator("#heatmap-view label:has-text('over the image')").click()
    page.wait_for_function(
        "src => document.querySelector('#heat-a img')?.getAttribute('src') !== src", arg=heatmap_alone
    )
    assert "Error" not in page.locator("body").inner_text()
    # The page's answer is the package's, the photo centre-cropped to 224 px as torchvision evaluates.
    clf = load_user_model("resnet18", resnet_weights, image_size=224)
    assert label in _centre_click_labels(clf, resize_center_crop(Image.fromarray(photo), 224), 448)
