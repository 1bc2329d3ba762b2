"""`shardsql explain`'s review report: distributions, tokens, removed and one-side samples, as
text and as markdown, measured on real parquet (a local folder or the Hub stand-in)."""

import math
import re
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import first_rows

from shardsql.cli import cli
from shardsql.commands import review
from shardsql.explain_report import SAMPLE_CHARS, bar, chart, readable, style_for

STRICTER = """\
-- description: FineWeb-Edu, int_score >= 4 and 100 characters or more
-- source: hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet

SELECT text FROM source
WHERE int_score >= 4 AND text IS NOT NULL AND length(text) >= 100
"""


def high(r):  # fineweb-edu-high's WHERE
    return (r["int_score"] is None or r["int_score"] >= 3) and r["text"] is not None and len(r["text"]) >= 50


def stricter(r):
    return r["int_score"] is not None and r["int_score"] >= 4 and r["text"] is not None and len(r["text"]) >= 100


def nearest_rank(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(math.ceil(q * len(ordered)) - 1, 0))]


def explain(*args):
    result = CliRunner().invoke(cli, ["explain", *args])
    assert result.exit_code == 0, result.output
    return result.output


def section(text, start, end=None):
    """The lines of `text` from the one starting with `start` up to the next starting with `end`."""
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(start))
    j = next((k for k in range(i + 1, len(lines)) if end is not None and lines[k].startswith(end)), len(lines))
    return lines[i:j]


def chart_rows(lines):
    """label -> the counts of each series, from a chart's rows (`  label  bar count  bar count`)."""
    rows = {}
    for line in lines:
        found = re.match(r"^\s*(\S+)\s{2}(.*)$", line)
        if found and re.search(r"\d\s*$", line):
            rows[found.group(1)] = [int(n.replace(",", "")) for n in re.findall(r"(?<![\w–])(\d[\d,]*)(?![\w–])",
                                                                                 found.group(2))]  # fmt: skip
    return rows


def test_markdown_report_of_one_definition(hub_dataset):
    folder = hub_dataset("fineweb-edu-high")
    rows = first_rows(folder, 2000)
    kept = [r for r in rows if high(r)]
    out = explain("fineweb-edu-high", "--sample-rows", "2000", "--format", "markdown")

    # The funnel as a markdown table, the condition in code.
    assert "| condition | rows left | % | chars | removed | removed alone |" in out
    assert '| `(length("text") >= 50)` |' in out
    assert f"| **out** | **{len(kept):,}** |" in out

    # Characters and tokens kept: UTF-8 bytes / 4.
    chars_in = sum(len(r["text"] or "") for r in rows)
    chars_out = sum(len(r["text"]) for r in kept)
    tokens_in = sum(len((r["text"] or "").encode()) for r in rows) // 4
    tokens_out = sum(len(r["text"].encode()) for r in kept) // 4
    assert (
        f"**Kept:** {len(kept):,} of 2,000 rows ({100 * len(kept) / 2000:.1f}%), {chars_out:,} characters of "
        f"{chars_in:,}" in out
    )
    assert f"about {tokens_out:,} tokens of {tokens_in:,}" in out

    # Length quantiles before and after, nearest rank.
    before = [len(r["text"]) for r in rows if r["text"] is not None]
    after = [len(r["text"]) for r in kept]
    assert "| text length (chars) | before | kept by fineweb-edu-high |" in out
    for q in (0.1, 0.5, 0.9, 0.99):
        assert f"| p{round(q * 100)} | {nearest_rank(before, q):,} | {nearest_rank(after, q):,} |" in out

    # Histograms in a fenced block: counts per bin match the rows, before and after.
    charts = section(out, "```text", "```")
    assert charts[1] == "text length (characters)"
    counted = chart_rows(charts[2:])
    bins = review.length_bins(before, after)
    for label, lo, hi in zip(bins.labels, bins.edges, [*bins.edges[1:], math.inf], strict=True):
        expected = [sum(1 for n in before if lo <= n < hi), sum(1 for n in after if lo <= n < hi)]
        assert counted[label] == expected, label
    assert counted["NULL"] == [sum(1 for r in rows if r["text"] is None), 0]
    assert "█" in "\n".join(charts)

    # The score's chart: int_score before and after, a bin a value.
    scores = section(out, "int_score", "```")
    counted = chart_rows(scores[2:])
    for value in range(6):
        expected = [sum(1 for r in rows if r["int_score"] == value), sum(1 for r in kept if r["int_score"] == value)]
        assert counted.get(str(value), [0, 0]) == expected, value

    # Each condition: a few texts it removes, after the ones before it.
    removed = section(out, '**`(length("text") >= 50)` removes', "**")
    samples = [line for line in removed if line.startswith("- ")]
    assert len(samples) == 3
    short = {r["text"] for r in rows if r["text"] is not None and len(r["text"]) < 50 and
             (r["int_score"] is None or r["int_score"] >= 3)}  # fmt: skip
    for line in samples:
        found = re.match(r"- \*(\d+) chars, int_score (\w+):\* (.*)$", line)
        assert found and int(found.group(1)) < 50
        assert any(len(t) == int(found.group(1)) and readable(t) == found.group(3).replace("\\", "") for t in short)
    low = section(out, "**`((int_score IS NULL) OR (int_score >= 3))` removes", "**")
    assert all(re.match(r"- \*\d+ chars, int_score [012]:\*", line) for line in low if line.startswith("- "))
    assert sum(line.startswith("- ") for line in low) == 3


