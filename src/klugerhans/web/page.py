"""What the sticker-painter page does on each event: one :class:`Page` per app, one :class:`Session` per visitor.

Every handler takes the visitor's session and the page's controls and returns everything the page shows, so an
event can never leave the page half updated. User mistakes (a bad upload, a checkpoint that does not load) become a
line in the page with file names only, never where files live; anything unexpected shows a generic message and
goes to the server log with its traceback.
"""

from __future__ import annotations

import functools
import html
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, cast

import gradio as gr

from klugerhans.data.classes import Language
from klugerhans.data.colors import parse_color
from klugerhans.errors import CheckpointError, KlugerhansError
from klugerhans.models.checkpoint import RELEASED_WEIGHTS, load_classifier
from klugerhans.models.classifier import Classifier
from klugerhans.models.config import INPUT_SIZES
from klugerhans.web.analysis import CHECKPOINT, DISPLAY_SIZE, ModelStore, analyze, describe_model, enlarge
from klugerhans.web.state import Scene, Sticker, example_scene, upload_scene

__all__ = [
    "HEATMAP_VIEWS",
    "NONE",
    "UPLOAD",
    "Page",
    "Session",
    "choices",
    "default_models",
    "guarded",
    "public_message",
]

log = logging.getLogger(__name__)

UPLOAD = "upload"
"""Model key of a checkpoint uploaded in the page (kept per visitor)."""
NONE = "none"
"""Model key of an empty comparison panel."""
HEATMAP_VIEWS: dict[str, str] = {"alone": "the heatmap alone", "overlay": "over the image"}
"""How a panel shows the heatmap: key -> label in the page."""
_MESSAGE_CHARS = 300
# An absolute POSIX or Windows path not glued to a word ("km/h" and ".pt/.pth" are no paths).
_PATH = re.compile(r"(?<![\w.~])(?:[A-Za-z]:)?(?:[\\/][^\\/\s:;,'\"`()<>]+)+[\\/]?")
_MARKDOWN = re.compile(r"[\\`*_\[\]|]")


@dataclass(frozen=True)
class Session:
    """What one visitor works on; kept by gradio per browser tab (``gr.State``)."""

    scene: Scene
    seed: int = 0
    upload: Classifier | None = None
    upload_name: str = ""
    shown: int = DISPLAY_SIZE
    """Side in pixels of the picture last shown, to turn a click on it into image fractions."""


def public_message(err: BaseException, paths: Sequence[str] = ()) -> str:
    """One line for the page: the error's first line with every path shortened to its file name.

    Args:
        err: the error (a :class:`~klugerhans.errors.KlugerhansError` for user mistakes).
        paths: known paths to shorten first (exact matches), e.g. uploads and the server's checkpoint.
    """
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    for path in sorted(paths, key=len, reverse=True):
        if path:
            text = text.replace(path, Path(path).name)
    text = _PATH.sub(lambda m: Path(m.group(0).rstrip("\\/").replace("\\", "/")).name or "…", text)
    return text[:_MESSAGE_CHARS]


def _text(value: str) -> str:
    """Text for Markdown: names from uploads and checkpoints never become HTML, links or emphasis."""
    return _MARKDOWN.sub(r"\\\g<0>", html.escape(value, quote=False))


_F = TypeVar("_F", bound=Callable[..., Any])


