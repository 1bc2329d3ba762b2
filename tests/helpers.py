"""What several test modules share: readers for asserting on written parquet files and query
results, the semantic cases and their source (conftest's `source_folder`), `StopAfter`, and a
full-sized set for the validation-size warning (`no_toy_set`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from shardsql.commands.query import stream_query
from shardsql.definition import catalog
from shardsql.progress import Progress


def read_texts(path: Path) -> list[str]:
    return pq.read_table(path)["text"].to_pylist()


def first_rows(folder: Path, n: int) -> list[dict]:
    """The first `n` rows (text, int_score) of a sample's files in source order: what explain samples."""
    table = pa.concat_tables(pq.read_table(p, columns=["text", "int_score"]) for p in sorted(folder.glob("*.parquet")))
    return table.slice(0, n).to_pylist()


def no_toy_set(folder: Path, train_rows: int = 70_000) -> Path:
    """A data folder, without a manifest, that is no toy run for the validation-size warning
    (Consumer.val_advice): a validation shard of 2 texts of 1,000 tokens (4,000 bytes) each, and
    one training shard of `train_rows` short texts, so that the whole holds, at the validation
    shard's mean, more tokens than either consumer's threshold, and the validation shard fewer.
    Cheap: the advice sizes the whole at the validation shard's mean, not the training texts'."""
    folder.mkdir(parents=True, exist_ok=True)
    validation = [f"validation text {i} ".ljust(4_000, "v") for i in range(2)]
    pq.write_table(pa.table({"text": pa.array(validation, pa.string())}), folder / "shard_06542.parquet")
    training = pa.array([f"t{i}" for i in range(train_rows)], pa.string())
    pq.write_table(pa.table({"text": training}), folder / "shard_00000.parquet", row_group_size=1_024)
    return folder


def row_groups(path: Path) -> list[int]:
    metadata = pq.ParquetFile(path).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


@dataclass
class QueryResult:
    table: pa.Table
    truncated: bool  # more rows exist than `limit`
    bytes_fetched: int


def run_query(sql: str, limit: int | None = None, revision: str | None = None, source_url: str | None = None):
    """`shardsql sql`'s library call, its streamed result collected into one table."""
    with stream_query(sql, limit=limit, revision=revision, source_url=source_url) as (stream, session):
        table = pa.Table.from_batches(list(stream.batches), stream.schema)
        return QueryResult(table, session.truncated, stream.bytes_fetched)


FILES, ROWS_PER_FILE, ROW_GROUP = 3, 40, 7
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda"]

# (SQL, row by row?, does the SQL fix the output order?)
CASES = {
    "filter": ("SELECT text FROM source WHERE length(text) > 20", True, True),
    "struct-field": ("SELECT meta.body AS text FROM source WHERE meta.lang = 'en'", True, True),
    "struct-bracket": ("SELECT s.meta['body'] AS text FROM source AS s", True, True),
    "whole-row": ("SELECT CAST(source AS VARCHAR) AS text FROM source", True, True),
    "star": ("SELECT source.* EXCLUDE (id, score, meta) FROM source WHERE text IS NOT NULL", True, True),
    "columns": ("SELECT COLUMNS('te.*') FROM source WHERE text IS NOT NULL", True, True),
    "distinct": ("SELECT DISTINCT text FROM source WHERE text IS NOT NULL", False, False),
    "order-by": ("SELECT text FROM source WHERE text IS NOT NULL ORDER BY text DESC, id", False, True),
    "limit": ("SELECT text FROM source WHERE text IS NOT NULL LIMIT 10", False, True),
    "aggregate": ("SELECT string_agg(text, '|' ORDER BY id) AS text FROM source GROUP BY id % 10", False, False),
    "window": (
        "SELECT text || ' #' || row_number() OVER (ORDER BY id) AS text FROM source WHERE text IS NOT NULL",
        False,
        False,
    ),
    "scalar-subquery": (
        "SELECT text FROM source WHERE length(text) > (SELECT avg(length(text)) FROM source)",
        False,
        False,
    ),
    "self-join": (
        "SELECT a.text || ' / ' || b.text AS text FROM source a JOIN source b ON a.id = b.id + 1 "
        "WHERE a.text IS NOT NULL AND b.text IS NOT NULL",
        False,
        False,
    ),
    "union": (
        "SELECT text FROM source WHERE id < 5 AND text IS NOT NULL "
        "UNION ALL SELECT upper(text) FROM source WHERE id > 100 AND text IS NOT NULL",
        False,
        False,
    ),
    "cte": (
        "WITH t AS (SELECT text, id FROM source) SELECT text FROM t WHERE id % 2 = 0 AND text IS NOT NULL",
        False,
        False,
    ),  # fmt: skip
}


def semantic_text(i: int) -> str | None:
    if i % 13 == 5:
        return None
    # Few distinct texts, repeated across row groups and files: DISTINCT and GROUP BY must see them all.
    n = 1 + (i * 7) % 9
    return " ".join(WORDS[(i + k) % len(WORDS)] for k in range(n)) + ("" if i % 4 else f" {i % 6}")


def definition_file(folder, sql: str):
    path = folder.parent / "defs" / "my_case.sql"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"-- description: a test case\n-- source: {folder}\n\n{sql}\n")
    return catalog.load_file(path)


class StopAfter(Progress):
    """A progress display that interrupts the run (as Ctrl-C does) after `shards` shards."""

    def __init__(self, shards: int):
        super().__init__()
        self.left = shards

    def shard(self, info):
        super().shard(info)
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


def killed_at_checkpoint(condition: str) -> str:
    """Python to run first in a `shardsql` subprocess: the process SIGKILLs itself right after it
    saves a checkpoint for which `condition` (an expression over that Checkpoint, `c`) holds. A
    kill at a known point of the run, whatever the machine's speed (a test polling the checkpoint
    from outside could miss a fast run's last shards)."""
    return f"""
import os, signal
from shardsql.output import checkpoint as _checkpoint
_save = _checkpoint.Checkpoint.save
def _save_then_die(c, folder):
    _save(c, folder)
    if {condition}:
        os.kill(os.getpid(), signal.SIGKILL)
_checkpoint.Checkpoint.save = _save_then_die
"""


class Events(Progress):
    """The messages and shards of a run, in the order they came."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def message(self, text):
        self.lines.append(text)

    def shard(self, info):
        super().shard(info)
        self.lines.append(info.name)
