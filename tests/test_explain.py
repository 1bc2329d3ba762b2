from collections import Counter

import pyarrow as pa
import pytest
from click.testing import CliRunner
from helpers import first_rows

from shardsql.cli import cli
from shardsql.commands.explain import compare, funnel, sample
from shardsql.definition import catalog
from shardsql.errors import DefinitionError

STRICTER = """\
-- description: FineWeb-Edu, int_score >= 4 only
-- source: hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet

SELECT text FROM source
WHERE int_score >= 4 AND text IS NOT NULL AND length(text) >= 50
"""


def test_funnel_counts_each_condition_in_order_and_alone(hub, hub_dataset):
    folder = hub_dataset("fineweb-edu-high")
    definition = catalog.resolve("fineweb-edu-high")
    table, source = sample(definition, columns_for=[definition], rows=2500)
    assert table.num_rows == 2500 and table.column_names == ["text", "int_score"]
    result = funnel(definition, table)

    rows = first_rows(folder, 2500)
    conditions = [
        lambda r: r["int_score"] is None or r["int_score"] >= 3,
        lambda r: r["text"] is not None,
        lambda r: r["text"] is not None and len(r["text"]) >= 50,
    ]
    assert [s.condition for s in result.steps] == [
        "((int_score IS NULL) OR (int_score >= 3))",
        '("text" IS NOT NULL)',
        '(length("text") >= 50)',
    ]
    left = rows
    for step, keep in zip(result.steps, conditions, strict=True):
        kept = [r for r in left if keep(r)]
        assert (step.rows, step.removed) == (len(kept), len(left) - len(kept))
        assert step.chars == sum(len(r["text"] or "") for r in kept)
        assert step.removed_alone == sum(1 for r in rows if not keep(r))
        left = kept
    assert result.chars_in == sum(len(r["text"] or "") for r in rows)
    assert (result.rows_out, result.chars_out) == (len(left), sum(len(r["text"]) for r in left))


def test_against_compares_outputs_on_the_same_rows(hub_dataset, tmp_path):
    folder = hub_dataset("fineweb-edu-high")
    stricter = tmp_path / "edu4.sql"
    stricter.write_text(STRICTER)
    first, second = catalog.resolve("fineweb-edu-high"), catalog.resolve(str(stricter))
    table, _ = sample(first, columns_for=[first, second], rows=3000, source_url=str(folder))
    diff = compare(first, second, table)
    rows = first_rows(folder, 3000)
    a = Counter(
        r["text"]
        for r in rows
        if (r["int_score"] is None or r["int_score"] >= 3) and r["text"] and len(r["text"]) >= 50
    )
    b = Counter(
        r["text"]
        for r in rows
        if r["int_score"] is not None and r["int_score"] >= 4 and r["text"] and len(r["text"]) >= 50
    )
    assert (diff.only_first, diff.only_second, diff.both) == (
        sum((a - b).values()),
        sum((b - a).values()),
        sum((a & b).values()),
    )
    assert diff.only_second == 0, "a stricter filter keeps nothing new"


def test_explain_command(hub, hub_dataset, tmp_path):
    hub_dataset("fineweb-edu-high")
    stricter = tmp_path / "edu4.sql"
    stricter.write_text(STRICTER)
    result = CliRunner().invoke(
        cli, ["explain", "fineweb-edu-high", "--sample-rows", "1000", "--against", str(stricter)]
    )
    assert result.exit_code == 0, result.output
    assert (
        "Sample: the first 1,000 rows of hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet" in result.output
    )
    assert "((int_score IS NULL) OR (int_score >= 3))" in result.output and "(int_score >= 4)" in result.output
    assert "only by fineweb-edu-high" in result.output and "0 only by edu4" in result.output


def test_definition_without_where_has_no_steps(hub_dataset, tmp_path):
    folder = hub_dataset("pubmed-abstract")
    path = tmp_path / "all.sql"
    path.write_text(f"-- description: d\n-- source: {folder}\n\nSELECT abstract AS text FROM source\n")
    definition = catalog.resolve(str(path))
    table, _ = sample(definition, columns_for=[definition], rows=500)
    result = funnel(definition, table)
    assert result.steps == [] and result.rows_out == 500 == result.sample_rows


def test_a_duckdb_error_on_text_that_is_not_utf8_is_a_definition_error(tmp_path):
    # DuckDB's error quotes the bad bytes: see tests/test_describe.py. It was an IndexError on
    # Python 3.11.4 and older (the error had no text), an unexpected UnicodeDecodeError since.
    invalid = pa.table({"text": pa.array([b"ok", b"caf\xc3"], pa.binary()).view(pa.string())})
    path = tmp_path / "blob.sql"
    path.write_text(f"-- description: d\n-- source: {tmp_path}\n\nSELECT text FROM source WHERE text::BLOB <> ''\n")
    with pytest.raises(DefinitionError, match="not valid UTF-8"):
        funnel(catalog.resolve(str(path)), invalid)
