"""A table as the report shows it, rendered once as Markdown and once as HTML, so the two files
never disagree about a number."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Table", "md_text", "text_table"]

_TAG = re.compile(r"<(/?[A-Za-z][\w-]*)>")


def md_text(text: str) -> str:
    """Markdown renderers read ``<analyze>`` as an HTML tag and hide it: write it as code."""
    return _TAG.sub(r"`<\1>`", text)


def _md_cell(text: str) -> str:
    return md_text(text.replace("\\", "\\\\").replace("|", "\\|")).replace("\n", "<br>")


@dataclass(frozen=True, slots=True)
class Table:
    """A titled grid of preformatted cells. The first column is text (run or source names), the
    others are right-aligned numbers unless ``text_columns`` names them."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""
    text_columns: frozenset[int] = frozenset({0})

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"table {self.title!r}: a row has {len(row)} cells for {len(self.columns)} columns")

    def to_markdown(self) -> str:
        align = ["---" if i in self.text_columns else "---:" for i in range(len(self.columns))]
        lines = [f"**{md_text(self.title)}**", ""] if self.title else []
        if self.note:
            lines += [md_text(self.note), ""]
        lines += ["| " + " | ".join(_md_cell(c) for c in self.columns) + " |", "| " + " | ".join(align) + " |"]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        def cell(tag: str, i: int, text: str) -> str:
            cls = "" if i in self.text_columns or tag == "th" else ' class="num"'
            return f"<{tag}{cls}>{html.escape(text)}</{tag}>"

        head = "".join(cell("th", i, c) for i, c in enumerate(self.columns))
        body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in self.rows)
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        title = f"<h3>{html.escape(self.title)}</h3>" if self.title else ""
        return (f"{title}{note}<div class=\"table-wrap\"><table class=\"grid\">"
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>\n")


def text_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], note: str = "") -> Table:
    """A table whose every column is text."""
    return Table(title, tuple(columns), tuple(tuple(r) for r in rows), note, frozenset(range(len(columns))))
