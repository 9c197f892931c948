"""report.html: the package's template with the tables, the figures (base64 PNG) and the data
(``<script type="application/json" id="data">``) put in, so the file opens anywhere with no server
and no network."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from gtalign.report._plots import Plot
from gtalign.report._tables import Table
from gtalign.report._viewer import json_for_script

__all__ = ["render_html"]

_SLOT = re.compile(r"<!--@(\w+)@-->")


def _template() -> str:
    return resources.files("gtalign.report").joinpath("template.html").read_text(encoding="utf-8")


def _figure(plot: Plot) -> str:
    data = base64.b64encode(plot.path.read_bytes()).decode("ascii")
    return (f'<figure class="plot" id="plot-{html.escape(plot.name)}"><img alt="{html.escape(plot.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(plot.caption)}</figcaption></figure>\n')


def _list(items: Sequence[str], empty: str) -> str:
    if not items:
        return f'<p class="note">{html.escape(empty)}</p>'
    return '<ul class="problems">' + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def render_html(*, title: str, meta: str, sections: Sequence[tuple[str, Sequence[Table], str]],
                plots: Sequence[Plot], advbench: Sequence[str], problems: Sequence[str], data: Mapping[str, Any]) -> str:
    """Fill the template. ``sections`` are (heading, tables, note) for the summary tab."""
    summary = []
    for heading, tables, note in sections:
        summary.append(f"<h2>{html.escape(heading)}</h2>")
        if note:
            summary.append(f'<p class="note">{html.escape(note)}</p>')
        summary += [t.to_html() for t in tables]
    summary.append("<h2>advbench scoring</h2>" + _list(advbench, "No runs."))
    slots = {
        "title": html.escape(title),
        "meta": html.escape(meta),
        "summary": "\n".join(summary),
        "plots": "".join(_figure(p) for p in plots) or '<p class="note">No plots.</p>',
        "problems": "<h2>Problems</h2>" + _list(problems, "None: every line of every run log was read."),
        "problem_count": f"({len(problems)})",
        "data": json_for_script(data),
    }
    # One pass: text put into a slot is never searched for further slots.
    return _SLOT.sub(lambda m: slots[m.group(1)], _template())