def test_against_shows_texts_only_one_side_keeps_and_how_quantiles_move(hub_dataset, tmp_path):
    folder = hub_dataset("fineweb-edu-high")
    path = tmp_path / "edu4.sql"
    path.write_text(STRICTER)
    rows = first_rows(folder, 2000)
    a = Counter(r["text"] for r in rows if high(r))
    b = Counter(r["text"] for r in rows if stricter(r))
    out = explain("fineweb-edu-high", "--sample-rows", "2000", "--against", str(path), "--format", "markdown")

    assert "### fineweb-edu-high → edu4: what the edit changes" in out
    only_a = sum((a - b).values())
    assert f"**Only fineweb-edu-high keeps {only_a:,} texts, e.g.:**" in out
    assert "Only edu4 keeps" not in out, "a stricter filter keeps nothing new: no samples, no line"
    shown = section(out, "**Only fineweb-edu-high keeps", "#")
    texts = [re.sub(r"^- \*\d+ chars:\* ", "", line).replace("\\", "") for line in shown if line.startswith("- ")]
    assert len(texts) == 3
    dropped = {readable(t) for t in (a - b)}
    assert all(t in dropped for t in texts)

    # Quantiles of the kept lengths, each side, and the change.
    la = [len(t) for t in a.elements()]
    lb = [len(t) for t in b.elements()]
    assert "| kept length (chars) | fineweb-edu-high | edu4 | change |" in out
    for q in (0.1, 0.5, 0.9, 0.99):
        x, y = nearest_rank(la, q), nearest_rank(lb, q)
        relative = 100 * (y - x) / x
        change = (f"{y - x:+,}" if y != x else "0") + (f" ({relative:+.0f}%)" if round(relative) else " (0%)")
        assert f"| p{round(q * 100)} | {x:,} | {y:,} | {change} |" in out
    assert f"| rows kept | {len(la):,} | {len(lb):,} |" in out


def test_the_other_way_round_shows_what_only_the_looser_keeps(hub_dataset, tmp_path):
    hub_dataset("fineweb-edu-high")
    path = tmp_path / "edu4.sql"
    path.write_text(STRICTER)
    out = explain(str(path), "--sample-rows", "1000", "--against", "fineweb-edu-high")
    assert "Only fineweb-edu-high keeps" in out and "Only edu4 keeps" not in out
    assert "kept by edu4" in out and "kept by fineweb-edu-high" in out


