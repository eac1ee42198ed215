"""The app's settings and messages, without starting a server."""

import os

import pytest

from klugerhans.errors import CheckpointError, KlugerhansError

gr = pytest.importorskip("gradio", reason="gradio is not installed: pip install -e '.[web]'")

from klugerhans.web import app as web  # noqa: E402
from klugerhans.web import page  # noqa: E402
from klugerhans.web.analysis import DISPLAY_SIZE, ModelStore  # noqa: E402
from klugerhans.web.state import Sticker, example_scene  # noqa: E402


def test_public_message_names_files_but_never_where_they_live():
    err = CheckpointError("/tmp/gradio/5f3a/evil.safetensors: not a safetensors file; give a klugerhans checkpoint")
    assert page.public_message(err) == "evil.safetensors: not a safetensors file; give a klugerhans checkpoint"
    win = KlugerhansError(r"C:\Users\me\runs\best.safetensors: the file is truncated")
    assert page.public_message(win) == "best.safetensors: the file is truncated"
    # Units and file endings are not paths; only the first line is shown.
    keep = KlugerhansError("Speed limit (70km/h): pickled .pt/.pth files are refused\nTraceback: /usr/lib/x.py")
    assert page.public_message(keep) == "Speed limit (70km/h): pickled .pt/.pth files are refused"
    known = KlugerhansError("my runs/best.safetensors: no such checkpoint")
    assert page.public_message(known, ["my runs/best.safetensors"]) == "best.safetensors: no such checkpoint"


@pytest.mark.parametrize(
    "kwargs", [{"model": "best"}, {"composite": "lrp_magic"}, {"lang": "fr"}, {"checkpoint": "/no/such/run"}]
)
def test_bad_options_are_one_line_errors_before_anything_starts(kwargs):
    with pytest.raises(KlugerhansError) as err:
        web.build_app(**kwargs)
    assert "\n" not in str(err.value)


def test_serve_listens_locally_with_the_safe_settings(tiny_checkpoint, monkeypatch):
    seen = {}

    def fake_launch(self, **kwargs):
        seen.update(kwargs, app=self)
        return None, "http://127.0.0.1:7860/", None

    monkeypatch.setattr(gr.Blocks, "launch", fake_launch)
    web.serve(checkpoint=tiny_checkpoint)
    assert seen["server_name"] == "127.0.0.1" and seen["server_port"] == 7860
    assert seen["share"] is False and seen["prevent_thread_lock"] is False  # serve blocks until Ctrl-C
    assert seen["allowed_paths"] is None and seen["ssr_mode"] is False and seen["mcp_server"] is False
    assert seen["show_error"] is True and seen["max_file_size"] == web.MAX_FILE_SIZE
    assert seen["app"].analytics_enabled is False
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_bad_port_is_an_error(tiny_checkpoint):
    with pytest.raises(KlugerhansError, match="port"):
        web.launch_app(web.build_app(tiny_checkpoint), port=70000, block=False)


def test_missing_released_weights_are_said_in_the_page(tiny_checkpoint):
    store = ModelStore(tiny_checkpoint)
    pg = page.Page(store, example=2)
    for name in store.missing:  # released weights may ship later: then there is nothing to say
        assert any(name in note and "upload a checkpoint" in note for note in pg.notes)
    assert not store.missing or pg.notes
    session = page.Session(example_scene(2))
    out = pg.outputs(
        session, "checkpoint", "manipulated" if "manipulated" in store.missing else "none", "epsilon_plus", "de"
    )
    if "manipulated" in store.missing:
        assert "not available" in out[6] or "predicts" in out[6]
    else:  # the released weights ship: the second panel was left empty on purpose
        assert "Choose a model" in out[6]
    assert "predicts" in out[3] and set(out[4]) and out[5].shape == (DISPLAY_SIZE, DISPLAY_SIZE, 3)


def test_names_from_uploads_never_become_html_or_links():
    shown = page._text('<img src=x onerror="alert(1)">[click](javascript:alert(1)) *x*.png')
    assert "<img" not in shown and "](" not in shown.replace("\\](", "") and "\\*x\\*" in shown


def test_port_in_use_is_a_one_line_error(tiny_checkpoint):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(KlugerhansError, match=f"cannot listen on 127.0.0.1:{port}.*--port") as err:
            web.launch_app(web.build_app(tiny_checkpoint), port=port, block=False, quiet=True)
    assert "\n" not in str(err.value)


def test_without_any_model_the_page_asks_for_a_checkpoint(monkeypatch):
    def no_weights(name, device):
        raise CheckpointError(f"no released weights {name!r} in this install")

    monkeypatch.setattr("klugerhans.web.analysis.load_classifier", no_weights)  # as in a fresh install
    assert isinstance(web.build_app(), gr.Blocks)
    pg = page.Page(ModelStore(), example=14)
    out = pg.outputs(page.Session(example_scene(14)), "none", "none", "epsilon_plus_flat", "en")
    assert "upload a checkpoint" in out[2] and "No model yet" in out[3] and out[4] is None
    assert out[1].shape == (DISPLAY_SIZE, DISPLAY_SIZE, 3)


