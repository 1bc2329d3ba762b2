"""`explain --format html`: a self-contained page, opened in a real headless browser (Debian's
chromium), whose DOM must hold the charts as SVG and the sample texts as text, never as markup."""

import re
import shutil
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from shardsql.cli import cli
from shardsql.commands import review

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs a headless chromium (apt-get install chromium)")

HOSTILE = '<img src=x onerror="alert(1)"></svg><script>alert(2)</script> & more text here' + "z" * 200


def dom(page):
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_html_page_renders_its_charts_and_shows_texts_as_text(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    texts = [HOSTILE, *("w" * n for n in range(1, 300)), None]
    scores = [1.0, *(n % 5 for n in range(1, 300)), None]
    pq.write_table(pa.table({"text": texts, "quality": pa.array(scores, pa.float64())}), folder / "part-0.parquet")
    one, two = tmp_path / "one.sql", tmp_path / "two.sql"
    one.write_text(f"-- description: d\n-- source: {folder}\n\nSELECT text FROM source WHERE length(text) >= 30\n")
    two.write_text(f"-- description: d\n-- source: {folder}\n\nSELECT text FROM source WHERE length(text) < 200\n")
    result = CliRunner().invoke(cli, ["explain", str(one), "--against", str(two), "--score", "quality",
                                      "--format", "html", "--samples", "300"])  # fmt: skip
    assert result.exit_code == 0, result.output
    page = tmp_path / "report.html"
    page.write_text(result.output)
    # Nothing to fetch: no URL but the SVG namespace's, and a policy that forbids any request.
    assert set(re.findall(r"https?://[^\s\"'<]+", result.output)) == {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in result.output

    rendered = dom(page)
    # The hostile text is a text node (serialized escaped), not elements: no <img>, no <script>.
    assert "<script" not in rendered and "<img" not in rendered
    assert (
        '&lt;img src=x onerror="alert(1)"&gt;&lt;/svg&gt;&lt;script&gt;alert(2)&lt;/script&gt; &amp; more' in rendered
    )
    # The charts: one <svg> each, a bar a bin and a series (the NULL row's bars of length 0).
    charts = re.findall(r"<svg.*?</svg>", rendered, re.S)
    lengths = [len(t) for t in texts if t is not None]
    one_kept = [n for n in lengths if n >= 30]
    two_kept = [n for n in lengths if n < 200]
    expected = [
        2 * (len(review.length_bins(lengths, one_kept).labels) + 1),  # one: before, kept (+ NULL)
        2 * len(review.score_bins(scores).labels) + 2,  # one's quality
        2 * (len(review.length_bins(lengths, two_kept).labels) + 1),  # two: before, kept (+ NULL)
        2 * len(review.score_bins(scores).labels) + 2,  # two's quality
        2 * len(review.length_bins(one_kept, two_kept).labels),  # one → two
        2 * len(review.score_bins(scores).labels),  # quality kept by each (no NULL kept)
    ]
    assert [c.count('class="bar"') for c in charts] == expected
    assert all('aria-label="' in c for c in charts)
    # The bar of the fullest bin is the longest; a bar's tooltip gives its count.
    assert re.search(r"<title>kept by one, 100–199: 100</title>", rendered)
    assert "<h2>against two</h2>" in rendered and "<h3>one → two: what the edit changes</h3>" in rendered
    assert "Only one keeps 101 texts, e.g.:" in rendered and "Only two keeps 29 texts, e.g.:" in rendered