def write_source(folder, texts, scores=None):
    folder.mkdir(parents=True, exist_ok=True)
    columns = {"text": pa.array(texts, pa.string())}
    if scores is not None:
        columns["quality"] = pa.array(scores, pa.float64())
    pq.write_table(pa.table(columns), folder / "part-0.parquet")
    return folder


def definition(tmp_path, folder, sql, name="mine"):
    path = tmp_path / f"{name}.sql"
    path.write_text(f"-- description: d\n-- source: {folder}\n\n{sql}\n")
    return str(path)


def test_text_report_draws_block_characters_and_ascii_where_the_terminal_cannot(tmp_path, monkeypatch):
    texts = ["a" * n for n in range(1, 400)] + [None]
    folder = write_source(tmp_path / "src", texts, [n / 400 for n in range(400)])
    path = definition(tmp_path, folder, "SELECT text FROM source WHERE length(text) >= 100")
    monkeypatch.setenv("TERM", "xterm-256color")
    out = explain(path, "--score", "quality")
    assert "█" in out and "quality" in out
    assert "Kept: 300 of 400 rows (75.0%)" in out
    # 1-2-3-5 bins: 1-9 holds 9 texts, 100-199 100 of them, both before; none of 1-9 after.
    counted = chart_rows(section(out, "  text length", "  quality"))
    assert counted["1–9"] == [9, 0] and counted["100–199"] == [100, 100] and counted["300–499"] == [100, 100]
    assert counted["NULL"] == [1, 0]
    # The score: 10 bins of equal width over its range, before and after.
    counted = chart_rows(section(out, "  quality", "What each"))
    assert sum(c[0] for c in counted.values()) == 400 and sum(c[1] for c in counted.values()) == 300

    monkeypatch.setenv("TERM", "dumb")
    plain = explain(path, "--score", "quality")
    assert "#" in plain and not any(ch in plain for ch in "█▏▎▍▌▋▊▉"), plain
    assert chart_rows(section(plain, "  text length", "  quality"))["100–199"] == [100, 100]


def test_samples_are_cut_escaped_and_deterministic(tmp_path):
    texts = [
        "<script>alert(1)</script> | a pipe, *stars* and `ticks` " + "x" * 300,
        "line one\nline two\x1b[31m red \u202e reversed",
        "short",
    ] + [f"long enough text number {i}" for i in range(50)]
    folder = write_source(tmp_path / "src", texts)
    path = definition(tmp_path, folder, "SELECT text FROM source WHERE length(text) < 30")
    out = explain(path, "--format", "markdown", "--samples", "5")
    assert "<script>" not in out and "\\<script\\>" in out
    assert "\\| a pipe, \\*stars\\* and \\`ticks\\`" in out
    cut = [line for line in out.splitlines() if "script" in line][0]
    assert cut.endswith("x…") and cut.count("x") < SAMPLE_CHARS
    assert "line one⏎line two�\\[31m red � reversed" in out
    assert out == explain(path, "--format", "markdown", "--samples", "5"), "the same sample, the same texts"
    terminal = explain(path, "--samples", "5")
    assert "\x1b" not in terminal and "\u202e" not in terminal

    none = explain(path, "--format", "markdown", "--samples", "0")
    assert "removes 2 rows (3.8%)**, e.g.:" in out
    assert "e.g." not in none and "What each condition removes" not in none


def test_readable_and_bar():
    assert readable(None) == "NULL"
    assert readable("é" * 250) == "é" * SAMPLE_CHARS + "…"
    assert readable("a\r\nb\tc") == "a⏎b c"
    assert bar(0, 10, True) == "" and bar(10, 10, True) == "█" * 24 and bar(1, 8 * 24, True) == "▏"
    assert bar(5, 10, False) == "#" * 12