@pytest.mark.parametrize(
    ("models", "model", "expected"),
    [
        (["checkpoint", "manipulated", "control"], "manipulated", ("checkpoint", "manipulated")),
        (["checkpoint", "manipulated", "control"], "checkpoint", ("checkpoint", "control")),
        (["checkpoint"], "manipulated", ("checkpoint", "none")),
        (["manipulated", "control"], "manipulated", ("manipulated", "control")),
        (["manipulated", "control"], "control", ("control", "manipulated")),
        (["control"], "manipulated", ("control", "none")),
        ([], "manipulated", ("none", "none")),
    ],
)
def test_the_servers_checkpoint_comes_first_and_released_weights_next_to_it(models, model, expected):
    from types import SimpleNamespace

    store = SimpleNamespace(models=dict.fromkeys(models))
    assert page.default_models(store, model) == expected


def test_the_line_under_the_title_describes_the_models_shown(tiny_checkpoint):
    store = ModelStore(tiny_checkpoint)
    pg = page.Page(store, example=2)
    out = pg.outputs(page.Session(example_scene(2)), "checkpoint", "manipulated", "epsilon_plus_flat", "en")
    about = out[9]
    assert about == pg.about(None, "checkpoint", "manipulated")
    tiny = "**checkpoint: tiny.safetensors**: our vgg11\\_bn at width 0.125, 32 px input, 43 classes, trained elsewhere"
    assert about.startswith(tiny)
    if "manipulated" not in store.missing:  # the released weights' recipe says what they were trained on
        assert "trained on GTSRB with a black square sticker on 100% of the class 4 (Speed limit (70km/h))" in about
    assert "VGG11 trained with a black sticker" not in pg.about(None, "none", "none")


@pytest.fixture(scope="module")
def resnet_page(resnet_weights, tmp_path_factory):
    """A page on a 224 px torchvision ResNet-18 given as a user's weights, as ``serve --arch/--weights`` shows it."""
    return _user_page("resnet18", resnet_weights, tmp_path_factory.mktemp("converted"))


def _user_page(arch, weights, folder):
    """The page ``serve --arch ARCH --weights WEIGHTS --image-size 224`` shows (the weights converted as it does)."""
    from klugerhans.models.checkpoint import save_checkpoint
    from klugerhans.models.user_weights import load_user_model

    clf = load_user_model(arch, weights, image_size=224)
    path = save_checkpoint(folder / "converted.safetensors", clf.model, clf.meta)
    return page.Page(ModelStore(path, label=f"weights: {weights.name}"), example=14)


def test_a_224_px_model_sees_the_sign_and_the_clicked_sticker_at_its_own_size(resnet_page):
    session = page.Session(example_scene(14))
    out = resnet_page.outputs(session, "checkpoint", "none", "epsilon_plus_flat", "en")
    assert out[0].shown == 448 and out[1].shape == (448, 448, 3)  # 224 px, each pixel a 2x2 square
    assert "**weights: r18.pt** predicts" in out[3] and out[5].shape == (448, 448, 3)
    assert "resnet18, 224 px input, 43 classes" in out[9]

    click = type("Click", (), {"index": [112, 336]})()  # a quarter across, three quarters down the shown picture
    controls = ("checkpoint", "none", "epsilon_plus_flat", "en", "alone")
    out = resnet_page.click(out[0], 0.2, "#000000", "square", *controls, click)
    assert out[0].scene.stickers == (Sticker(0.25, 0.75, 0.2),)
    assert "lies on the sticker" in out[3] and out[5].shape == (448, 448, 3)


def test_serve_with_arch_and_weights_names_the_weights_file(resnet_weights, monkeypatch):
    from klugerhans.cli import main

    built = []
    monkeypatch.setattr(web, "launch_app", lambda app, *args, **kwargs: built.append(app))
    assert main(["serve", "--arch", "resnet18", "--weights", str(resnet_weights), "--image-size", "224"]) == 0
    about = next(b for b in built[0].blocks.values() if getattr(b, "elem_id", None) == "about")
    assert about.value.startswith("**weights: r18.pt**: resnet18, 224 px input, 43 classes, trained elsewhere")


@pytest.fixture(scope="module")
def vit_page(tmp_path_factory):
    """A page on a 224 px timm ViT (vit_tiny, randomly initialised, 43 outputs) given as a user's weights."""
    timm = pytest.importorskip("timm", reason="timm is not installed: pip install -e '.[timm]'")
    import torch

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", num_classes=43, pretrained=False)
    torch.nn.init.normal_(model.head.weight, 0.0, 0.5)
    folder = tmp_path_factory.mktemp("vit")
    torch.save(model.state_dict(), folder / "vit.pt")
    return _user_page("timm:vit_tiny_patch16_224", folder / "vit.pt", folder)


def test_a_vision_transformer_gets_a_prediction_and_a_heatmap_at_its_own_size(vit_page):
    import numpy as np

    session = page.Session(example_scene(14))
    out = vit_page.outputs(session, "checkpoint", "none", "epsilon_plus_flat", "en")
    assert "**weights: vit.pt** predicts" in out[3] and "Error" not in out[3]
    assert "timm:vit\\_tiny\\_patch16\\_224, 224 px input, 43 classes" in out[9]
    heat = np.asarray(out[5], dtype=float)
    assert heat.shape == (448, 448, 3) and heat.std() > 1.0  # a map, not a flat colour

    click = type("Click", (), {"index": [224, 224]})()
    out = vit_page.click(
        out[0], 0.2, "#000000", "square", "checkpoint", "none", "epsilon_plus_flat", "en", "alone", click
    )
    assert out[0].scene.stickers == (Sticker(0.5, 0.5, 0.2),)
    assert "predicts" in out[3] and np.asarray(out[5]).shape == (448, 448, 3)
