"""The pieces of a self-contained HTML page: escaping, tables, status badges, sections and the
page itself with its inline stylesheet. Nothing here refers to anything outside the file."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

# C0 controls but tab/newline/CR, DEL and C1 controls: model output holds them at times, and
# they are invalid in HTML and act on a terminal (escape sequences) when Markdown is printed
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """`text` with every control character written out as `\\xNN`."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class Raw(str):
    """Markup that is already safe: inserted as is, where any other value is escaped."""


CSS = """
:root { color-scheme: light; --muted: #6b7280; --line: #e5e7eb; }
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 16px 24px 48px; color: #111827; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px;
     border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
nav { font-size: 13px; margin: 8px 0 0; } nav a { margin-right: 12px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: right; }
th { background: #f9fafb; } td:first-child, th:first-child { text-align: left; }
td.text { text-align: left; max-width: 520px; }
.muted, .missing { color: var(--muted); }
.badge { display: inline-block; border-radius: 9px; padding: 0 8px; font-size: 12px;
         background: #e5e7eb; }
.badge.complete { background: #dcfce7; color: #166534; }
.badge.failed, .badge.missing { background: #fee2e2; color: #991b1b; }
.badge.interrupted, .badge.running { background: #fef3c7; color: #92400e; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
svg.plot { border: 1px solid var(--line); border-radius: 6px; background: #fff; }
ul.problems { color: #991b1b; }
details { border: 1px solid var(--line); border-radius: 6px; margin: 6px 0; padding: 4px 10px; }
summary { cursor: pointer; }
pre { background: #f3f4f6; padding: 8px; overflow-x: auto; white-space: pre-wrap;
      font-size: 12px; max-height: 360px; }
span.heat { display: block; margin: -3px -8px; padding: 3px 8px; min-width: 28px; }
"""


def cell(value: Any, digits: int = 3) -> str:
    """One value as HTML: markup as is, None as a muted dash, floats rounded, the rest escaped."""
    if isinstance(value, Raw):
        return value
    if value is None:
        return '<span class="missing">-</span>'
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> Raw:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    head = f"<thead><tr>{head}</tr></thead>" if head else ""
    body = "".join("<tr>" + "".join(_td(v) for v in row) + "</tr>" for row in rows)
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return Raw(f"<table>{cap}{head}<tbody>{body}</tbody></table>")


def _td(value: Any) -> str:
    text_like = isinstance(value, str) and not isinstance(value, Raw) and len(value) > 24
    return f'<td class="text">{cell(value)}</td>' if text_like else f"<td>{cell(value)}</td>"


def badge(status: str) -> Raw:
    return Raw(f'<span class="badge {escape(status)}">{escape(status)}</span>')


def signed(value: float | None) -> Raw | None:
    return None if value is None else Raw(f"{value:+.3f}")


def heat(count: int, peak: int) -> Raw:
    """A matrix cell shaded by its share of the largest count."""
    alpha = 0.0 if not peak else 0.12 + 0.6 * count / peak
    style = f' style="background: rgba(37, 99, 235, {alpha:.2f})"' if count else ""
    return Raw(f'<span class="heat"{style}>{count}</span>')


def missing(text: str) -> Raw:
    return Raw(f'<p class="missing">missing: {escape(text)}</p>')


def problems(lines: Sequence[str]) -> Raw:
    if not lines:
        return Raw("")
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return Raw(f'<h3>What is missing</h3><ul class="problems">{items}</ul>')


def pre(text: str | None) -> Raw:
    if text and not text.strip():  # a reply of blank lines would show as an empty box
        return Raw(f'<p class="muted">(blank: {len(text)} whitespace characters)</p>')
    return Raw(f"<pre>{escape(text or '')}</pre>")


def charts(*svgs: str) -> Raw:
    return Raw('<div class="charts">' + "".join(svgs) + "</div>")


Section = tuple[str, str, str]  # (anchor id, heading, body HTML)


def page(title: str, header: str, sections: Sequence[Section]) -> str:
    nav = "".join(f'<a href="#{escape(i)}">{escape(h)}</a>' for i, h, _ in sections)
    body = "".join(
        f'<section id="{escape(i)}"><h2>{escape(h)}</h2>{b}</section>' for i, h, b in sections
    )
    return visible(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"{header}<nav>{nav}</nav>{body}</body></html>\n"
    )
