"""The generated samples (`shardsql/standin/samples.py`): the realistic one that `demo` and
`demo --serve` serve has the real sets' lengths with their long tails, FineWeb-Edu's scores 1
to 5, code shaped like code and abstracts like abstracts, and the README's offline commands
run on it as printed; the tests' short one stays short (the suite's time depends on it)."""

import ast
import re
import shlex
import statistics
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from shardsql.cli import cli
from shardsql.commands.demo import SERVE_FILES, SERVE_ROWS_PER_FILE, serving
from shardsql.standin.samples import LAYOUTS, write_sample

README = Path(__file__).resolve().parent.parent / "README.md"
SERVED_ROWS = SERVE_FILES * SERVE_ROWS_PER_FILE


def realistic(dataset: str, folder: Path, rows: int = SERVE_ROWS_PER_FILE) -> tuple[list[Path], list]:
    """`demo --serve`'s sample of `dataset` (its files and the rows as dicts)."""
    paths = write_sample(dataset, folder, SERVE_FILES, rows, 500, realistic=True)
    return paths, pq.read_table(paths).to_pylist()


@pytest.fixture(scope="module")
def edu(tmp_path_factory):
    return realistic("fineweb-edu", tmp_path_factory.mktemp("edu"))


def test_fineweb_edu_has_the_real_sets_lengths_with_a_long_tail(edu):
    _, rows = edu
    lengths = [len(r["text"]) for r in rows if r["text"]]
    assert len(rows) == SERVED_ROWS
    assert 2_500 <= statistics.median(lengths) <= 3_300  # FineWeb-Edu's ~2.9k characters
    assert 4_000 <= statistics.mean(lengths) <= 5_500  # ~4.7k: about 1,000 GPT-2 tokens a document
    assert sum(n > 10_000 for n in lengths) > len(rows) * 0.05
    assert max(lengths) > 50_000  # the README says the tail passes 50,000 characters
    assert min(lengths) < 50  # and the edge cases the filters must handle are there
    assert {None, ""} <= {r["text"] for r in rows}
    assert {49, 50} <= {len(r["text"]) for r in rows if r["text"] and len(r["text"]) < 100}


