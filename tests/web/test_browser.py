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
from klugerhans.data.images import resize_square
from klugerhans.data.sticker import paint_sticker
from klugerhans.models.checkpoint import load_classifier

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


@pytest.fixture
def page(browser, server):
    """A fresh page on the app; any request that leaves the server is blocked and recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    outside: list[str] = []

    def only_local(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(server)
    pg.wait_for_selector("#title-a:has-text('predicts')")
    yield pg
    context.close()
    assert outside == [], f"the page asked the internet for {outside}"


def test_upload_click_a_sticker_and_read_the_prediction(page, tiny_checkpoint, tmp_path):
    photo = np.random.default_rng(3).integers(0, 255, size=(80, 60, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "sign.png")
    page.set_input_files("#upload-image input[type=file]", str(tmp_path / "sign.png"))
    page.wait_for_selector("#status:has-text('upload: sign.png')")
    heatmap_before = page.locator("#heat-a img").get_attribute("src")

    page.locator("#picture img").click()  # the centre of the picture
    page.wait_for_selector("#status:has-text('1 sticker')")
    page.wait_for_selector("#title-a:has-text('lies on the sticker')")
    label = page.locator("#label-a [data-testid='label-output-value']").inner_text().strip()
    assert label in CLASS_NAMES_EN
    assert page.locator("#heat-a img").get_attribute("src") != heatmap_before

    # The page's answer is the package's for a 15% sticker at the centre (the click may round by a pixel).
    clf = load_classifier(tiny_checkpoint)
    small = resize_square(Image.fromarray(photo), 32)
    expected = set()
    for pixel in (191, 192, 193):
        stickered, _ = paint_sticker(small, pixel / 384 * 32, pixel / 384 * 32, round(0.15 * 32))
        probs = clf.predict(clf.preprocess(Image.fromarray(stickered))[None])[0]
        expected.add(CLASS_NAMES_EN[int(torch.argmax(probs))])
    assert label in expected


def test_bad_uploads_show_a_message_in_the_page(page, tmp_path):
    (tmp_path / "bomb.png").write_bytes(bomb_png())
    page.set_input_files("#upload-image input[type=file]", str(tmp_path / "bomb.png"))
    page.wait_for_selector("#status:has-text('bomb.png: the image is too large')")
    assert "predicts" in page.locator("#title-a").inner_text()  # the page still works

    (tmp_path / "big.png").write_bytes(b"\0" * 2_000_000)  # over the test server's 1 MB limit
    page.set_input_files("#upload-image input[type=file]", str(tmp_path / "big.png"))
    page.wait_for_selector("text=exceed the maximum allowed size")
