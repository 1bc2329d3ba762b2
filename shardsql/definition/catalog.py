"""The catalog of dataset definitions: one `.sql` file per dataset.

A definition is a header of `-- key: value` comment lines followed by exactly one SELECT
over a view named `source` that yields one column, `text`:

    -- description: FineWeb-Edu, 10BT sample
    -- source: hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet
    -- revision: main

    SELECT text FROM source
    WHERE text IS NOT NULL AND length(text) >= 50

The header is parsed strictly (unknown or repeated keys are errors) so that a typo in a
pull request fails loudly instead of silently converting the wrong thing. This module
only reads text: it imports nothing heavy, which keeps `shardsql list` instant. The SQL
itself is checked by DuckDB (evaluator.py), the only thing that can really judge it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DefinitionError, UnknownDatasetError

REQUIRED_KEYS = ("description", "source")
OPTIONAL_KEYS = ("revision", "license", "notes")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
HEADER_LINE = re.compile(r"^--\s*([A-Za-z_][\w-]*)\s*:\s*(.*?)\s*$")
# Where the built-in definitions live: `shardsql/sql/` inside an installed wheel (see
# pyproject's force-include), and `sql/` at the repository root in a checkout.
_PACKAGE = Path(__file__).resolve().parent.parent
BUILTIN_DIRS = (_PACKAGE / "sql", _PACKAGE.parent / "sql")
SQL_DIR_ENV = "SHARDSQL_SQL_DIR"

EXAMPLE = """\
    -- description: FineWeb-Edu, 10BT sample
    -- source: hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet
    -- revision: main

    SELECT text FROM source
    WHERE text IS NOT NULL AND length(text) >= 50"""


@dataclass(frozen=True)
class Definition:
    """A parsed dataset definition."""

    name: str
    path: Path
    description: str
    source: str
    revision: str | None
    sql: str  # the SELECT, without the header
    text: str  # the whole file, as reviewed
    extra: dict[str, str]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def view_name(self) -> str:
        """The name this dataset has as a view in ad-hoc SQL (`-` is not valid there)."""
        return self.name.replace("-", "_")


def _fail(message: str, path: Path, line: int | None = None) -> DefinitionError:
    return DefinitionError(f"{message}\nA definition looks like this:\n{EXAMPLE}", path, line)


def parse_definition(text: str, path: Path, name: str | None = None) -> Definition:
    """Parse a definition's text; `path` is used for the name and in error messages."""
    name = name or path.stem
    if not NAME_PATTERN.match(name):
        raise _fail(f"'{name}' is not a valid dataset name (lowercase letters, digits, '-' and '_')", path)
    header: dict[str, str] = {}
    lines = text.splitlines()
    body_start = len(lines)
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            body_start = number - 1
            break
        match = HEADER_LINE.match(stripped)
        if not match:
            # A free comment inside the header is fine: only `-- key: value` lines are keys.
            continue
        key, value = match.group(1).lower(), match.group(2)
        if key not in REQUIRED_KEYS + OPTIONAL_KEYS:
            allowed = ", ".join(REQUIRED_KEYS + OPTIONAL_KEYS)
            raise _fail(f"unknown header key '{key}' (allowed: {allowed})", path, number)
        if key in header:
            raise _fail(f"header key '{key}' is given twice", path, number)
        if not value:
            raise _fail(f"header key '{key}' has no value", path, number)
        header[key] = value
    for key in REQUIRED_KEYS:
        if key not in header:
            raise _fail(f"the header has no '{key}'", path)
    sql = "\n".join(lines[body_start:]).strip().rstrip(";").strip()
    if not sql:
        raise _fail("there is no SELECT after the header", path)
    if not re.match(r"(?is)^(with|select|from)\b", sql):
        raise _fail("the definition must be one SELECT over source", path, body_start + 1)
    return Definition(
        name=name,
        path=path,
        description=header["description"],
        source=resolve_source(header["source"], path),
        revision=header.get("revision"),
        sql=sql,
        text=text,
        extra={k: v for k, v in header.items() if k not in ("description", "source", "revision")},
    )


def resolve_source(source: str, path: Path) -> str:
    """A relative local `-- source:` path, resolved against the definition's own folder (as
    an include would be), so the definition means the same from any working directory."""
    if "://" in source or source.startswith(("/", "~")):
        return source
    return os.path.normpath(path.expanduser().absolute().parent / source) + ("/" if source.endswith("/") else "")


def load_file(path: Path) -> Definition:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(f"cannot read the definition: {exc.strerror}", path) from exc
    except UnicodeDecodeError as exc:
        raise DefinitionError("the definition is not UTF-8 text", path) from exc
    return parse_definition(text, path)


def sql_dirs() -> list[Path]:
    """The folders searched for definitions, in order: $SHARDSQL_SQL_DIR, then the built-ins."""
    dirs = [Path(p) for p in os.environ.get(SQL_DIR_ENV, "").split(os.pathsep) if p]
    builtin = next((d for d in BUILTIN_DIRS if d.is_dir()), None)
    return dirs + ([builtin] if builtin else [])


def definition_paths() -> dict[str, Path]:
    """Every known dataset name and its file; the same name in two places is an error."""
    found: dict[str, Path] = {}
    for folder in sql_dirs():
        for path in sorted(folder.glob("*.sql"), key=lambda p: p.stem):
            if path.stem in found and found[path.stem].resolve() != path.resolve():
                raise DefinitionError(f"dataset '{path.stem}' is also defined in {found[path.stem]}", path)
            found[path.stem] = path
    return found


def load_all() -> list[Definition]:
    return [load_file(path) for path in definition_paths().values()]


def resolve(name_or_path: str) -> Definition:
    """A dataset by name (`fineweb-edu`) or by the path of a .sql file."""
    candidate = Path(name_or_path).expanduser()
    if name_or_path.endswith(".sql") or os.sep in name_or_path:
        if not candidate.is_file():
            raise DefinitionError("no such definition file", candidate)
        return load_file(candidate)
    paths = definition_paths()
    if name_or_path not in paths:
        raise UnknownDatasetError(name_or_path, sorted(paths))
    return load_file(paths[name_or_path])
