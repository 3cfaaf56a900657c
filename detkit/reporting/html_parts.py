"""Building blocks of the offline HTML pages (``report.html``, run comparisons): one page
skeleton with its stylesheet and a small table-sorting script inline, tables, pictures.

Everything a page needs is inside it or beside it: no CDN, no server, no external fonts, so a
run folder copied anywhere (or opened from a file browser) shows the same page. Pictures are
linked by relative path. Every text that comes from data (class names, paths) is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222; }
header { background: #263238; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 22px; }
header p { margin: 4px 0 0; color: #cfd8dc; font-size: 13px; }
nav { background: #eceff1; padding: 8px 24px; font-size: 14px; position: sticky; top: 0; }
nav a { margin-right: 14px; color: #1565c0; text-decoration: none; }
main { padding: 8px 24px 40px; }
section { margin-top: 26px; }
h2 { border-bottom: 2px solid #cfd8dc; padding-bottom: 4px; font-size: 19px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #cfd8dc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eceff1; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-dir="asc"]::after { content: " \\25B2"; }
table.sortable th[data-dir="desc"]::after { content: " \\25BC"; }
tfoot td { font-weight: bold; background: #fafafa; }
td.up { color: #2e7d32; } td.down { color: #c62828; }
img { max-width: 100%; border: 1px solid #cfd8dc; margin: 6px 0; }
.note { color: #546e7a; font-size: 13px; }
.warning { background: #fff3e0; border-left: 4px solid #fb8c00; padding: 6px 10px; }
.pair { display: flex; gap: 12px; flex-wrap: wrap; }
.pair > div { flex: 1 1 420px; }
"""

# Clicking a header sorts the body rows by that column: numbers by the cell's data-value
# (empty = not available, sorted last), text otherwise; a second click reverses. The footer
# (mean row) stays where it is.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var direction = th.dataset.dir === "asc" ? "desc" : "asc";
      table.querySelectorAll("thead th").forEach(function (other) { delete other.dataset.dir; });
      th.dataset.dir = direction;
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[column];
        if (cell.dataset.value === undefined) { return cell.textContent.trim().toLowerCase(); }
        return cell.dataset.value === "" ? null : parseFloat(cell.dataset.value);
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) { return (x === null) - (y === null); }
        var order = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
        return direction === "asc" ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def number(value: float | int | None, digits: int = 3) -> float | int | None:
    """None for a missing, non-finite or pycocotools-undefined (-1) value."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    value = float(value)
    return None if not math.isfinite(value) or value == -1.0 else round(value, digits)


def cell(value: object, *, digits: int = 3, signed: bool = False, tag: str = "td") -> str:
    """A table cell; numbers carry ``data-value`` for sorting, None shows as "n/a"."""
    if isinstance(value, int | float) and not isinstance(value, bool) or value is None:
        shown = number(value, digits) if not isinstance(value, int) else value
        if shown is None:
            return f'<{tag} data-value="">n/a</{tag}>'
        text = (
            f"{shown:+.{digits}f}"
            if signed
            else (str(shown) if isinstance(shown, int) else f"{shown:.{digits}f}")
        )
        kind = ' class="up"' if signed and shown > 0 else (' class="down"' if signed and shown < 0 else "")
        return f'<{tag}{kind} data-value="{shown}">{text}</{tag}>'
    return f"<{tag}>{escape(value)}</{tag}>"


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    footer: Sequence[str] | None = None,
    sortable: bool = False,
    table_id: str | None = None,
) -> str:
    """``rows`` and ``footer`` hold cells made by :func:`cell`."""
    attributes = (' class="sortable"' if sortable else "") + (f' id="{escape(table_id)}"' if table_id else "")
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    foot = f"<tfoot><tr>{''.join(footer)}</tr></tfoot>" if footer else ""
    return f"<table{attributes}><thead><tr>{head}</tr></thead><tbody>{body}</tbody>{foot}</table>"


def picture(source: str, alt: str) -> str:
    return f'<img src="{escape(source)}" alt="{escape(alt)}">'


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """A whole page: ``sections`` are ``(anchor, heading, inner HTML)``, linked from the top bar."""
    links = "".join(f'<a href="#{escape(anchor)}">{escape(heading)}</a>' for anchor, heading, _ in sections)
    body = "".join(
        f'<section id="{escape(anchor)}"><h2>{escape(heading)}</h2>{inner}</section>'
        for anchor, heading, inner in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>"
        f"<nav>{links}</nav><main>{body}</main><script>{SORT_SCRIPT}</script></body></html>\n"
    )
