"""A tiny checkpoint, a user's ResNet-18 weights and the ``klugerhans serve`` apps the web tests share (always
stopped)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

UPLOAD_LIMIT = "1mb"
"""Upload limit of the test server: the tiny checkpoint (~0.6 MB) fits, a 2 MB file does not."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised VGG11-BN at width 0.125 saved as a klugerhans checkpoint.

    Its dense layers get large weights: the default init gives 43 nearly equal logits, whose order float rounding
    (server thread vs test thread) could swap; these differ by whole units, so the top-3 is well defined.
    """
    import torch
    from torch import nn

    from klugerhans.models.checkpoint import CheckpointMeta, save_checkpoint
    from klugerhans.models.vgg import ModelConfig, create_model

    torch.manual_seed(0)
    config = ModelConfig(width=0.125)
    model = create_model(config)
    for layer in model.classifier:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0.0, 0.5)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(path, model, CheckpointMeta(model=config))
    return path


@pytest.fixture(scope="session")
def server(tiny_checkpoint: Path) -> Iterator[str]:
    """URL of a running web app (127.0.0.1, free port) offering the tiny checkpoint; closed after the session."""
    pytest.importorskip("gradio", reason="gradio is not installed: pip install -e '.[web]'")
    from klugerhans.web.app import build_app, launch_app

    app = build_app(tiny_checkpoint)
    try:
        url = launch_app(app, "127.0.0.1", free_port(), block=False, quiet=True, max_file_size=UPLOAD_LIMIT)
        yield url
    finally:
        app.close()


@pytest.fixture(scope="session")
def resnet_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised torchvision ResNet-18 with 43 outputs, saved as a user saves weights for ``--weights``
    (``torch.save(model.state_dict(), PATH)``); its last layer's weights large for a well-defined top-3, as above."""
    import torch
    import torchvision
    from torch import nn

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=43)
    nn.init.normal_(model.fc.weight, 0.0, 0.5)
    path = tmp_path_factory.mktemp("weights") / "r18.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def resnet_server(resnet_weights: Path) -> Iterator[str]:
    """URL of ``klugerhans serve --arch resnet18 --weights r18.pt --image-size 224``, run by the CLI in this process
    (its launch made non-blocking, on a free port); closed after the session."""
    pytest.importorskip("gradio", reason="gradio is not installed: pip install -e '.[web]'")
    from klugerhans.cli import main
    from klugerhans.web import app as web_app

    started: dict[str, Any] = {}
    launch = web_app.launch_app

    def start(app: Any, host: str, port: int, **kwargs: Any) -> str:
        started["app"] = app
        started["url"] = launch(app, host, free_port(), **{**kwargs, "block": False, "quiet": True})
        return str(started["url"])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(web_app, "launch_app", start)
        code = main(["serve", "--arch", "resnet18", "--weights", str(resnet_weights), "--image-size", "224"])
    assert code == 0 and "url" in started
    try:
        yield started["url"]
    finally:
        started["app"].close()
