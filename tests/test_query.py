import json
import re
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import run_query

from shardsql.cli import cli
from shardsql.errors import QueryError


def local(folder, columns=None) -> pa.Table:
    return pa.concat_tables(pq.read_table(p, columns=columns) for p in sorted(folder.glob("*.parquet")))


def footers(folder) -> int:
    return sum(pq.ParquetFile(p).metadata.serialized_size + 8 for p in folder.glob("*.parquet"))


def column_bytes(folder, column: str, row_groups: int | None = None) -> int:
    total = 0
    for path in sorted(folder.glob("*.parquet")):
        metadata = pq.ParquetFile(path).metadata
        index = metadata.schema.to_arrow_schema().get_field_index(column)
        for i in range(metadata.num_row_groups if row_groups is None else row_groups):
            total += metadata.row_group(i).column(index).total_compressed_size
        if row_groups is not None:
            break
    return total


def test_filtered_view_equals_the_definition(hub, hub_dataset):
    folder = hub_dataset("fineweb-edu-high")
    result = run_query("SELECT count(*) AS n, sum(length(text)) AS chars FROM fineweb_edu_high")
    table = local(folder, ["text", "int_score"]).to_pylist()
    kept = [
        r["text"]
        for r in table
        if (r["int_score"] is None or r["int_score"] >= 3) and r["text"] and len(r["text"]) >= 50
    ]
    assert result.table.to_pylist() == [{"n": len(kept), "chars": sum(map(len, kept))}]


def test_a_count_over_one_column_reads_only_that_column(hub, hub_dataset):
    folder = hub_dataset("fineweb-edu")
    hub.reset_counters()
    result = run_query("SELECT count(*) AS n FROM source.fineweb_edu WHERE int_score >= 4")
    scores = local(folder, ["int_score"])["int_score"].to_pylist()
    assert result.table.to_pylist() == [{"n": sum(1 for s in scores if s is not None and s >= 4)}]
    assert hub.bytes_served == footers(folder) + column_bytes(folder, "int_score")


def test_limit_reads_only_the_first_row_group(hub, hub_dataset):
    folder = hub_dataset("fineweb-edu", rows_per_file=6000, row_group_size=3000)
    hub.reset_counters()
    result = run_query("SELECT text FROM source.fineweb_edu LIMIT 5")
    assert result.table["text"].to_pylist() == local(folder, ["text"])["text"].to_pylist()[:5]
    # Every file's footer (to unify the files' schemas, schemas.py), and one row group of data.
    assert hub.bytes_served == footers(folder) + column_bytes(folder, "text", row_groups=1)


def test_grouping_over_a_source(hub, hub_dataset):
    folder = hub_dataset("fineweb-edu")
    result = run_query("SELECT int_score, count(*) AS n FROM source.fineweb_edu GROUP BY 1 ORDER BY 1 NULLS LAST")
    expected = Counter(local(folder, ["int_score"])["int_score"].to_pylist())
    assert [(r["int_score"], r["n"]) for r in result.table.to_pylist()] == sorted(
        expected.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)
    )


def test_source_option_is_the_view_source(hub_dataset):
    folder = hub_dataset("pubmed-abstract")
    result = run_query("SELECT pmid FROM source ORDER BY pmid LIMIT 3", source_url=str(folder))
    assert result.table["pmid"].to_pylist() == [0, 1, 2]


def test_limit_marks_truncation(hub_dataset):
    folder = hub_dataset("pubmed-abstract")
    result = run_query("SELECT pmid FROM source", limit=10, source_url=str(folder))
    assert result.table.num_rows == 10 and result.truncated


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM nope", "Datasets: cosmopedia_v2, fineweb, fineweb_edu"),
        ("SELECT 1; SELECT 2", "the query must be one SELECT, found 2 statements"),
        ("SELEC 1", "syntax error"),
    ],
)
def test_bad_queries_are_clear_errors(sql, message):
    with pytest.raises(QueryError, match=message):
        run_query(sql)


def test_queries_cannot_read_local_files(tmp_path):
    (tmp_path / "secret.txt").write_text("secret")
    with pytest.raises(QueryError, match="disabled by configuration"):
        run_query(f"SELECT * FROM read_text('{tmp_path / 'secret.txt'}')")