def guarded(fn: _F) -> _F:
    """Turn a bug into a generic message in the page (details only in the server log, never in the browser)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:
            log.exception("klugerhans serve: unexpected error in %s", fn.__name__)
            raise gr.Error(
                "Something went wrong on the server; the details are in its log.", print_exception=False
            ) from err

    return cast(_F, wrapper)


def _model_labels(store: ModelStore) -> dict[str, str]:
    labels = {name: f"{name} (released weights)" for name in RELEASED_WEIGHTS}
    if CHECKPOINT in store.models:
        labels[CHECKPOINT] = store.label
    return labels


def choices(store: ModelStore, session: Session | None, with_none: bool) -> list[tuple[str, str]]:
    """Model menu entries ``(label, key)``: the server's models, the visitor's own, and "none" for comparison."""
    labels = _model_labels(store)
    out = [(labels[key], key) for key in store.models]
    if session is not None and session.upload is not None:
        out.append((f"yours: {session.upload_name}", UPLOAD))
    # "none" is offered for comparison, and as the only entry while the server has no model at all
    return [*out, ("none", NONE)] if with_none or not out else out


class Page:
    """The handlers of one app: each takes the session and the controls and returns every output."""

    def __init__(self, store: ModelStore, example: int) -> None:
        self.store = store
        self.example = example
        notes = []
        if store.missing:
            names = ", ".join(store.missing)
            notes.append(
                f"No released weights ({names}) in this install: upload a checkpoint (.safetensors) below, "
                "or start the server with `klugerhans serve --checkpoint RUN`."
            )
        self.notes = notes

    # -- rendering -------------------------------------------------------------------------------------------------
    def _classifier(self, session: Session | None, key: str) -> Classifier | None:
        if key == UPLOAD:
            return session.upload if session is not None else None
        return self.store.models.get(key)

    def _label(self, session: Session | None, key: str) -> str:
        return {k: label for label, k in choices(self.store, session, False)}.get(key, key)

    def about(self, session: Session | None, model_a: str, model_b: str) -> str:
        """The line under the page's title: what each shown model is, where its weights come from, its input size
        and, where its recipe says, what it was trained on."""
        lines = []
        for key in dict.fromkeys((model_a, model_b)):
            clf = self._classifier(session, key)
            if clf is not None:
                lines.append(f"**{_text(self._label(session, key))}**: {_text(describe_model(clf))}.")
        return "  \n".join(lines) or "*No model loaded yet.*"

    def _panel(self, session: Session, key: str, composite: str, lang: Language, heatmap: str) -> tuple[str, Any, Any]:
        if key in (NONE, "", None):
            if not self.store.models and session.upload is None:
                return "*No model yet: upload a checkpoint (.safetensors) to see predictions.*", None, None
            return "*Choose a model to compare with.*", None, None
        clf = self._classifier(session, key)
        if clf is None:
            return (
                f"*Model {_text(str(key))} is not available; choose another or upload a checkpoint.*",
                None,
                None,
            )
        label = self._label(session, key)
        try:
            result = analyze(clf, self.store.explainer(clf, composite), session.scene, lang)
        except KlugerhansError as err:
            return f"**{_text(label)}**: {_text(public_message(err, self.store.paths))}", None, None
        lines = [f"**{_text(label)}** predicts **{_text(result.name)}** ({result.prob:.0%})"]
        if result.sticker_share is not None:
            lines.append(f"{result.sticker_share:.0%} of the positive relevance lies on the sticker.")
        top3 = {name: prob for name, prob in result.top3}
        return "  \n".join(lines), top3, result.overlay if heatmap == "overlay" else result.heatmap

    def outputs(
        self,
        session: Session,
        model_a: str,
        model_b: str,
        composite: str,
        lang: Language,
        heatmap: str = "alone",
        notice: str = "",
    ) -> tuple[Any, ...]:
        """Everything the page shows: session, picture, status, title/top-3/heatmap of both panels, then the line
        that describes the models. ``heatmap``: a key of :data:`HEATMAP_VIEWS`."""
        clf = self._classifier(session, model_a)
        # Without a model the picture shows the largest input of our VGG.
        seen_as = (clf.input_size, clf.meta.resize) if clf is not None else (max(INPUT_SIZES), "square")
        picture = enlarge(session.scene.render(*seen_as)[0])
        session = replace(session, shown=picture.shape[0])
        status = [*self.notes, f"**{_text(session.scene.title)}**, {len(session.scene.stickers)} sticker(s)"]
        if notice:
            status.append(f"⚠️ {_text(notice)}")
        panels = [self._panel(session, key, composite, lang, heatmap) for key in (model_a, model_b)]
        about = self.about(session, model_a, model_b)
        return (session, picture, "  \n".join(status), *panels[0], *panels[1], about)

    def _respond(
        self,
        session: Session | None,
        change: Callable[[Session], Session],
        controls: tuple[Any, ...],
        paths: Sequence[str] = (),
    ) -> tuple[Any, ...]:
        session = session or Session(example_scene(self.example))
        notice = ""
        try:
            session = change(session)
        except KlugerhansError as err:
            notice = public_message(err, [*self.store.paths, *paths])
        model_a, model_b, composite, lang, heatmap = controls
        return self.outputs(session, model_a, model_b, composite, lang, heatmap, notice=notice)

    # -- events ----------------------------------------------------------------------------------------------------
    def start(self, example: int, *controls: Any) -> tuple[Any, ...]:
        return self._respond(None, lambda s: Session(example_scene(int(example))), controls)

    def pick_example(self, session: Session | None, example: int, *controls: Any) -> tuple[Any, ...]:
        return self._respond(session, lambda s: replace(s, scene=example_scene(int(example)), seed=0), controls)

    def another_example(self, session: Session | None, example: int, *controls: Any) -> tuple[Any, ...]:
        def change(s: Session) -> Session:
            return replace(s, scene=example_scene(int(example), s.seed + 1), seed=s.seed + 1)

        return self._respond(session, change, controls)

    def upload_image(self, session: Session | None, file: str | None, *controls: Any) -> tuple[Any, ...]:
        def change(s: Session) -> Session:
            if not file:
                raise KlugerhansError("no image received; choose a PNG, JPEG or PPM file")
            path = Path(file)
            return replace(s, scene=upload_scene(path.read_bytes(), path.name))

        # Empty the drop zone again, ready for the next file (the status names the one shown).
        return (*self._respond(session, change, controls, [str(file or "")]), None)

    def glue(
        self,
        session: Session | None,
        x: float,
        y: float,
        size: float,
        color: str,
        shape: str,
        *controls: Any,
    ) -> tuple[Any, ...]:
        """Glue a sticker centred at ``(x, y)`` percent of the image width and height."""

        def change(s: Session) -> Session:
            rgb = parse_color(color or "black")  # a cleared picker is black
            sticker = Sticker(float(x) / 100, float(y) / 100, float(size), rgb, str(shape))
            return replace(s, scene=s.scene.with_sticker(sticker))

        return self._respond(session, change, controls)

    def click(
        self,
        session: Session | None,
        size: float,
        color: str,
        shape: str,
        model_a: str,
        model_b: str,
        composite: str,
        lang: Language,
        heatmap: str,
        evt: gr.SelectData,
    ) -> tuple[Any, ...]:
        # gradio passes the clicked pixel (x, y) of the shown picture, a square of side session.shown.
        index = evt.index if isinstance(evt.index, list | tuple) and len(evt.index) == 2 else (0, 0)
        side = session.shown if session is not None else DISPLAY_SIZE
        x, y = (min(max(float(v) / side, 0.0), 1.0) * 100 for v in index)
        return self.glue(session, x, y, size, color, shape, model_a, model_b, composite, lang, heatmap)

    def remove_stickers(self, session: Session | None, *controls: Any) -> tuple[Any, ...]:
        return self._respond(session, lambda s: replace(s, scene=s.scene.without_stickers()), controls)

    def refresh(self, session: Session | None, *controls: Any) -> tuple[Any, ...]:
        return self._respond(session, lambda s: s, controls)

    def _offer(
        self,
        session: Session | None,
        load: Callable[[], tuple[Classifier, str]],
        controls: tuple[Any, ...],
        paths: Sequence[str],
    ) -> tuple[Any, ...]:
        """Load a visitor's checkpoint, show it first (the previous first model for comparison), update the menus."""
        model_a, model_b, composite, lang, heatmap = controls

        def change(s: Session) -> Session:
            clf, name = load()
            return replace(s, upload=clf, upload_name=name)

        before = session.upload if session is not None else None
        out = self._respond(session, change, controls, paths)
        new_session = out[0]
        if new_session.upload is not None and new_session.upload is not before:
            model_b = model_a if model_a != UPLOAD else model_b
            model_a = UPLOAD
            out = self.outputs(new_session, model_a, model_b, composite, lang, heatmap)
        return (
            *out,
            gr.Dropdown(choices=choices(self.store, new_session, False), value=model_a),
            gr.Dropdown(choices=choices(self.store, new_session, True), value=model_b),
        )

    def upload_checkpoint(self, session: Session | None, file: str | None, *controls: Any) -> tuple[Any, ...]:
        def load() -> tuple[Classifier, str]:
            if not file:
                raise KlugerhansError("no checkpoint received; choose a .safetensors file")
            return load_classifier(file, self.store.device), Path(file).name

        return (*self._offer(session, load, controls, [str(file or "")]), None)

    def open_checkpoint(self, session: Session | None, text: str, *controls: Any) -> tuple[Any, ...]:
        """Open a checkpoint by a path inside the server's working folder (e.g. ``runs/demo`` in Docker)."""

        def load() -> tuple[Classifier, str]:
            root = Path.cwd().resolve()
            given = (text or "").strip()
            if not given:
                raise KlugerhansError("type the path of a checkpoint or run folder, e.g. runs/demo")
            target = (root / given).resolve()  # follows symlinks: none may lead out of the folder
            if not target.is_relative_to(root):
                raise KlugerhansError(
                    f"{Path(given).name}: only paths inside the server's working folder can be opened; "
                    "upload the file instead"
                )
            try:
                return load_classifier(target, self.store.device), given
            except KlugerhansError as err:
                raise CheckpointError(str(err).replace(str(target), given)) from None

        return self._offer(session, load, controls, [str(Path.cwd().resolve())])


def default_models(store: ModelStore, model: str) -> tuple[str, str]:
    """Keys shown first and for comparison.

    The server's ``--checkpoint`` comes first and ``model`` next to it; without one, ``model`` comes first (else
    the first model there is) next to the control (or the manipulated model).
    """
    available = [k for k in store.models if k != CHECKPOINT]
    if CHECKPOINT in store.models:
        second = model if model in available else next((k for k in ("control", "manipulated") if k in available), NONE)
        return CHECKPOINT, second
    first = model if model in available else (available[0] if available else NONE)
    return first, next((k for k in ("control", "manipulated") if k in available and k != first), NONE)
