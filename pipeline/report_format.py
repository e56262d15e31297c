"""A run report written twice from one description: ``report.md`` and a self-contained
``report.html`` (plots inlined as base64 PNG, no scripts, no network), so it can be mailed or
opened offline. Sections hold paragraphs, tables (pandas) and figures (PNG files)."""
from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from storage.statefiles import write_text_atomic

STYLE = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
         "table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ccc;padding:.2rem .5rem;"
         "text-align:right;font-size:.9rem}th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}"
         "code,pre{background:#f6f6f6;padding:.1rem .3rem}pre{padding:.5rem;overflow-x:auto}")


@dataclass
class Section:
    """One titled part of a report."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[pd.DataFrame] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    code: str | None = None


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(str(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def render_markdown(title: str, sections: list[Section], folder: Path) -> str:
    """Markdown with figures linked relative to ``folder`` (where report.md is written)."""
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.title}")
        parts += section.paragraphs
        parts += [_markdown_table(t) for t in section.tables]
        parts += [f"![{f.stem}]({os.path.relpath(f, folder)})" for f in section.figures if f.is_file()]
        if section.code:
            parts.append(f"```\n{section.code}\n```")
    return "\n\n".join(parts) + "\n"


def _inline_png(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _html_table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, float_format=lambda v: f"{v:.4g}", escape=True)


def render_html(title: str, sections: list[Section]) -> str:
    """One HTML file with every figure inlined."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        body += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
        body += [_html_table(t) for t in section.tables]
        body += [_inline_png(f) for f in section.figures if f.is_file()]
        if section.code:
            body.append(f"<pre>{html.escape(section.code)}</pre>")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(folder: Path, title: str, sections: list[Section]) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``folder`` atomically; returns both paths."""
    md, page = folder / "report.md", folder / "report.html"
    write_text_atomic(md, render_markdown(title, sections, folder))
    write_text_atomic(page, render_html(title, sections))
    return md, page
