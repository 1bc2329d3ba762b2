"""`shardsql explain`'s review report, as text for a terminal or as markdown for a pull request.

One layout, two renderings: headings, tables, charts and lists of sample texts are laid out
once here and written either as aligned text (charts of block characters, or of `#` where
the terminal cannot show them) or as GitHub-flavoured markdown (tables, charts in a fenced
block, sample texts escaped so that no text in a dataset can break the page or inject HTML).
What is shown is computed in commands/explain.py and commands/review.py; nothing here reads
data.
"""

from __future__ import annotations

import html
import os
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .autoresearch import BYTES_PER_TOKEN
from .commands import review
from .definition.mixture import percent
from .explain_html import svg_chart
from .wording import count, format_size

if TYPE_CHECKING:
    from .commands.explain import Funnel, Measured

FORMATS = ("text", "markdown")
SAMPLE_CHARS = 200  # a sample text is cut to this many characters, then "…"
BAR_WIDTH = 24  # characters of the longest bar in a chart
EIGHTHS = " ▏▎▍▌▋▊▉"
LENGTH_CHART = "text length (characters)"


@dataclass(frozen=True)
class Style:
    markdown: bool = False
    unicode: bool = True  # block characters in charts (text: where the terminal shows them)
    html: bool = False  # a self-contained page: html_page_start, then each section, then html_page_end

    @property
    def plain(self) -> bool:
        return not (self.markdown or self.html)


def terminal_style() -> Style:
    """Text, with block characters unless the terminal is dumb or its encoding not UTF-8."""
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    return Style(markdown=False, unicode=os.environ.get("TERM") != "dumb" and encoding == "utf8")


def style_for(fmt: str) -> Style:
    """The Style of a --format: text (for this terminal), markdown or html."""
    if fmt == "markdown":
        return Style(markdown=True)
    if fmt == "html":
        return Style(html=True)
    return terminal_style()


# --- pieces -------------------------------------------------------------------------------------


def _esc(text: str, style: Style) -> str:
    """Text from the data or the user (a name, a path, a URL) as this format shows it verbatim."""
    return html.escape(text, quote=True) if style.html else text


def _strong(markup: str, style: Style) -> str:
    if style.html:
        return f"<strong>{markup}</strong>"
    return f"**{markup}**" if style.markdown else markup


def _para(markup: str, style: Style) -> Iterator[str]:
    """A paragraph (its pieces already escaped with _esc, _code or _strong)."""
    if style.html:
        yield f"<p>{markup}</p>"
    else:
        yield markup
        if style.markdown:
            yield ""


def _heading(text: str, level: int, style: Style) -> Iterator[str]:
    if style.html:
        yield f"<h{level}>{html.escape(text)}</h{level}>"
        return
    yield ""
    if style.markdown:
        yield f"{'#' * level} {text}"
        yield ""
    elif level <= 2:
        yield f"== {text} =="
    else:
        yield text
        yield "-" * min(len(text), 100)


def _code(text: str, style: Style) -> str:
    if style.html:
        return f"<code>{html.escape(text)}</code>"
    if not style.markdown:
        return text
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], style: Style) -> Iterator[str]:
    """A table, its first column left-aligned and the others right-aligned (cells: markup)."""
    if style.html:
        yield "<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>"
        for row in rows:
            yield "<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
        yield "</tbody></table>"
        return
    if style.markdown:
        yield "| " + " | ".join(_cell(h) for h in header) + " |"
        yield "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"
        for row in rows:
            yield "| " + " | ".join(_cell(c) for c in row) + " |"
        yield ""
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [f"{row[0]:<{widths[0]}}"] + [f"{c:>{w}}" for c, w in zip(row[1:], widths[1:], strict=True)]
        yield ("  " + "  ".join(cells)).rstrip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else " "


