"""A klugerhans ViRelAy export opened by a running ViRelAy server and read back over its REST API."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from conftest import SHORTCUT_CLASS
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from klugerhans.audit.config import AuditConfig
from klugerhans.audit.run import AuditResult, audit_classifier

pytest.importorskip("h5py", reason="the ViRelAy export needs h5py (pip install klugerhans[virelay])")
# ViRelAy pins pillow<11, which would change how klugerhans renders its synthetic signs, so it lives in an
# environment of its own: KLUGERHANS_VIRELAY_PYTHON names that environment's python (CI makes one), else a
# ViRelAy installed next to klugerhans is used.
VIRELAY_PYTHON = os.environ.get("KLUGERHANS_VIRELAY_PYTHON") or sys.executable
if subprocess.run([VIRELAY_PYTHON, "-c", "import virelay"], capture_output=True, timeout=120).returncode != 0:
    pytest.skip(
        "ViRelAy is not installed: make a separate environment with `pip install virelay` and set "
        "KLUGERHANS_VIRELAY_PYTHON to its python",
        allow_module_level=True,
    )

from klugerhans.audit.virelay import export_virelay, word_net_id  # noqa: E402 - after the skip checks

START_TIMEOUT = 60.0
"""Seconds the server may take to answer its first request."""
REQUEST_TIMEOUT = 20.0


@dataclass(frozen=True)
class Server:
    url: str
    result: AuditResult


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT) as response:
        assert response.status == 200, url
        return bytes(response.read())


def _json(server: Server, path: str) -> Any:
    return json.loads(_get(server.url + path))


def _image(server: Server, path: str) -> np.ndarray:
    """An image ViRelAy serves (a JPEG of quality 70) as (H, W, 3) int."""
    return np.asarray(Image.open(io.BytesIO(_get(server.url + path))).convert("RGB")).astype(int)


def _window(image: np.ndarray, darkest: bool, side: int = 5) -> tuple[int, int]:
    """Top-left corner of the darkest (or brightest) ``side`` x ``side`` window: the 5x5 patch survives JPEG."""
    sums = sliding_window_view(image.astype(int).sum(axis=2), (side, side)).sum(axis=(2, 3))
    y, x = np.unravel_index(sums.argmin() if darkest else sums.argmax(), sums.shape)
    return int(y), int(x)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, shortcut_classifier, squares_with_patch) -> Iterator[Server]:
    """``virelay project.yaml`` on a free port of 127.0.0.1, serving an export of the planted-shortcut audit."""
    config = AuditConfig(checkpoint="hand-built", recipients=16, methods=(), tsne_classes=1, progress=False)
    result = audit_classifier(shortcut_classifier, squares_with_patch, config)
    project = export_virelay(result, tmp_path_factory.mktemp("virelay"))
    port = _free_port()
    log = project.parent / "server.log"
    # BROWSER=true: the CLI opens a browser tab a second after start; let it run `true` instead
    env = {**os.environ, "BROWSER": "true"}
    command = [VIRELAY_PYTHON, "-m", "virelay", str(project), "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ViRelAy exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            try:
                _get(url + "/api/projects")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"ViRelAy did not answer within {START_TIMEOUT:.0f} s:\n{log.read_text()}")
                time.sleep(0.2)
        yield Server(url, result)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_projects_and_analyses(server: Server) -> None:
    result = server.result
    projects = _json(server, "/api/projects")
    assert [(p["id"], p["dataset"]) for p in projects] == [(0, "synthetic test")]
    assert projects[0]["name"].startswith("klugerhans audit of")

    project = _json(server, "/api/projects/0")
    methods = {m["name"]: m for m in project["analysisMethods"]}
    # ViRelAy shows "_" in a method name as "-"
    assert list(methods) == ["Spectral", "Spectral-tSNE"]
    names = result.classifier.class_names if result.classifier else ()
    categories = [(c["name"], c["humanReadableName"]) for c in methods["Spectral"]["categories"]]
    assert categories == [(word_net_id(c), names[c]) for c in sorted(result.spray)]
    assert methods["Spectral"]["embeddings"] == ["spectral"] and methods["Spectral"]["clusterings"] == ["eigengap"]
    assert [c["name"] for c in methods["Spectral-tSNE"]["categories"]] == [word_net_id(c) for c in sorted(result.tsne)]
    assert methods["Spectral-tSNE"]["embeddings"] == ["spectral", "tsne"]


@pytest.mark.parametrize(("method", "embedding"), [("Spectral", "spectral"), ("Spectral-tSNE", "tsne")])
def test_analysis_of_the_shortcut_class(server: Server, method: str, embedding: str) -> None:
    result, c = server.result, SHORTCUT_CLASS
    query = f"category={word_net_id(c)}&clustering=eigengap&embedding={embedding}"
    analysis = _json(server, f"/api/projects/0/analyses/{method}?{query}")
    points = analysis["embedding"]
    sp, rows = result.spray[c], result.heatmaps.rows_of(c)
    assert [p["attributionIndex"] for p in points] == result.heatmaps.index[rows].tolist()
    assert [p["cluster"] for p in points] == sp.labels.tolist()
    expected = sp.embedding if embedding == "spectral" else result.tsne[c]
    np.testing.assert_allclose([p["value"] for p in points], expected, rtol=1e-5, atol=1e-6)
    if embedding == "spectral":
        np.testing.assert_allclose(analysis["eigenvalues"], sp.eigenvalues, rtol=1e-5, atol=1e-6)


def test_sample_and_its_attribution(server: Server) -> None:
    result, c = server.result, SHORTCUT_CLASS
    assert result.classifier is not None
    names, size = result.classifier.class_names, result.data.size
    rows = result.heatmaps.index[result.heatmaps.rows_of(c)]
    # a class-4 image whose black patch is off the diagonal, so a transposed image would show
    i = next(int(i) for i in rows if len(set(_window(result.data.images[i], darkest=True))) == 2)
    image = result.data.images[i]
    patch = _window(image, darkest=True)

    sample = _json(server, f"/api/projects/0/dataset/{i}")
    assert sample["index"] == i and (sample["width"], sample["height"]) == (size, size)
    assert [(label["index"], label["name"]) for label in sample["labels"]] == [(c, names[c])]
    served = _image(server, sample["url"])
    assert served.shape == image.shape and _window(served, darkest=True) == patch
    lo, hi = size // 5, size - size // 5
    np.testing.assert_allclose(served[lo:hi, lo:hi].mean(axis=(0, 1)), image[lo:hi, lo:hi].mean(axis=(0, 1)), atol=15)

    attribution = _json(server, f"/api/projects/0/attributions/{i}?imageMode=attribution")
    assert attribution["index"] == i and (attribution["width"], attribution["height"]) == (size, size)
    assert [label["index"] for label in attribution["labels"]] == [c]
    with torch.no_grad():
        logits = result.classifier.model(torch.from_numpy(image[None].transpose(0, 3, 1, 2) / 255.0).float())
    np.testing.assert_allclose(attribution["prediction"], logits[0].numpy(), rtol=1e-4, atol=1e-4)

    heatmap = _image(server, attribution["urls"]["black-fire-red"])
    assert heatmap.shape == (size, size, 3)
    # the shortcut model's relevance sits on the black patch, and ViRelAy draws it there
    assert _window(heatmap, darkest=False) == patch


def test_every_sample_and_attribution(server: Server) -> None:
    """ViRelAy holds all N audited images and an attribution with the true label for each explained one."""
    data, index = server.result.data, server.result.heatmaps.index
    assert _json(server, f"/api/projects/0/dataset/{len(data) - 1}")["index"] == len(data) - 1
    with pytest.raises(urllib.error.HTTPError) as error:
        _get(f"{server.url}/api/projects/0/dataset/{len(data)}")
    assert error.value.code == 404
    attributions = _json(server, f"/api/projects/0/attributions?indices={','.join(map(str, index))}")
    assert [a["index"] for a in attributions] == index.tolist()
    assert [[label["index"] for label in a["labels"]] for a in attributions] == [[c] for c in data.labels[index]]