def test_fineweb_edu_scores_span_1_to_5_and_rise_with_length(edu):
    _, rows = edu
    assert {r["int_score"] for r in rows} == {1, 2, 3, 4, 5, None}
    assert all(0.5 <= r["score"] <= 5.5 for r in rows)
    assert all(r["int_score"] in (None, min(5, max(1, round(r["score"])))) for r in rows)
    by_score = {s: statistics.median(len(r["text"]) for r in rows if r["int_score"] == s and r["text"]) for s in (1, 5)}
    assert by_score[5] > by_score[1]  # as the classifier scores the Hub's: longer pages score higher
    assert all(r["token_count"] == len(r["text"] or "") // 4 for r in rows)


def test_the_readmes_key_query_finds_rows(edu):
    paths, _ = edu
    readme = README.read_text()
    query = "SELECT count(*) FROM source.fineweb_edu WHERE int_score >= 4 AND length(text) > 2000"
    assert f'shardsql sql "{query}"' in readme
    files = ", ".join(f"'{p}'" for p in paths)
    count = duckdb.sql(query.replace("source.fineweb_edu", f"read_parquet([{files}])")).fetchall()[0][0]
    assert count > SERVED_ROWS * 0.1


def test_the_docs_say_how_large_the_served_sample_is():
    assert f"{SERVED_ROWS:,} rows a dataset" in README.read_text()
    docs = [README, README.parent / "CONTRIBUTING.md", *sorted((README.parent / "docs").glob("*.md"))]
    said = {n for doc in docs for n in re.findall(r"([\d,]+) (?:such )?rows a dataset", doc.read_text())}
    assert said == {f"{SERVED_ROWS:,}"}


def test_python_files_are_python_with_the_real_sets_lengths(tmp_path):
    _, rows = realistic("github-code-python", tmp_path, rows=1_000)
    files = [r["code"] for r in rows if r["code"] and r["code"].startswith(("import", '"""'))]
    assert len(files) > len(rows) * 0.95
    for code in files[:100]:
        ast.parse(code)  # it is Python
    assert sum("def " in code for code in files) == len(files) and any("class " in code for code in files)
    lengths = [len(code) for code in files]
    assert 1_800 <= statistics.median(lengths) <= 3_000 and max(lengths) > 20_000
    assert all(r["size"] == len((r["code"] or "").encode()) for r in rows)


def test_pubmed_abstracts_are_abstracts(tmp_path):
    _, rows = realistic("pubmed-abstract", tmp_path, rows=1_000)
    abstracts = [r["abstract"] for r in rows if r["abstract"] and len(r["abstract"]) > 100]
    assert 1_200 <= statistics.median(map(len, abstracts)) <= 1_800 and max(map(len, abstracts)) < 10_000
    structured = [a for a in abstracts if re.match(r"(BACKGROUND|OBJECTIVE): ", a)]
    assert len(structured) > len(abstracts) / 2
    assert all(" METHODS: " in a and " RESULTS: " in a and " CONCLUSIONS: " in a for a in structured)


def test_textbooks_have_chapters_and_slimpajama_has_books(tmp_path):
    _, cosmo = realistic("cosmopedia-v2", tmp_path / "c", rows=500)
    texts = [r["text"] for r in cosmo if r["text"] and len(r["text"]) > 100]
    assert all(t.startswith("# Chapter ") for t in texts)
    assert 2_500 <= statistics.median(map(len, texts)) <= 3_600 and max(map(len, texts)) < 20_000  # a narrow band
    _, pajama = realistic("slimpajama", tmp_path / "p", rows=2_000)
    sets = {r["meta"]["redpajama_set_name"] for r in pajama}
    assert {"RedPajamaCommonCrawl", "RedPajamaC4", "RedPajamaBook", "RedPajamaArXiv"} <= sets
    books = [len(r["text"]) for r in pajama if r["meta"]["redpajama_set_name"] == "RedPajamaBook" and r["text"]]
    assert books and min(books) > 25_000


@pytest.mark.parametrize("dataset", sorted(LAYOUTS))
def test_a_sample_is_the_same_for_a_seed(dataset, tmp_path):
    def data(folder: str, seed: int = 0, real: bool = True) -> list[bytes]:
        paths = write_sample(dataset, tmp_path / folder, 1, 300, 100, seed, realistic=real)
        return [p.read_bytes() for p in paths]

    assert data("a") == data("b") != data("c", seed=1)
    assert data("d", real=False) == data("e", real=False)


def test_the_tests_sample_stays_short(tmp_path):
    """The tests' default sample: texts of at most ~700 characters, so the suite stays quick."""
    for dataset, (*_, column, _shape) in LAYOUTS.items():
        paths = write_sample(dataset, tmp_path / dataset, files=1, rows_per_file=1000)
        assert max(len(t or "") for t in pq.read_table(paths, columns=[column])[column].to_pylist()) < 1_000


def readme_offline_commands() -> list[str]:
    """The `shardsql` lines of the README's code blocks under "Trying every command offline"."""
    text = README.read_text()
    section = text[text.index("### Trying every command offline") :]
    section = section[: section.index("\n## ")]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line for block in blocks[1:] for line in block.splitlines() if line.startswith("shardsql ")]


@pytest.mark.slow  # the whole served sample (~2.5 s to generate) and two conversions of it
def test_the_readmes_offline_commands_run_as_printed(tmp_path, monkeypatch):
    commands = readme_offline_commands()
    assert len(commands) >= 4 and any(" convert edu-code-mix " in c for c in commands), commands
    with serving(tmp_path / "served") as served:
        monkeypatch.setenv("HF_ENDPOINT", served.endpoint)
        for command in commands:
            args = [a.replace("/tmp/try", str(tmp_path / "try")) for a in shlex.split(command)[1:]]
            result = CliRunner().invoke(cli, args, catch_exceptions=False)
            assert result.exit_code == 0, (command, result.output)
            if args[0] == "sql":
                assert int(re.search(r"│ (\d+) +│", result.output).group(1)) > 0, result.output
            if args[0] == "convert":
                assert "2 training + 1 validation" in result.output, result.output
