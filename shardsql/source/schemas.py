"""One schema for a source whose files disagree: how convert, explain and sql read them.

Parquet files of one dataset often differ in small ways: a score stored as int64 in one
file and double in the next, text as string, large_string or dictionary-encoded. Each
reader would otherwise react differently (a failed cast deep in a DuckDB stream, a
pyarrow merge error, a silent NULL-filled column). Here the rule is written once:

- string, large_string, string_view and dictionary-encoded text are one kind: text, read as
  string_view (decode.py decodes text with Polars, into string views);
- integers of different widths widen to int64, and integers mixed with floats to double;
- any other difference, or a needed column missing from a file, is a SourceError naming
  the first file that differs.

`unify` decides the schema from the footers of the files (only the columns read), and
`conform` casts one file's rows to it. A source with many files is unified on the first
`SCHEMA_FILES` footers (reading thousands of footers before a `LIMIT 5` would cost more
than the query); a later file that cannot be read as that schema still fails cleanly in
`conform`, naming it.
"""

from __future__ import annotations

import pyarrow as pa

from ..errors import SourceError
from .files import Source
from .footers import read_footers

SCHEMA_FILES = 64  # footers read up front to unify a source's schema (they are cached for the reads after)


def is_text(type_: pa.DataType) -> bool:
    """Whether a column of this type is text (any kind of string, or dictionary-encoded string)."""
    return _kind(type_) == "text"


def _kind(type_: pa.DataType) -> str:
    if pa.types.is_dictionary(type_):
        return _kind(type_.value_type)
    if pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_string_view(type_):
        return "text"
    if pa.types.is_integer(type_):
        return "int"
    if pa.types.is_floating(type_):
        return "float"
    return str(type_)


def _common(types: list[pa.DataType]) -> pa.DataType | None:
    """The type all of `types` are read as, or None when they cannot be combined."""
    kinds = {_kind(t) for t in types}
    if kinds == {"text"}:
        return pa.string_view()  # as decode.py reads text, whatever the files' kind of string
    if all(t == types[0] for t in types):
        return types[0]
    if kinds == {"int"}:
        return pa.int64()
    if kinds <= {"int", "float"}:
        return pa.float64()
    return None


def unify(schemas: list[pa.Schema], files: list[str], columns: list[str] | None = None) -> pa.Schema:
    """The schema to read `files` (whose footers' schemas are `schemas`) as, for `columns`
    (default: the first file's). Raises SourceError naming the first file that cannot fit."""
    first = schemas[0]
    names = list(columns) if columns is not None else list(first.names)
    fields = []
    for name in names:
        types: list[pa.DataType] = []
        for schema, file in zip(schemas, files, strict=True):
            index = schema.get_field_index(name)
            if index < 0:
                raise _missing(name, file, files[0])
            types.append(schema.field(index).type)
        common = _common(types)
        if common is None:
            other = next(i for i, t in enumerate(types) if _kind(t) != _kind(types[0]))
            raise SourceError(
                f"{files[other]}: column '{name}' is {types[other]}, but {types[0]} in {files[0]}; "
                "the source's files must agree on the type of each column they read (integers and "
                "floats, or any kind of text, mix)"
            )
        fields.append(pa.field(name, common))
    return pa.schema(fields)


def _missing(name: str, file: str, first: str) -> SourceError:
    verb = "have" if first.endswith("files") else "has"
    return SourceError(
        f"{file}: no column '{name}', which {first} {verb} and the SQL reads; every source file must "
        "have the columns read (use --source to read only the files that have it)"
    )


def conform(table: pa.Table, schema: pa.Schema, file: str) -> pa.Table:
    """`table` (rows of `file`) with exactly `schema`'s columns and types; free when they match."""
    if table.schema.names != schema.names:
        missing = [n for n in schema.names if n not in table.column_names]
        if missing:
            raise _missing(missing[0], file, "the source's first files")
        table = table.select(schema.names)
    if table.schema.equals(schema):
        return table
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type) and is_text(field.type):
            # (Arrow casts dictionary-encoded text to string, but not to string_view directly)
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        found = ", ".join(
            f"'{f.name}' is {f.type}, not {schema.field(f.name).type}"
            for f in table.schema
            if f.type != schema.field(f.name).type
        )
        raise SourceError(
            f"{file}: column {found} as in the source's first files ({str(exc).splitlines()[0]})"
        ) from None


def source_schema(source: Source, columns: list[str]) -> pa.Schema:
    """The unified schema of `columns` over the source's first SCHEMA_FILES files (footers only, cached)."""
    footers = read_footers(source, source.files[:SCHEMA_FILES])
    return unify([f.schema for f in footers], [f.file.url for f in footers], columns)
