"""Self-contained reports: one HTML file (images embedded, opens offline) and a Markdown twin."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from klugerhans.io import atomic_write_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #c00;padding-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #ddd}figure{margin:1em 0}figcaption{font-size:.9em;color:#555}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em .8em}
"""


@dataclass(frozen=True)
class Section:
    """One part of a report: a heading, paragraphs, an optional table and figures."""

    heading: str
    paragraphs: Sequence[str] = ()
    table: Sequence[Sequence[object]] = ()
    """Rows of cells; the first row is the header."""
    figures: Sequence[tuple[str, str]] = ()
    """``(path to a PNG, caption)``; embedded into the HTML, linked (relative) from the Markdown."""


@dataclass(frozen=True)
class Report:
    """A titled list of sections."""

    title: str
    sections: Sequence[Section] = field(default_factory=tuple)
    intro: str = ""


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"
    return "n/a" if value is None else str(value)


def _html_table(rows: Sequence[Sequence[object]]) -> str:
    head, *body = rows
    out = ["<table><tr>", *(f"<th>{html.escape(_cell(c))}</th>" for c in head), "</tr>"]
    for row in body:
        out.append("<tr>")
        for c in row:
            cls = ' class="num"' if isinstance(c, int | float) else ""
            out.append(f"<td{cls}>{html.escape(_cell(c))}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _md_table(rows: Sequence[Sequence[object]]) -> str:
    head, *body = rows
    lines = ["| " + " | ".join(_cell(c) for c in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def render_html(report: Report) -> str:
    """The report as one HTML document with every image embedded as a data URI."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
    ]
    if report.intro:
        parts.append(f"<p>{html.escape(report.intro)}</p>")
    for sec in report.sections:
        parts.append(f"<h2>{html.escape(sec.heading)}</h2>")
        parts += [f"<p>{html.escape(p)}</p>" for p in sec.paragraphs]
        if sec.table:
            parts.append(_html_table(sec.table))
        for path, caption in sec.figures:
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(caption)}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(report: Report, relative_to: str | os.PathLike[str] | None = None) -> str:
    """The report as Markdown; figure paths are written relative to ``relative_to`` (the .md's folder)."""
    lines = [f"# {report.title}", ""]
    if report.intro:
        lines += [report.intro, ""]
    for sec in report.sections:
        lines += [f"## {sec.heading}", ""]
        for p in sec.paragraphs:
            lines += [p, ""]
        if sec.table:
            lines += [_md_table(sec.table), ""]
        for path, caption in sec.figures:
            rel = os.path.relpath(path, relative_to) if relative_to else str(path)
            lines += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
    return "\n".join(lines)


def write_report(report: Report, out_dir: str | os.PathLike[str], stem: str = "report") -> list[Path]:
    """Write ``<stem>.html`` (self-contained) and ``<stem>.md`` into ``out_dir`` atomically; return both paths."""
    out = Path(out_dir)
    html_path, md_path = out / f"{stem}.html", out / f"{stem}.md"
    atomic_write_text(html_path, render_html(report))
    atomic_write_text(md_path, render_markdown(report, out))
    return [html_path, md_path]
