"""`shardsql explain --format html`: the review report as one self-contained page, its charts inline SVG.

The page loads nothing (no script, no font, no CDN: its content security policy blocks every
request), so it opens offline and a hostile sample text cannot reach out; every text in it is
escaped. explain_report.py lays the report out and calls `svg_chart` for each chart; the
command line wraps the sections in `html_page_start` and `html_page_end`.
"""

from __future__ import annotations

import html
from collections.abc import Iterator

SERIES_COLOURS = ("#8c96a3", "#2f6fdf", "#e07b24")
_ROW = 18  # pixels a bin
_BAR = 220  # pixels of the longest bar
_LABEL = 90  # pixels of the bins' labels
_COLUMN = _BAR + 70  # pixels a series: its bar and count

PAGE_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;
color:#1f2328}
h1{font-size:1.5em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0}th,td{border:1px solid #d0d7de;padding:3px 9px}
td:not(:first-child),th:not(:first-child){text-align:right}th{background:#f6f8fa}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:90%;background:#f6f8fa;padding:1px 4px}
svg{display:block;margin:.6em 0 1.2em}svg text{font:12px system-ui,sans-serif;fill:#1f2328}
svg text.title{font-weight:600;font-size:13px}
.samples li{margin:.3em 0;word-break:break-word}.facts{color:#59636e;font-style:italic}
"""


def html_page_start(title: str) -> Iterator[str]:
    """The start of `--format html`'s page: self-contained (no script, no request: its CSP says so)."""
    yield "<!DOCTYPE html>"
    yield '<html lang="en"><head><meta charset="utf-8">'
    yield ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
           'img-src data:">')  # fmt: skip
    yield f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}</style></head><body>"
    yield f"<h1>{html.escape(title)}</h1>"


def html_page_end() -> Iterator[str]:
    yield "</body></html>"


def svg_chart(title: str, labels: list[str], names: list[str], rows: list[list[int]]) -> Iterator[str]:
    """A histogram as inline SVG: a row a bin, a bar a series (its colour), all on one scale."""
    most = max((n for row in rows for n in row), default=0) or 1
    top = 40
    width = _LABEL + _COLUMN * len(names)
    height = top + _ROW * len(rows) + 6
    yield (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">')  # fmt: skip
    yield f'<text class="title" x="0" y="14">{html.escape(title)}</text>'
    for j, name in enumerate(names):
        x = _LABEL + j * _COLUMN
        colour = SERIES_COLOURS[j % len(SERIES_COLOURS)]
        yield f'<rect x="{x}" y="22" width="10" height="10" fill="{colour}"/>'
        yield f'<text x="{x + 14}" y="31">{html.escape(name)}</text>'
    for i, (label, row) in enumerate(zip(labels, rows, strict=True)):
        y = top + i * _ROW
        yield f'<text x="{_LABEL - 8}" y="{y + 13}" text-anchor="end">{html.escape(label)}</text>'
        for j, n in enumerate(row):
            x = _LABEL + j * _COLUMN
            length = 0 if label == "NULL" else round(_BAR * n / most, 1)
            colour = SERIES_COLOURS[j % len(SERIES_COLOURS)]
            yield (f'<rect class="bar" x="{x}" y="{y + 2}" width="{length}" height="{_ROW - 4}" fill="{colour}">'
                   f"<title>{html.escape(names[j])}, {html.escape(label)}: {n:,}</title></rect>")  # fmt: skip
            yield f'<text x="{x + length + 4}" y="{y + 13}">{n:,}</text>'
    yield "</svg>"