def bar(count: int, most: int, unicode: bool, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of `count` out of `most` (the longest), in eighths of a character."""
    if most <= 0 or count <= 0:
        return ""
    eighths = max(round(8 * width * count / most), 1)
    if not unicode:
        return "#" * max(round(eighths / 8), 1)
    return "█" * (eighths // 8) + (EIGHTHS[eighths % 8] if eighths % 8 else "")


def chart(title: str, bins: review.Bins, series: Sequence[tuple[str, list[Any]]], style: Style) -> Iterator[str]:
    """Histograms of several series on the same bins and scale, side by side, a row a bin (and
    a row for NULL where there are any)."""
    if not bins.edges:
        return
    counts = [bins.counts(values) for _, values in series]
    nulls = [sum(1 for v in values if v is None) for _, values in series]
    labels = [*bins.labels, *(["NULL"] if any(nulls) else [])]
    if style.html:
        rows = [[c[i] for c in counts] for i in range(len(bins.labels))] + ([nulls] if any(nulls) else [])
        yield from svg_chart(title, labels, [name for name, _ in series], rows)
        return
    most = max(max(c) for c in counts)
    digits = max(len(f"{n:,}") for c in counts + [nulls] for n in c)
    label_width = max(len(label) for label in labels)
    unicode = style.unicode or style.markdown
    # As wide as a bar and its count, or as the series' longest name: a heading is never cut.
    column = max(BAR_WIDTH + 1 + digits, *(len(name) for name, _ in series))

    def cell(n: int, counted: bool = True) -> str:
        drawn = bar(n, most, unicode) if counted else ""
        return f"{f'{drawn:<{BAR_WIDTH}} {n:>{digits},}':<{column}}"

    lines = [f"{title}"]
    lines.append(f"{'':<{label_width}}  " + "  ".join(f"{name:<{column}}" for name, _ in series).rstrip())
    for i, label in enumerate(bins.labels):
        lines.append(f"{label:>{label_width}}  " + "  ".join(cell(c[i]) for c in counts))
    if any(nulls):
        lines.append(f"{'NULL':>{label_width}}  " + "  ".join(cell(n, counted=False) for n in nulls))
    if style.markdown:
        yield "```text"
        yield from lines
        yield "```"
        yield ""
    else:
        yield ""
        yield from ("  " + line.rstrip() for line in lines)


def readable(text: str | None, limit: int = SAMPLE_CHARS) -> str:
    """A sample text on one line, safe to print: line breaks as ⏎, other control and
    bidirectional-override characters as �, cut to `limit` characters with "…"."""
    if text is None:
        return "NULL"
    out = []
    for ch in text[: limit + 1]:
        if ch in "\r\n":
            out.append("⏎")
        elif ch == "\t":
            out.append(" ")
        elif unicodedata.category(ch) == "Cc" or "\u202a" <= ch <= "\u202e" or "\u2066" <= ch <= "\u2069":
            out.append("�")
        else:
            out.append(ch)
    line = "".join(out).replace("⏎⏎", "⏎")
    return line[:limit].rstrip() + "…" if len(text) > limit else line


_MARKDOWN_SPECIAL = set("\\`*_{}[]()<>#+-.!|~&")


def _escape(text: str) -> str:
    """Markdown that shows `text` as it is: every character markdown or HTML could read escaped."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in text)


def _samples(samples: list[review.Sample], score: str | None, style: Style) -> Iterator[str]:
    if style.html:
        yield '<ul class="samples">'
    for s in samples:
        facts = [f"{s.chars:,} chars" if s.chars is not None else "NULL text"]
        if score is not None:
            facts.append(f"{score} {'NULL' if s.score is None else _number(s.score)}")
        text = readable(s.text)
        if style.html:
            yield f'<li><span class="facts">{html.escape(", ".join(facts))}</span> {html.escape(text)}</li>'
        elif style.markdown:
            yield f"- *{', '.join(facts)}:* {_escape(text)}"
        else:
            yield f"    - ({', '.join(facts)}) {text}"
    if style.html:
        yield "</ul>"
    if style.markdown:
        yield ""


def _number(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:.3g}"


def _pct(part: int, whole: int | None) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


# --- the report ---------------------------------------------------------------------------------


def explained(m: Measured, style: Style) -> Iterator[str]:
    """One definition measured by `explain`: its sample, funnel, what it keeps, its charts, what
    each condition removes; and for --against's definition how its output differs from the first's."""
    f, d = m.funnel, m.details
    name = f.definition.name
    if m.mixture is not None:
        c = m.mixture.components[m.component]
        yield from _heading(f"{c.definition.name}: {percent(c.weight)} of {m.mixture.name}'s {m.mixture.mix_by}", 2,
                            style)  # fmt: skip
    elif m.role == "first":
        if not style.plain:  # the text funnel's first line names it
            yield from _heading(f"explain {name}", 2, style)
    else:
        yield from _heading(f"against {name}", 2, style)
    if not style.plain:  # the text funnel's first line names it
        yield from _para(f"Definition: {_code(str(f.definition.path), style)}", style)
    if m.role == "own sample":
        line = f"{name} reads another source: measured on the first {count(m.table.num_rows)} of {m.source.url}"
    elif m.role == "same rows":
        line = "Measured on the same sample."
    else:
        pinned = f" (commit {m.source.commit[:12]})" if m.source.commit else ""
        fetched = format_size(m.source.counter.bytes)
        line = f"Sample: the first {count(m.table.num_rows)} of {m.source.url}{pinned}; fetched {fetched}"
    yield from _para(_esc(line, style), style)
    yield from _funnel(f, style)
    if d is None:
        return
    yield from _kept(f, d, style)
    yield from _distributions(name, f.sample_rows, d, style)
    yield from _removed(f, d, style)
    if m.compared_with is not None and m.compared_details is not None:
        yield from _difference(m, m.compared_with.name, m.compared_details, d, style)


def _funnel(f: Funnel, style: Style) -> Iterator[str]:
    if style.plain:
        yield ""
        yield from text_funnel(f)
        return
    rows = [["in", f"{f.sample_rows:,}", _pct(f.sample_rows, f.sample_rows), f"{f.chars_in:,}", "", ""]]
    for s in f.steps:
        rows.append([_code(s.condition, style), f"{s.rows:,}", _pct(s.rows, f.sample_rows), f"{s.chars:,}",
                     f"{s.removed:,}", f"{s.removed_alone:,}"])  # fmt: skip
    rows.append([_strong("out", style), _strong(f"{f.rows_out:,}", style), _pct(f.rows_out, f.sample_rows),
                 f"{f.chars_out:,}", "", ""])  # fmt: skip
    yield from _table(["condition", "rows left", "%", "chars", "removed", "removed alone"], rows, style)


def _tokens(n: int) -> int:
    return n // BYTES_PER_TOKEN


def _kept(f: Funnel, d: review.Details, style: Style) -> Iterator[str]:
    tokens = f"about {count(_tokens(d.bytes_out), 'token')}"
    if d.bytes_in:
        tokens += f" of {_tokens(d.bytes_in):,} ({_pct(d.bytes_out, d.bytes_in)}"
    tokens += ("; " if d.bytes_in else " (") + f"UTF-8 bytes / {BYTES_PER_TOKEN})"
    chars = count(f.chars_out, "character") + (
        f" of {f.chars_in:,} ({_pct(f.chars_out, f.chars_in)})" if f.chars_in else ""
    )
    line = f" {f.rows_out:,} of {count(f.sample_rows)} ({_pct(f.rows_out, f.sample_rows)}), {chars}, {tokens}"
    if style.plain:
        yield ""
    yield from _para(_strong("Kept:", style) + line, style)


def _quantile_rows(series: Sequence[list[Any]], change: bool) -> list[list[str]]:
    """Rows of a quantile table: p10..p99 and the mean of each series, and (`change`) how the
    last series differs from the one before it."""
    qs = [review.quantiles(s) for s in series]
    rows = []
    for q in review.QUANTILES:
        values = [x.get(q) for x in qs]
        row = [f"p{round(q * 100)}", *("-" if v is None else f"{v:,}" for v in values)]
        if change:
            row.append(_change(values[-2], values[-1]))
        rows.append(row)
    means = [_mean(s) for s in series]
    row = ["mean", *("-" if v is None else f"{v:,.0f}" for v in means)]
    if change:
        row.append(_change(means[-2], means[-1]))
    rows.append(row)
    return rows


def _mean(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _change(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "-"
    delta = after - before
    relative = f" ({_signed(100 * delta / before)}%)" if before else ""
    return f"{_signed(delta)}{relative}"


def _signed(x: float) -> str:
    """x rounded, with its sign, and 0 for what rounds to it (not -0)."""
    return f"{x:+,.0f}" if round(x) else "0"


def _distributions(name: str, sample_rows: int, d: review.Details, style: Style) -> Iterator[str]:
    if d.lengths_in is not None:
        series: list[tuple[str, list[Any]]] = [("before", d.lengths_in), (f"kept by {name}", d.lengths_out)]
    else:
        series = [(f"kept by {name}", d.lengths_out)]
    if style.plain:
        yield ""
    yield from _table(["text length (chars)", *(label for label, _ in series)],
                      _quantile_rows([values for _, values in series], change=False), style)  # fmt: skip
    yield from chart(LENGTH_CHART, review.length_bins(*(v for _, v in series)), series, style)
    if d.score_column is not None and d.scores_in is not None:
        scores: list[tuple[str, list[Any]]] = [("before", d.scores_in)]
        if d.scores_out is not None:
            scores.append((f"kept by {name}", d.scores_out))
        yield from chart(d.score_column, review.score_bins(*(v for _, v in scores)), scores, style)


def _removed(f: Funnel, d: review.Details, style: Style) -> Iterator[str]:
    if not any(d.removed):
        return
    yield from _heading("What each condition removes (after the ones before it)", 3, style)
    score = d.score_column if d.scores_out is not None else None
    for step, samples in zip(f.steps, d.removed, strict=True):
        line = f"{_code(step.condition, style)} removes {count(step.removed)} ({_pct(step.removed, f.sample_rows)})"
        if style.plain:
            yield f"  {line}" + (", e.g.:" if samples else ".")
        else:
            yield from _para(_strong(line, style) + (", e.g.:" if samples else "."), style)
        yield from _samples(samples, score, style)


def _difference(m: Measured, first: str, a: review.Details, b: review.Details, style: Style) -> Iterator[str]:
    second = m.funnel.definition.name
    diff = m.comparison
    what = "what the edit changes" if diff is not None else "the kept text compared"
    yield from _heading(f"{first} → {second}: {what}", 3, style)
    if diff is not None:
        yield from _para(
            f"On the same rows: {count(diff.both, 'text')} kept by both, {diff.only_first:,} only by {first}, "
            f"{diff.only_second:,} only by {second}.",
            style,
        )
    else:
        yield from _para(f"{second} reads another source: its sample is not the same rows, so only the shapes "
                         "compare.", style)  # fmt: skip
    if style.plain:
        yield ""
    rows = [
        ["rows kept", f"{len(a.lengths_out):,}", f"{len(b.lengths_out):,}",
         _change(len(a.lengths_out), len(b.lengths_out))],
        ["tokens kept (about)", f"{_tokens(a.bytes_out):,}", f"{_tokens(b.bytes_out):,}",
         _change(_tokens(a.bytes_out), _tokens(b.bytes_out))],
        *_quantile_rows([a.lengths_out, b.lengths_out], change=True),
    ]  # fmt: skip
    yield from _table(["kept length (chars)", first, second, "change"], rows, style)
    series = [(f"kept by {first}", a.lengths_out), (f"kept by {second}", b.lengths_out)]
    yield from chart(LENGTH_CHART, review.length_bins(a.lengths_out, b.lengths_out), series, style)
    if a.scores_out is not None and b.scores_out is not None and a.score_column == b.score_column:
        scores = [(f"kept by {first}", a.scores_out), (f"kept by {second}", b.scores_out)]
        yield from chart(str(a.score_column), review.score_bins(a.scores_out, b.scores_out), scores, style)
    if diff is None:
        return
    score = None  # the texts only one side keeps are compared as texts: no score beside them
    for who, kept, samples in ((first, diff.only_first, diff.only_first_samples),
                                (second, diff.only_second, diff.only_second_samples)):  # fmt: skip
        if not samples:
            continue
        line = f"Only {who} keeps {count(kept, 'text')}, e.g.:"
        if style.plain:
            yield ""
            yield f"  {line}"
        else:
            if style.markdown:
                yield ""
            yield from _para(_strong(line, style), style)
        yield from _samples(samples, score, style)


def text_funnel(f: Funnel) -> Iterator[str]:
    """What each condition of a WHERE clause removes, as a table."""

    def pct(n: int) -> str:
        return f"{100 * n / f.sample_rows:5.1f}%" if f.sample_rows else "    -"

    yield f"{f.definition.name}  ({f.definition.path})"
    width = max([len(s.condition) for s in f.steps] + [20])
    yield f"  {'':<{width}}  {'rows':>9} {'':>6}  {'chars':>12}  {'removed':>9}  {'alone':>9}"
    yield f"  {'in':<{width}}  {f.sample_rows:>9,} {pct(f.sample_rows)}  {f.chars_in:>12,}"
    for s in f.steps:
        yield (
            f"  {s.condition:<{width}}  {s.rows:>9,} {pct(s.rows)}  {s.chars:>12,}  "
            f"{s.removed:>9,}  {s.removed_alone:>9,}"
        )
    yield f"  {'out':<{width}}  {f.rows_out:>9,} {pct(f.rows_out)}  {f.chars_out:>12,}"


# --- html ---------------------------------------------------------------------------------------
