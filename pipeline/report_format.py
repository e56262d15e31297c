"""A run report written twice from one description: ``report.md`` and a self-contained
``report.html`` (plots inlined as base64 PNG, no scripts, no network), so it can be mailed or
opened offline. Sections hold paragraphs, tables (pandas), figures (PNG files) and a code block,
optionally folded away (``<details>`` in the HTML). The HTML comes from the Jinja2 template
``pipeline/templates/report.html.j2`` with autoescaping on, so no text from a run (a spec
name, an error message) can inject markup."""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from storage.statefiles import write_text_atomic

TEMPLATE = "report.html.j2"


@dataclass
class Section:
    """One titled part of a report. ``folded``: the summary line under which the HTML folds
    ``code`` away (None: shown open)."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[pd.DataFrame] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    code: str | None = None
    folded: str | None = None


def _cell(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def _markdown_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(str(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def render_markdown(title: str, sections: list[Section], folder: Path, status: str | None = None) -> str:
    """Markdown with figures linked relative to ``folder`` (where report.md is written)."""
    parts = [f"# {title}"] + ([f"Run status: **{status}**"] if status else [])
    for section in sections:
        parts.append(f"## {section.title}")
        parts += section.paragraphs
        parts += [_markdown_table(t) for t in section.tables]
        parts += [f"![{f.stem}]({os.path.relpath(f, folder)})" for f in section.figures if f.is_file()]
        if section.code:
            parts.append(f"```\n{section.code}\n```")
    return "\n\n".join(parts) + "\n"


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    environment = jinja2.Environment(loader=jinja2.PackageLoader("pipeline", "templates"), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return environment.get_template(TEMPLATE)


def _template_section(section: Section) -> dict[str, object]:
    """What the template reads: plain strings only (it escapes every one of them)."""
    return {"title": section.title, "paragraphs": section.paragraphs, "code": section.code, "folded": section.folded,
            "tables": [{"columns": [str(c) for c in t.columns],
                        "rows": [[_cell(v) for v in row] for row in t.itertuples(index=False)]}
                       for t in section.tables],
            "figures": [{"alt": f.stem, "data": base64.b64encode(f.read_bytes()).decode("ascii")}
                        for f in section.figures if f.is_file()]}


def render_html(title: str, sections: list[Section], status: str | None = None) -> str:
    """One HTML file with every figure inlined."""
    return _template().render(title=title, status=status, sections=[_template_section(s) for s in sections]) + "\n"


def write_report(folder: Path, title: str, sections: list[Section], status: str | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``folder`` atomically; returns both paths.
    ``status``: the run's status as the report should state it."""
    md, page = folder / "report.md", folder / "report.html"
    write_text_atomic(md, render_markdown(title, sections, folder, status))
    write_text_atomic(page, render_html(title, sections, status))
    return md, page