def test_bins_and_quantiles():
    bins = review.length_bins([0, 5, 60, 2500])
    assert bins.labels == ["0", "1–9", "10–19", "20–29", "30–49", "50–99", "100–199", "200–299", "300–499",
                           "500–999", "1k–1999", "2k–2999"]  # fmt: skip
    assert bins.counts([0, 5, 60, 2500, None]) == [1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]
    assert review.score_bins([0, 5, 3, None]).labels == ["0", "1", "2", "3", "4", "5"]
    continuous = review.score_bins([0.0, 0.5, 1.0])
    assert len(continuous.labels) == 10 and continuous.counts([0.0, 0.5, 1.0]) == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    assert review.quantiles([None, 3, 1, 2]) == {0.1: 1, 0.5: 2, 0.9: 3, 0.99: 3}
    assert review.quantiles([None]) == {}


def test_a_union_is_measured_whole_with_no_before(tmp_path):
    folder = write_source(tmp_path / "src", ["alpha text", "beta", None])
    path = definition(tmp_path, folder, "SELECT text FROM source WHERE text LIKE 'a%' UNION ALL "
                                        "SELECT text FROM source WHERE text LIKE 'b%'")  # fmt: skip
    out = explain(path, "--format", "markdown")
    assert "| text length (chars) | kept by mine |" in out and "What each condition removes" not in out


def test_score_option_errors(tmp_path):
    folder = write_source(tmp_path / "src", ["alpha text"], [0.5])
    path = definition(tmp_path, folder, "SELECT text FROM source")
    result = CliRunner().invoke(cli, ["explain", path, "--score", "nope"])
    assert result.exit_code != 0 and "--score nope: the source has no such column (it has text, quality)" in (
        result.output
    )
    result = CliRunner().invoke(cli, ["explain", path, "--score", "text"])
    assert result.exit_code != 0 and "a number column is needed" in result.output


@pytest.mark.parametrize("sql", ["SELECT DISTINCT text FROM source WHERE quality > 0",
                                 "SELECT text FROM source WHERE quality > 0 GROUP BY text"])  # fmt: skip
def test_no_kept_score_where_selecting_it_would_change_the_rows(tmp_path, sql):
    folder = write_source(tmp_path / "src", ["same text"] * 3 + ["other"], [0.1, 0.2, 0.3, 0.4])
    out = explain(definition(tmp_path, folder, sql), "--score", "quality", "--format", "markdown")
    scores = section(out, "quality", "```")
    assert "before" in scores[1] and "kept by" not in scores[1]


def test_against_a_definition_of_another_source_compares_shapes_only(tmp_path):
    one = write_source(tmp_path / "one", ["x" * n for n in range(1, 200)])
    two = write_source(tmp_path / "two", ["y" * n for n in range(100, 300)])
    first = definition(tmp_path, one, "SELECT text FROM source WHERE length(text) >= 50", name="one")
    second = definition(tmp_path, two, "SELECT text FROM source WHERE length(text) >= 50", name="two")
    out = explain(first, "--against", second, "--format", "markdown")
    assert "two reads another source: measured on the first 200 rows of" in out
    assert "### one → two: the kept text compared" in out and "Only" not in out
    assert "| rows kept | 150 | 200 | +50 (+33%) |" in out
    assert f"| p50 | {nearest_rank(range(50, 200), 0.5)} | {nearest_rank(range(100, 300), 0.5)} |" in out


def test_a_charts_headings_are_never_cut_and_its_columns_line_up():
    """A series named longer than a bar and its count (a review's `kept by fineweb-edu_origin-main`)
    is named whole; each row's cells start where their headings do."""
    values = [5, 60, 60, 2500]
    series = [("kept by fineweb-edu_origin-main", values), ("kept by fineweb-edu", values[:2])]
    lines = list(chart("length", review.length_bins(values), series, style_for("text")))
    heading = next(line for line in lines if "kept by" in line)
    assert "kept by fineweb-edu_origin-main" in heading
    second = heading.rindex("kept by fineweb-edu")
    rows = [line for line in lines if re.match(r"\s+[0-9]", line)]
    assert rows and all(line[second - 2 : second] == "  " for line in rows), lines
