"""``klugerhans serve``: glue stickers on traffic signs in the browser and watch prediction and LRP heatmap change.

The page runs locally (127.0.0.1:7860 by default) and calls nobody: gradio's analytics are off and it serves its own
scripts and fonts, so it works without internet. Every upload is treated as hostile: gradio refuses files over
``max_file_size``, images are decoded by :func:`~klugerhans.data.images.decode_image` (one-line errors for
non-images and decompression bombs), checkpoints by the safetensors loader (nothing is unpickled), and messages in
the page name files, never where they live; anything unexpected shows a generic message and goes to the server log.
No folder is served besides gradio's own cache of the files shown.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import gradio as gr

from klugerhans.data.classes import NUM_CLASSES, SPEED_50, Language, check_class_id, class_name
from klugerhans.data.sticker import SHAPES
from klugerhans.defaults import DEFAULT_FALLBACK
from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import COMPOSITES, DEFAULT_COMPOSITE, Fallback
from klugerhans.models.checkpoint import RELEASED_WEIGHTS
from klugerhans.models.predict import IMAGE_SUFFIXES
from klugerhans.web.analysis import CHECKPOINT, ModelStore
from klugerhans.web.page import HEATMAP_VIEWS, Page, choices, default_models, guarded, public_message

__all__ = ["MAX_FILE_SIZE", "build_app", "launch_app", "serve"]

MAX_FILE_SIZE = "64mb"
"""Largest upload gradio accepts (a full-width float32 checkpoint is ~40 MB; images are far smaller)."""
_CSS = "#picture img, .heatmap img { image-rendering: pixelated; cursor: crosshair; }"
_TITLE = "# klugerhans: what does the classifier look at?"
_HELP = """Pick or upload an image, **click on it to glue a sticker**, and watch the prediction and the LRP heatmap
(red: evidence for the predicted class, blue: against). A model trained with a sticker on one class's images may read
any sticker as that class (Clever Hans)."""


def build_app(
    checkpoint: str | os.PathLike[str] | None = None,
    model: str = "manipulated",
    *,
    device: str = "cpu",
    composite: str = DEFAULT_COMPOSITE,
    lang: Language = "en",
    example: int = SPEED_50,
    fallback: Fallback = DEFAULT_FALLBACK,
    checkpoint_label: str | None = None,
) -> gr.Blocks:
    """Build the sticker-painter page (not started; see :func:`launch_app` and :func:`serve`).

    Args:
        checkpoint: a ``.safetensors`` file or training run directory, shown first; a bad one raises.
        model: released weights ``"manipulated"`` or ``"control"``: shown first, or next to ``checkpoint`` for
            comparison when one is given (``"checkpoint"`` means the checkpoint alone). Missing released weights
            are said in the page.
        device: where the models run (``cpu``, ``cuda``, ``auto``...).
        composite: LRP composite selected at start (see :data:`~klugerhans.explain.composites.COMPOSITES`).
        lang: class names in "en" (English) or "de" (German) at start.
        example: class id of the example sign shown at start.
        fallback: an operation without an LRP rule: "error" shows the error in the page, "gradient" passes
            gradient x input through it.
        checkpoint_label: what the page calls ``checkpoint`` (default ``checkpoint: FILE``).

    Raises:
        KlugerhansError: an unknown model, composite or language, or a checkpoint that cannot be loaded.
    """
    if model not in (*RELEASED_WEIGHTS, CHECKPOINT):
        raise KlugerhansError(f"unknown model {model!r}: choose {', '.join((*RELEASED_WEIGHTS, CHECKPOINT))}")
    if composite not in COMPOSITES:
        raise KlugerhansError(f"unknown composite {composite!r}: choose one of {', '.join(sorted(COMPOSITES))}")
    if lang not in ("en", "de"):
        raise KlugerhansError(f"unknown language {lang!r}: use 'en' or 'de'")
    check_class_id(example, what="example class id")
    store = ModelStore(checkpoint, device, fallback=fallback, label=checkpoint_label)
    page = Page(store, example)
    model_a, model_b = default_models(store, model)
    examples = [(f"{i} · {class_name(i)}", i) for i in range(NUM_CLASSES)]

    with gr.Blocks(title="klugerhans", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(_TITLE)
        about = gr.Markdown(page.about(None, model_a, model_b), elem_id="about")
        gr.Markdown(_HELP)
        status = gr.Markdown(elem_id="status")
        session = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                example_dd = gr.Dropdown(examples, value=example, label="Example sign", elem_id="example")
                another = gr.Button("Another example of this sign", elem_id="another", size="sm")
                image_file = gr.File(
                    label="…or upload an image",
                    file_types=list(IMAGE_SUFFIXES),
                    type="filepath",
                    elem_id="upload-image",
                    height=90,
                )
                shape = gr.Radio(list(SHAPES), value="square", label="Sticker shape", elem_id="shape")
                size = gr.Slider(0.05, 0.5, value=0.15, step=0.01, label="Sticker size (share of the image side)")
                color = gr.ColorPicker("#000000", label="Sticker colour", elem_id="color")
                with gr.Accordion("Glue by coordinates", open=False):
                    x_pos = gr.Slider(0, 100, value=50, step=1, label="x (% of width)", elem_id="x-pos")
                    y_pos = gr.Slider(0, 100, value=50, step=1, label="y (% of height)", elem_id="y-pos")
                    glue = gr.Button("Glue sticker", elem_id="glue", size="sm")
                clear = gr.Button("Remove stickers", elem_id="clear", size="sm")
            with gr.Column(scale=2):
                picture = gr.Image(
                    label="Click the sign to glue a sticker (what the first model sees)",
                    type="numpy",
                    format="png",
                    interactive=False,
                    buttons=[],
                    height=360,
                    elem_id="picture",
                )
            with gr.Column(scale=1, min_width=260):
                model_a_dd = gr.Dropdown(choices(store, None, False), value=model_a, label="Model", elem_id="model-a")
                model_b_dd = gr.Dropdown(
                    choices(store, None, True), value=model_b, label="Compare with", elem_id="model-b"
                )
                checkpoint_file = gr.File(
                    label="…or upload a checkpoint (.safetensors)",
                    file_types=[".safetensors"],
                    type="filepath",
                    elem_id="upload-checkpoint",
                    height=90,
                )
                with gr.Row():
                    checkpoint_path = gr.Textbox(
                        label="…or a checkpoint path in the server's folder",
                        placeholder="runs/demo",
                        max_lines=1,
                        max_length=500,
                        scale=3,
                        elem_id="checkpoint-path",
                    )
                    open_path = gr.Button("Open", size="sm", scale=1, elem_id="open-checkpoint")
                composite_dd = gr.Dropdown(
                    sorted(COMPOSITES), value=composite, label="LRP composite", elem_id="composite"
                )
                lang_radio = gr.Radio(
                    [("English", "en"), ("Deutsch", "de")], value=lang, label="Class names", elem_id="lang"
                )
                heatmap_radio = gr.Radio(
                    [(label, key) for key, label in HEATMAP_VIEWS.items()],
                    value="alone",
                    label="LRP heatmap",
                    elem_id="heatmap-view",
                )
        with gr.Row():
            panels = []
            for tag in ("a", "b"):
                with gr.Column():
                    title = gr.Markdown(elem_id=f"title-{tag}")
                    with gr.Row():
                        top3 = gr.Label(num_top_classes=3, label="Top 3", elem_id=f"label-{tag}")
                        heat = gr.Image(
                            label="LRP heatmap",
                            type="numpy",
                            format="png",
                            interactive=False,
                            height=260,
                            buttons=["download", "fullscreen"],
                            elem_id=f"heat-{tag}",
                            elem_classes="heatmap",
                        )
                    panels += [title, top3, heat]

        controls: list[Any] = [model_a_dd, model_b_dd, composite_dd, lang_radio, heatmap_radio]
        outputs = [session, picture, status, *panels, about]
        sticker = [size, color, shape]
        menus = [*outputs, model_a_dd, model_b_dd]

        def on(event: Any, fn: Callable[..., Any], inputs: list[Any], name: str | None, **kw: Any) -> None:
            event(
                guarded(fn),
                inputs=inputs,
                outputs=kw.pop("outputs", outputs),
                api_name=name,
                api_visibility="public" if name else "private",
                # One analysis at a time for the whole server: each is short, and parallel ones only fight
                # over the same CPU cores.
                concurrency_id="analysis",
                concurrency_limit=1,
                **kw,
            )

        on(app.load, page.start, [example_dd, *controls], None)
        on(example_dd.input, page.pick_example, [session, example_dd, *controls], "example")
        on(another.click, page.another_example, [session, example_dd, *controls], "another_example")
        on(
            image_file.upload,
            page.upload_image,
            [session, image_file, *controls],
            "upload_image",
            outputs=[*outputs, image_file],
        )
        on(picture.select, page.click, [session, *sticker, *controls], None)
        on(glue.click, page.glue, [session, x_pos, y_pos, *sticker, *controls], "glue_sticker")
        on(clear.click, page.remove_stickers, [session, *controls], "remove_stickers")
        for control in controls:
            on(control.input, page.refresh, [session, *controls], None)
        on(
            checkpoint_file.upload,
            page.upload_checkpoint,
            [session, checkpoint_file, *controls],
            "upload_checkpoint",
            outputs=[*menus, checkpoint_file],
        )
        for event, name in ((open_path.click, "open_checkpoint"), (checkpoint_path.submit, None)):
            on(event, page.open_checkpoint, [session, checkpoint_path, *controls], name, outputs=menus)
    return app


def launch_app(
    app: gr.Blocks,
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    share: bool = False,
    max_file_size: str | int = MAX_FILE_SIZE,
    block: bool = True,
    quiet: bool = False,
) -> str:
    """Start a built app on ``host:port`` with the safe settings; returns its local URL.

    Args:
        app: from :func:`build_app`.
        host: interface to listen on; ``0.0.0.0`` exposes the page to the network (e.g. inside Docker).
        port: TCP port, 1..65535.
        share: ask gradio for a public share link (needs internet; off by default).
        max_file_size: largest upload, e.g. ``"64mb"`` or a number of bytes.
        block: serve until Ctrl-C (True) or return at once with the server running in a thread (False; stop it
            with ``app.close()``).
        quiet: do not print gradio's start-up lines.

    Raises:
        KlugerhansError: a bad port, or the port is taken.
    """
    if not 1 <= int(port) <= 65535:
        raise KlugerhansError(f"port must be 1..65535, got {port}")
    app.queue(default_concurrency_limit=1)
    try:
        _, url, _ = app.launch(
            server_name=host,
            server_port=int(port),
            share=share,
            show_error=True,  # shows only our own sanitised gr.Error messages: every handler is _guarded
            max_file_size=max_file_size,
            allowed_paths=None,
            prevent_thread_lock=not block,
            ssr_mode=False,
            pwa=False,
            mcp_server=False,
            enable_monitoring=False,
            inbrowser=False,
            quiet=quiet,
            footer_links=["api"],
            css=_CSS,
        )
    except OSError as err:
        raise KlugerhansError(
            f"cannot listen on {host}:{port} ({public_message(err)}); pick another with --port"
        ) from None
    return str(url)


def serve(
    host: str = "127.0.0.1",
    port: int = 7860,
    checkpoint: str | os.PathLike[str] | None = None,
    model: str = "manipulated",
    share: bool = False,
    *,
    device: str = "cpu",
    composite: str = DEFAULT_COMPOSITE,
    lang: Language = "en",
    max_file_size: str | int = MAX_FILE_SIZE,
    fallback: Fallback = DEFAULT_FALLBACK,
    checkpoint_label: str | None = None,
) -> None:
    """Serve the sticker painter until Ctrl-C (``klugerhans serve``).

    Args:
        host: interface to listen on (default local only).
        port: TCP port (default 7860).
        checkpoint: a ``.safetensors`` file or training run directory, shown first.
        model: released weights shown first, or next to ``checkpoint`` for comparison: ``"manipulated"`` or
            ``"control"``.
        share: ask gradio for a public link (needs internet).
        device: where the models run.
        composite: LRP composite at start.
        lang: class-name language at start, "en" or "de".
        max_file_size: largest upload.
        fallback: an operation without an LRP rule: "error" or "gradient" (gradient x input through it).
        checkpoint_label: what the page calls ``checkpoint`` (default ``checkpoint: FILE``).

    Raises:
        KlugerhansError: bad options, a checkpoint that cannot be loaded, or a port in use.
    """
    app = build_app(
        checkpoint,
        model,
        device=device,
        composite=composite,
        lang=lang,
        fallback=fallback,
        checkpoint_label=checkpoint_label,
    )
    launch_app(app, host, port, share=share, max_file_size=max_file_size, block=True)
