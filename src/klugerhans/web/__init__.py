"""The ``klugerhans serve`` web page: a sticker painter with live prediction and LRP heatmaps (needs ``.[web]``).

>>> from klugerhans.web import serve
>>> serve(port=7860)  # http://127.0.0.1:7860, Ctrl-C stops

``build_app`` gives the ``gradio.Blocks`` without starting it; ``launch_app`` starts a built one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# Set before gradio is first imported (by any module of this package): no usage statistics or version checks
# leave the machine.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

__all__ = ["build_app", "launch_app", "serve"]

if TYPE_CHECKING:
    from klugerhans.web.app import build_app, launch_app, serve


def __getattr__(name: str) -> Any:
    # gradio (and torch) load only when the web page is asked for, so `klugerhans --help` stays fast.
    if name in __all__:
        try:
            from klugerhans.web import app
        except ModuleNotFoundError as err:
            if err.name != "gradio":
                raise
            from klugerhans.errors import KlugerhansError

            raise KlugerhansError("the web UI needs gradio: pip install 'klugerhans[web]'") from None
        return getattr(app, name)
    raise AttributeError(f"module 'klugerhans.web' has no attribute {name!r}")
