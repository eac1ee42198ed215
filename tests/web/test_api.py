"""The running app through gradio_client and plain HTTP: results match the package, uploads are contained."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from web_payloads import bomb_png

from klugerhans.data.classes import class_name
from klugerhans.data.sticker import paint_sticker
from klugerhans.explain.heatmap import overlay_heatmap, render_heatmap
from klugerhans.explain.lrp import compute_heatmaps
from klugerhans.models.checkpoint import load_classifier
from klugerhans.web.analysis import enlarge
from klugerhans.web.state import example_scene

client_lib = pytest.importorskip("gradio_client", reason="gradio_client is not installed: pip install gradio_client")
httpx = pytest.importorskip("httpx")

CONTROLS = ("checkpoint", "none", "epsilon_plus_flat")


@pytest.fixture(scope="module")
def client(server):
    return client_lib.Client(server, verbose=False)


def _expected(tiny_checkpoint: Path, image: np.ndarray) -> tuple[list[str], torch.Tensor]:
    """Top-3 names and (3, S, S) LRP relevance of the image computed with the package alone."""
    clf = load_classifier(tiny_checkpoint)
    x = clf.preprocess(Image.fromarray(image))[None]
    probs = clf.probabilities(x)[0]
    top3 = [class_name(int(c), "de") for c in torch.argsort(probs, descending=True)[:3]]
    return top3, compute_heatmaps(clf.model, x, composite="epsilon_plus_flat").relevance[0]


def _assert_served(path: str, expected: np.ndarray) -> None:
    """The served image is ``expected`` up to float rounding (the server computes in another thread)."""
    served = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert np.abs(served - expected).max() <= 2 and (served != expected).mean() < 0.01


def test_sticker_prediction_and_heatmap_match_the_package(client, tiny_checkpoint):
    client.predict(14, *CONTROLS, "de", api_name="/example")
    out = client.predict(25, 75, 0.2, "#ff0000", "square", *CONTROLS, "de", api_name="/glue_sticker")
    picture, status, title, top3, heatmap, title_b, _, _, about = out
    assert "1 sticker" in status and "lies on the sticker" in title and "Choose a model" in title_b
    assert about.startswith("**checkpoint: tiny.safetensors**: our vgg11")

    sign = example_scene(14).image(32)
    stickered, _ = paint_sticker(sign, 0.25 * 32, 0.75 * 32, round(0.2 * 32), (255, 0, 0))
    names, relevance = _expected(tiny_checkpoint, stickered)
    assert [c["label"] for c in top3["confidences"]] == names
    assert top3["label"] == names[0] and names[0] in title
    _assert_served(heatmap, render_heatmap(relevance, "bwr", size=384))
    shown = np.asarray(Image.open(picture).convert("RGB"))
    assert np.array_equal(shown[::12, ::12], stickered)  # 12x nearest-neighbour enlargement of the input

    cleared = client.predict(*CONTROLS, "de", "overlay", api_name="/remove_stickers")
    assert "0 sticker" in cleared[1] and "lies on the sticker" not in cleared[2]
    _assert_served(cleared[4], overlay_heatmap(enlarge(sign), _expected(tiny_checkpoint, sign)[1], alpha=0.5))


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"hello, not an image", "not an image"), (bomb_png(), "too large"), (b"", "empty")],
    ids=["text", "bomb", "empty"],
)
def test_bad_images_give_a_message_and_keep_the_page(client, tmp_path, content, words):
    bad = tmp_path / "evil.png"
    bad.write_bytes(content)
    out = client.predict(client_lib.handle_file(str(bad)), *CONTROLS, "en", api_name="/upload_image")
    status = out[1]
    assert words in status and "evil.png" in status
    assert "/" not in status.split("evil.png")[0].split("\n")[-1]  # no folder in front of the name
    assert "predicts" in out[2]  # the previous sign is still analysed


def test_bad_checkpoint_upload_names_the_file_only(client, tmp_path):
    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(b"\x80\x04 not safetensors, maybe a pickle")
    out = client.predict(client_lib.handle_file(str(bad)), *CONTROLS, "en", api_name="/upload_checkpoint")
    status = out[1]
    assert "evil.safetensors: not a safetensors file" in status
    assert str(tmp_path) not in status and "gradio" not in status.lower()


def test_uploaded_checkpoint_is_offered_and_compared(client, tiny_checkpoint):
    out = client.predict(client_lib.handle_file(str(tiny_checkpoint)), *CONTROLS, "en", api_name="/upload_checkpoint")
    title_a, title_b, model_a, model_b = out[2], out[5], out[-3], out[-2]
    assert model_a["value"] == "upload" and model_b["value"] == "checkpoint"  # dropdown updates
    assert ["yours: tiny.safetensors", "upload"] in model_a["choices"]
    assert "yours: tiny.safetensors" in title_a and "checkpoint: tiny.safetensors" in title_b
    assert out[3] == out[6]  # the same weights give the same top-3


def test_unexpected_errors_show_a_generic_message(client, monkeypatch):
    from klugerhans.web import page

    def broken(*args, **kwargs):
        raise RuntimeError("/srv/secret/model.py line 3: boom")

    monkeypatch.setattr(page, "analyze", broken)
    with pytest.raises(Exception) as err:
        client.predict(*CONTROLS, "en", api_name="/remove_stickers")
    assert "Something went wrong" in str(err.value) and "secret" not in str(err.value)


def test_no_route_serves_files_outside_the_upload_cache(server):
    secret = Path(__file__).resolve().parents[2] / "pyproject.toml"
    for target in (str(secret), "/etc/passwd", "../../pyproject.toml", "pyproject.toml"):
        for prefix in ("gradio_api/file=", "file=", "gradio_api/file/"):
            r = httpx.get(server + prefix + target, timeout=30)
            assert r.status_code >= 400 and "[project]" not in r.text and "root:" not in r.text, (prefix, target)


def test_uploads_over_the_limit_are_refused_by_the_server(server):
    r = httpx.post(server + "gradio_api/upload", files={"files": ("big.png", b"\0" * 2_000_000)}, timeout=30)
    assert r.status_code == 413


def test_page_needs_nothing_from_the_internet(server):
    page = httpx.get(server, timeout=30).text
    assert "<script" in page
    for tag in ('<script src="http', '<link rel="stylesheet" href="http', "fonts.googleapis", "cdn."):
        assert tag not in page


def test_checkpoints_open_by_path_only_inside_the_servers_folder(client, tiny_checkpoint, tmp_path, monkeypatch):
    folder = tiny_checkpoint.parent
    monkeypatch.chdir(folder)  # the server runs in this process: its working folder is now the checkpoint's
    (folder / "escape").unlink(missing_ok=True)
    (folder / "escape").symlink_to(tmp_path)
    (tmp_path / "outside.safetensors").write_bytes(tiny_checkpoint.read_bytes())
    for path in (
        "../../etc/passwd",
        "/etc/passwd",
        str(tmp_path / "outside.safetensors"),
        "escape/outside.safetensors",
    ):
        out = client.predict(path, *CONTROLS, "en", api_name="/open_checkpoint")
        assert "only paths inside the server's working folder" in out[1], path
        assert out[-2]["value"] != "upload"
    missing = client.predict("runs/none", *CONTROLS, "en", api_name="/open_checkpoint")
    assert "runs/none: no such checkpoint" in missing[1] and str(folder) not in missing[1]
    ok = client.predict("tiny.safetensors", *CONTROLS, "en", api_name="/open_checkpoint")
    assert ok[-2]["value"] == "upload" and "yours: tiny.safetensors" in ok[2]
