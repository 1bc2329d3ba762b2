"""The catalog of dataset definitions: one `.sql` file per dataset.

A definition is a header of `-- key: value` comment lines followed by exactly one SELECT
over a view named `source` that yields one column, `text`:

    -- description: FineWeb-Edu, 10BT sample
    -- source: hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet
    -- revision: main

    SELECT text FROM source
    WHERE text IS NOT NULL AND length(text) >= 50

A file whose header has a `-- mix:` line is a mixture of datasets instead (mixture.py):
`load_file` and `resolve` give a `Definition` (model.py) or a `Mixture` (mixture.py).

The header is parsed strictly (unknown or repeated keys are errors) so that a typo in a
pull request fails loudly instead of silently converting the wrong thing. This module
only reads text: it imports nothing heavy, which keeps `shardsql list` instant. The SQL
itself is checked by DuckDB (evaluator.py), the only thing that can really judge it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import DefinitionError, UnknownDatasetError
from . import mixture
from .mixture import Mixture, parse_mixture
from .model import MIXTURE_ONLY_KEYS, Definition, Header

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


def _fail(message: str, path: Path, line: int | None = None) -> DefinitionError:
    return DefinitionError(f"{message}\nA definition looks like this:\n{EXAMPLE}", path, line)


def read_header(text: str, path: Path) -> Header:
    """The header of a definition or a mixture; unknown, repeated and empty keys are errors."""
    found: list[tuple[str, str, int]] = []
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
        if match:  # a free comment inside the header is fine: only `-- key: value` lines are keys
            found.append((match.group(1).lower(), match.group(2), number))
    is_mixture = any(key in MIXTURE_ONLY_KEYS for key, _, _ in found)
    fail = mixture.fail if is_mixture else _fail
    allowed = mixture.REQUIRED_KEYS + mixture.OPTIONAL_KEYS if is_mixture else REQUIRED_KEYS + OPTIONAL_KEYS
    values: dict[str, str] = {}
    where: dict[str, int] = {}
    for key, value, number in found:
        # `source` in a mixture is a known key in the wrong place: parse_mixture says so.
        if key not in allowed + (mixture.DATASET_ONLY_KEYS if is_mixture else ()):
            kind = "a mixture's keys" if is_mixture else "allowed"
            raise fail(f"unknown header key '{key}' ({kind}: {', '.join(allowed)})", path, number)
        if key in values:
            raise fail(f"header key '{key}' is given twice", path, number)
        if not value:
            raise fail(f"header key '{key}' has no value", path, number)
        values[key], where[key] = value, number
    body = "\n".join(lines[body_start:]).strip().rstrip(";").strip()
    return Header(values, where, body, body_start + 1 if body else None)


def _check_name(name: str, path: Path) -> None:
    if not NAME_PATTERN.match(name):
        raise _fail(f"'{name}' is not a valid dataset name (lowercase letters, digits, '-' and '_')", path)


def parse(text: str, path: Path, name: str | None = None) -> Definition | Mixture:
    """A file's text as a dataset definition or, when its header has `-- mix:`, a mixture."""
    name = name or path.stem
    _check_name(name, path)
    header = read_header(text, path)
    if header.is_mixture:
        return parse_mixture(
            text, path=path, header=header, name=name, locate=lambda ref: _component_file(ref, path), load=_component
        )
    return _definition(text, path, header, name)


def parse_definition(text: str, path: Path, name: str | None = None) -> Definition:
    """Parse a dataset definition's text; `path` is used for the name and in error messages."""
    name = name or path.stem
    _check_name(name, path)
    header = read_header(text, path)
    if header.is_mixture:
        raise _fail("this is a mixture (its header has a `-- mix:` line), not a dataset definition", path)
    return _definition(text, path, header, name)


def _definition(text: str, path: Path, header: Header, name: str) -> Definition:
    for key in REQUIRED_KEYS:
        if key not in header.values:
            raise _fail(f"the header has no '{key}'", path)
    sql = header.body
    if not sql:
        raise _fail("there is no SELECT after the header", path)
    if not re.match(r"(?is)^(with|select|from)\b", sql):
        raise _fail("the definition must be one SELECT over source", path, header.body_line)
    values = header.values
    return Definition(
        name=name,
        path=path,
        description=values["description"],
        source=resolve_source(values["source"], path),
        revision=values.get("revision"),
        sql=sql,
        text=text,
        extra={k: v for k, v in values.items() if k not in ("description", "source", "revision")},
    )


def resolve_source(source: str, path: Path) -> str:
    """A relative local `-- source:` path, resolved against the definition's own folder (as
    an include would be), so the definition means the same from any working directory."""
    if "://" in source or source.startswith(("/", "~")):
        return source
    return os.path.normpath(path.expanduser().absolute().parent / source) + ("/" if source.endswith("/") else "")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(f"cannot read the definition: {exc.strerror}", path) from exc
    except UnicodeDecodeError as exc:
        raise DefinitionError("the definition is not UTF-8 text", path) from exc


def load_file(path: Path) -> Definition | Mixture:
    """The dataset definition or the mixture in a .sql file."""
    return parse(_read(path), path)


def _component_file(ref: str, mixture_path: Path) -> Path:
    """A mixture's component: a dataset's name, or a .sql file's path (relative to the mixture's folder)."""
    if _is_path(ref):
        candidate = Path(ref).expanduser()
        if not candidate.is_absolute():
            candidate = Path(os.path.normpath(mixture_path.expanduser().absolute().parent / candidate))
        if not candidate.is_file():
            raise _no_such_file(candidate)
        return candidate
    return _named(ref)


def _component(path: Path) -> Definition | None:
    """A component's dataset definition; None for a mixture, whose own components are not read."""
    text = _read(path)
    header = read_header(text, path)
    if header.is_mixture:
        return None
    _check_name(path.stem, path)
    return _definition(text, path, header, path.stem)


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


def load_all() -> list[Definition | Mixture]:
    """Every known dataset definition and mixture (in definition_paths' order)."""
    return [load_file(path) for path in definition_paths().values()]


def load_datasets() -> list[Definition]:
    """Every known dataset definition, mixtures left out (`shardsql sql` makes a view of each)."""
    return [d for d in load_all() if isinstance(d, Definition)]


def _no_such_file(path: Path) -> DefinitionError:
    """A definition file that is not there, and the folder it was looked for in: a relative path
    is read from the working directory, which is not always the one the user thinks."""
    folder = path.absolute().parent
    where = "" if path.parent.is_absolute() else f" in {folder}"
    return DefinitionError(f"no such definition file{where}", path)


def _is_path(name_or_path: str) -> bool:
    return name_or_path.endswith(".sql") or os.sep in name_or_path


def _named(name: str) -> Path:
    paths = definition_paths()
    if name not in paths:
        raise UnknownDatasetError(name, sorted(paths))
    return paths[name]


def resolve(name_or_path: str) -> Definition | Mixture:
    """A dataset or a mixture by name (`fineweb-edu`) or by the path of a .sql file."""
    if _is_path(name_or_path):
        candidate = Path(name_or_path).expanduser()
        if not candidate.is_file():
            raise _no_such_file(candidate)
        return load_file(candidate)
    return load_file(_named(name_or_path))
