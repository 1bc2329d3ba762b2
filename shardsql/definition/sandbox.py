"""The one DuckDB connection that user SQL runs in: locked down before any of it runs.

A definition or an ad-hoc query may only read the views shardsql registers (`source`, the
datasets): external access is off, so no file, URL or extension can be read, and the
configuration is locked, so the SQL cannot turn that back on. Registering Arrow data and
creating views still work afterwards, so every connection is locked the moment it exists:
convert, `sql` and `explain` all get theirs here, and none can be weaker than the others.
"""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

THREADS = 1  # a connection per unit: the executors run units in parallel


def connect(
    threads: int | None = THREADS, memory_limit: str | None = None, spill_dir: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """A locked-down in-memory DuckDB connection (`threads` None: DuckDB's default, every core),
    spilling to `spill_dir` past `memory_limit`.

    With the defaults (a unit's evaluator, `explain`, DuckDB's function list), a connection to
    the process's one database of that configuration (`duckdb.cursor`): a new database costs
    25 to 33 ms to start (its catalog of built-in functions), a connection to one 0.02 ms, and
    a fresh conversion started three (the definition's check, DuckDB's function list, one a
    unit thread). Each connection has its own registered views, and the database's settings
    are locked for all of them; a definition is one SELECT, which creates nothing another
    connection could see."""
    global _shared
    if threads == THREADS and memory_limit is None and spill_dir is None:
        with _shared_lock:
            if _shared is None:
                _shared = _database({"threads": THREADS})
            return _shared.cursor()
    config: dict[str, str | bool | int | float | list[str]] = {} if threads is None else {"threads": threads}
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if spill_dir is not None:
        config["temp_directory"] = str(spill_dir)
    return _database(config)


_shared: duckdb.DuckDBPyConnection | None = None  # the default configuration's database (`connect`)
_shared_lock = threading.Lock()


def _database(config: dict[str, str | bool | int | float | list[str]]) -> duckdb.DuckDBPyConnection:
    """A new in-memory database, locked down."""
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con