def test_cli_formats(hub_dataset):
    folder = hub_dataset("pubmed-abstract")
    base = ["sql", "--source", str(folder), "SELECT pmid, length(abstract) AS n FROM source ORDER BY pmid LIMIT 2"]
    as_json = CliRunner().invoke(cli, [*base, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    assert [r["pmid"] for r in rows] == [0, 1]
    as_csv = CliRunner().invoke(cli, [*base, "--format", "csv"])
    assert as_csv.stdout.splitlines()[0] == "pmid,n"
    assert as_csv.stdout.splitlines()[1].startswith("0,")
    table = CliRunner().invoke(cli, ["sql", "--source", str(folder), "SELECT pmid FROM source"])
    assert table.exit_code == 0
    assert "20 rows (more not shown: use --limit)" in table.stderr


def test_a_dataset_read_twice_gets_a_clear_hint_and_the_cte_workaround_works(hub_dataset):
    folder = hub_dataset("pubmed-abstract")
    twice = "SELECT (SELECT count(*) FROM source) AS a, (SELECT count(*) FROM source) AS b"
    with pytest.raises(QueryError, match="reads the same dataset more than once.*MATERIALIZED"):
        run_query(twice, source_url=str(folder))
    once = "WITH t AS MATERIALIZED (SELECT pmid FROM source) "
    once += "SELECT (SELECT count(*) FROM t) AS a, (SELECT max(pmid) FROM t) AS b"
    assert run_query(once, source_url=str(folder)).table.to_pylist() == [{"a": 9000, "b": 8999}]


def _shardsql_sql(*args, setup: str = "", **popen):
    """The real entry point in a subprocess (memory and signals are the process's own);
    `setup`: Python run in it first."""
    import subprocess
    import sys

    code = f"{setup}\nfrom shardsql.cli import main; main()"
    return subprocess.Popen([sys.executable, "-c", code, "sql", *args], stderr=subprocess.PIPE, **popen)


# Run first in the subprocess: at exit it says the peak of its own memory (VmHWM, KiB). Not
# wait4's ru_maxrss: Linux carries into it, across exec, the RSS of the process that started it
# (pytest: 1 GB late in a run under coverage), which would hide any growth.
PEAK_AT_EXIT = """
import atexit, sys
def _peak():
    with open("/proc/self/status") as status:
        sys.stderr.write("peak " + next(line.split()[1] for line in status if line.startswith("VmHWM:")) + "\\n")
atexit.register(_peak)
"""


def _max_rss_mb(fmt: str, rows: int) -> int:
    import subprocess

    query = f"SELECT range AS n, repeat('x', 2000) AS t FROM range({rows})"
    proc = _shardsql_sql("--format", fmt, query, setup=PEAK_AT_EXIT, stdout=subprocess.DEVNULL)
    said = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait() == 0, said
    assert f"{rows:,} rows" in said
    return int(re.findall(r"^peak (\d+)$", said, re.M)[-1]) // 1024


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_csv_and_json_stream_in_bounded_memory(fmt):
    # 80 MB of output: held in memory (as rows, then as text) it adds well over 150 MB.
    small, large = _max_rss_mb(fmt, 10), _max_rss_mb(fmt, 40_000)
    assert large - small < 50, f"peak RSS {small} MB for 10 rows, {large} MB for 40,000 rows"


def test_json_output_is_one_valid_array_and_csv_quotes(tmp_path):
    query = "SELECT range AS n, 'a,\"b\"\nc' AS t FROM range(5000)"
    as_json = CliRunner().invoke(cli, ["sql", "--format", "json", query])
    assert json.loads(as_json.stdout) == [{"n": i, "t": 'a,"b"\nc'} for i in range(5000)]
    empty = CliRunner().invoke(cli, ["sql", "--format", "json", "SELECT 1 AS n WHERE false"])
    assert json.loads(empty.stdout) == [] and "0 rows" in empty.stderr
    as_csv = CliRunner().invoke(cli, ["sql", "--format", "csv", query])
    import csv
    import io

    assert list(csv.reader(io.StringIO(as_csv.stdout)))[1] == ["0", 'a,"b"\nc']


def test_ctrl_c_stops_a_query_promptly_with_a_message_for_sql():
    import signal
    import subprocess
    import time

    # Interrupted, the query stops in well under a second; one that ignored the interrupt would
    # be waited for INTERRUPT_WAIT_S before giving up. That wait is made 60 s here, far above the
    # 5 s allowed, so only a query stopped by the interrupt passes, however loaded the machine is.
    wait = "import shardsql.commands.query as q; q.INTERRUPT_WAIT_S = 60.0"
    query = "SELECT range AS n FROM range(1000000000000)"
    proc = _shardsql_sql("--format", "csv", query, setup=wait, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"n"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and time.monotonic() - sent < 5
    assert err.decode().strip() == "Error: Interrupted: the query was stopped, so its output above is incomplete."


# DuckDB does not check the UTF-8 of the text it scans, then fails on it in ways that depend on
# the query and on the Python (a cast to BLOB: an error with no message on Python 3.11.4 or older,
# a UnicodeDecodeError since 3.11.5; upper(): an internal error). Each query says the same here.
@pytest.mark.parametrize("select", ["text", "text::BLOB AS b", "upper(text) AS u", "count(*) FILTER (text > 'a')"])
def test_invalid_utf8_in_a_source_is_one_line_naming_the_file_not_a_traceback(tmp_path, select):
    bad = pa.array([b"ok", b"fine", b"caf\xc3"], pa.binary()).view(pa.string())
    pq.write_table(pa.table({"id": [0, 1, 2], "text": bad}), tmp_path / "0.parquet", row_group_size=2)
    result = CliRunner().invoke(
        cli, ["sql", "--source", str(tmp_path), "--format", "csv", f"SELECT {select} FROM source"]
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        f"Error: {tmp_path / '0.parquet'}: column 'text' holds text that is not valid UTF-8 (row 2 of the file), "
        "which the query cannot read; leave that column out, or query the other files with --source"
    ]
    # The file's other columns can still be queried.
    ids = CliRunner().invoke(cli, ["sql", "--source", str(tmp_path), "--format", "csv", "SELECT max(id) FROM source"])
    assert ids.exit_code == 0 and ids.stdout.splitlines()[1] == "2"


def test_a_misspelt_column_lists_the_columns_of_what_the_query_reads(hub, hub_dataset):
    hub_dataset("fineweb-edu")
    result = CliRunner().invoke(cli, ["sql", "SELECT count(*) FROM source.fineweb_edu WHERE int_scor >= 4"])
    assert result.exit_code != 0
    assert 'Referenced column "int_scor" not found' in result.output
    listed = result.output.split("The columns of what the query reads: ", 1)[1]
    assert listed.startswith("source.fineweb_edu: ") and "int_score" in listed and "text" in listed
    # A dataset's own view has its definition's one column.
    result = CliRunner().invoke(cli, ["sql", "SELECT txt FROM fineweb_edu"])
    assert "fineweb_edu: text" in result.output and "source.fineweb_edu: " in result.output
