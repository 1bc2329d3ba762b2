"""What reading a `.sql` file gives: its `Header` and, for a dataset, its `Definition`.

Both the catalog (which reads the files) and the mixture (whose components are
`Definition`s, and which judges a mixture's `Header`) use these types, so they live here,
below both: the catalog imports the mixture and this module, the mixture imports only this
one, and no two modules import each other. A `Mixture` is defined in mixture.py, beside
the rules that build it. This module holds data and the one rule a header needs to say what
it is (`MIXTURE_ONLY_KEYS`); parsing stays in catalog.py and mixture.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

MIXTURE_ONLY_KEYS = ("mix", "mix-by")  # either of them makes the file a mixture


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


@dataclass(frozen=True)
class Header:
    """A file's `-- key: value` lines (keys lowercased), the line of each, and the SQL after them."""

    values: dict[str, str]
    lines: dict[str, int]
    body: str  # what follows the header, stripped ('' when nothing does)
    body_line: int | None  # the line where the body starts

    @property
    def is_mixture(self) -> bool:
        return any(key in self.values for key in MIXTURE_ONLY_KEYS)
