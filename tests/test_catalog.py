from pathlib import Path

import pytest

from shardsql.definition import catalog
from shardsql.errors import DefinitionError, UnknownDatasetError

GOOD = """\
-- description: My corpus
-- source: hf://datasets/me/corpus/data/*.parquet
-- revision: v1.0
-- a free comment line is allowed in the header

SELECT body AS text FROM source WHERE length(body) >= 50;
"""


def test_parse_reads_header_and_body():
    d = catalog.parse_definition(GOOD, Path("my-corpus.sql"))
    assert d.name == "my-corpus"
    assert d.description == "My corpus"
    assert d.source == "hf://datasets/me/corpus/data/*.parquet"
    assert d.revision == "v1.0"
    assert d.sql == "SELECT body AS text FROM source WHERE length(body) >= 50"
    assert d.view_name == "my_corpus"
    assert len(d.sha256) == 64


def test_revision_is_optional():
    text = GOOD.replace("-- revision: v1.0\n", "")
    assert catalog.parse_definition(text, Path("x.sql")).revision is None


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        (GOOD.replace("-- description: My corpus\n", ""), "the header has no 'description'", None),
        (GOOD.replace("-- source: hf://datasets/me/corpus/data/*.parquet\n", ""), "no 'source'", None),
        (GOOD.replace("-- revision", "-- revison"), "unknown header key 'revison'", 3),
        (GOOD.replace("-- revision: v1.0", "-- description: again"), "'description' is given twice", 3),
        (GOOD.replace("v1.0", ""), "header key 'revision' has no value", 3),
        ("-- description: a\n-- source: b\n", "there is no SELECT", None),
        ("-- description: a\n-- source: b\nDROP TABLE x", "the definition must be one SELECT over source", 3),
    ],
)
def test_bad_headers_are_errors_with_an_example(text, message, line):
    with pytest.raises(DefinitionError) as info:
        catalog.parse_definition(text, Path("bad.sql"))
    assert message in str(info.value)
    assert "-- description:" in str(info.value), "the error shows a correct example"
    assert info.value.line == line
    if line:
        assert f"bad.sql:{line}:" in str(info.value)


def test_bad_name_is_rejected():
    with pytest.raises(DefinitionError, match="not a valid dataset name"):
        catalog.parse_definition(GOOD, Path("My Corpus.sql"))


def test_builtin_definitions_are_the_seed_datasets_and_one_mixture_of_them():
    assert sorted(catalog.definition_paths()) == sorted([d.name for d in catalog.load_datasets()] + ["edu-code-mix"])
    assert [d.name for d in catalog.load_datasets()] == [
        "cosmopedia-v2",
        "fineweb",
        "fineweb-edu",
        "fineweb-edu-high",
        "github-code-python",
        "pubmed-abstract",
        "slimpajama",
        "slimpajama-627b",
    ]


def test_resolve_by_path_works_for_a_users_file(tmp_path):
    path = tmp_path / "mine.sql"
    path.write_text(GOOD)
    assert catalog.resolve(str(path)).name == "mine"


def test_resolve_missing_file_is_an_error(tmp_path):
    with pytest.raises(DefinitionError, match="no such definition file"):
        catalog.resolve(str(tmp_path / "missing.sql"))


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownDatasetError) as info:
        catalog.resolve("finweb-edu")
    assert "Did you mean: fineweb-edu" in str(info.value)


def test_extra_folder_adds_definitions_and_duplicates_are_errors(tmp_path, monkeypatch):
    (tmp_path / "mine.sql").write_text(GOOD)
    monkeypatch.setenv(catalog.SQL_DIR_ENV, str(tmp_path))
    assert catalog.resolve("mine").path == tmp_path / "mine.sql"
    (tmp_path / "fineweb-edu.sql").write_text(GOOD)
    with pytest.raises(DefinitionError, match="dataset 'fineweb-edu' is also defined in"):
        catalog.definition_paths()


def test_non_utf8_file_is_a_clean_error(tmp_path):
    path = tmp_path / "latin.sql"
    path.write_bytes(GOOD.encode("utf-16"))
    with pytest.raises(DefinitionError, match="not UTF-8"):
        catalog.load_file(path)
