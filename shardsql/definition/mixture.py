"""A mixture: a `.sql` file whose header names datasets and their weights instead of a SELECT.

    -- description: Educational web text with Python code
    -- mix: fineweb-edu-high 70%, github-code-python 30%
    -- mix-by: characters

Each component is a built-in dataset's name or the path of a dataset's `.sql` file (a
relative path is read from the mixture's own folder). The weights are either all
percentages adding up to 100% or all plain positive numbers (`7, 2, 1`), and are kept
exact (`Fraction`s adding up to 1). `mix-by` says what the weights share out: the
characters of text (the default) or the documents. A mixture of mixtures is refused: a
component must be a dataset, so what a mixture holds is written in one place.

The catalog reads the header and finds the component files (it knows the built-in names);
this module judges the mix and builds the `Mixture`. The catalog imports this module, so
this one never imports the catalog: the types both use (`Header`, `Definition`) are in
model.py, and the catalog hands in how to find and read a component (`locate`, `load`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import DefinitionError, ShardsqlError
from .model import Definition, Header

MIX_BY = ("characters", "documents")
DEFAULT_MIX_BY = "characters"
REQUIRED_KEYS = ("description", "mix")
OPTIONAL_KEYS = ("mix-by", "license", "notes")
# Dataset keys that have no meaning in a mixture: each component reads its own source.
DATASET_ONLY_KEYS = ("source", "revision")
MIN_COMPONENTS = 2
PERCENT_TOLERANCE = Fraction(1, 10**9)  # percentages must add up to 100 within this
WEIGHT = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)%?$")

EXAMPLE = """\
    -- description: Educational web text with Python code
    -- mix: fineweb-edu-high 70%, github-code-python 30%
    -- mix-by: characters"""


@dataclass(frozen=True)
class Component:
    """One dataset of a mixture and its share."""

    definition: Definition  # the component's parsed dataset definition
    weight: Fraction  # normalised: the components' weights add up to exactly 1


@dataclass(frozen=True)
class Mixture:
    """A parsed mixture definition."""

    name: str
    path: Path
    description: str
    components: tuple[Component, ...]
    mix_by: str  # "characters" or "documents"
    text: str  # the whole file, as reviewed
    extra: dict[str, str]  # license, notes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def mix(self) -> str:
        """The mix in words, e.g. "fineweb-edu-high 70%, github-code-python 30% (by characters)"."""
        parts = ", ".join(f"{c.definition.name} {percent(c.weight)}" for c in self.components)
        return f"{parts} (by {self.mix_by})"


def _decimal(value: Fraction, places: int) -> str:
    return f"{float(value):.{places}f}".rstrip("0").rstrip(".")


def percent(weight: Fraction) -> str:
    """A weight as a percentage: 70%, 12.5%, 33.3333% (at most 4 decimals)."""
    return f"{_decimal(weight * 100, 4)}%"


def fail(message: str, path: Path, line: int | None = None) -> DefinitionError:
    return DefinitionError(f"{message}\nA mixture looks like this:\n{EXAMPLE}", path, line)


def _weights(entries: list[tuple[str, str]], path: Path, line: int) -> list[Fraction]:
    """The entries' weights, normalised to add up to exactly 1."""
    for ref, weight in entries:
        if not WEIGHT.match(weight):
            raise fail(f"'{weight}' is not a weight (for '{ref}'): write a percentage like 70% or a number", path, line)
    if len({weight.endswith("%") for _, weight in entries}) > 1:
        raise fail("the weights mix percentages and plain numbers: give every component a percentage "
                   "(adding up to 100%) or every one a plain number", path, line)  # fmt: skip
    values = [Fraction(weight.removesuffix("%")) for _, weight in entries]
    for (ref, weight), value in zip(entries, values, strict=True):
        if value <= 0:
            raise fail(f"the weight of '{ref}' is {weight}: a weight must be more than 0", path, line)
    total = sum(values, Fraction(0))
    if entries[0][1].endswith("%") and abs(total - 100) > PERCENT_TOLERANCE:
        raise fail(f"the percentages add up to {_decimal(total, 10)}%, not 100%", path, line)
    return [value / total for value in values]


def _entries(mix: str, path: Path, line: int) -> list[tuple[str, str]]:
    """The `-- mix:` line as (component, weight) pairs, as written."""
    entries = []
    for part in mix.split(","):
        words = part.strip().rsplit(None, 1)
        if not words:
            raise fail("the mix has an empty entry (two commas, or one at an end)", path, line)
        if len(words) == 1:
            raise fail(f"'{words[0]}' has no weight: every component needs one", path, line)
        entries.append((words[0], words[1]))
    if len(entries) < MIN_COMPONENTS:
        raise fail(f"a mixture needs at least {MIN_COMPONENTS} components, the mix names {len(entries)}", path, line)
    return entries


def parse_mixture(
    text: str,
    *,
    path: Path,
    header: Header,
    name: str,
    locate: Callable[[str], Path],
    load: Callable[[Path], Definition | None],
) -> Mixture:
    """Build the mixture that `header` (read by the catalog from `text`) describes.

    `locate` gives a component's file (a dataset name or a path, relative ones read from the
    mixture's folder) or raises; `load` parses it, None for a mixture (whose own components
    are never read: a nested mixture is refused whatever it holds)."""
    for key in DATASET_ONLY_KEYS:
        if key in header.values:
            raise fail(f"'{key}' is not allowed in a mixture: each component reads its own definition's "
                       f"{key}", path, header.lines[key])  # fmt: skip
    for key in REQUIRED_KEYS:
        if key not in header.values:
            raise fail(f"the header has no '{key}'", path)
    if header.body:
        raise fail("a mixture has no SELECT: its components' definitions select the text (remove the SQL, "
                   "or the `-- mix:` line)", path, header.body_line)  # fmt: skip
    mix_by = header.values.get("mix-by", DEFAULT_MIX_BY)
    if mix_by not in MIX_BY:
        raise fail(f"mix-by is '{mix_by}': it must be {' or '.join(MIX_BY)}", path, header.lines.get("mix-by"))
    line = header.lines["mix"]
    entries = _entries(header.values["mix"], path, line)
    weights = _weights(entries, path, line)
    own = path.expanduser().absolute().resolve()
    seen: dict[Path, str] = {}
    components: list[Component] = []
    for (ref, _), weight in zip(entries, weights, strict=True):
        try:
            found = locate(ref)
        except ShardsqlError as exc:
            raise fail(f"component '{ref}': {exc}", path, line) from None
        file = found.expanduser().absolute().resolve()
        if file == own:
            raise fail(f"a mixture cannot contain itself: '{ref}' is this file", path, line)
        if file in seen:
            also = "" if seen[file] == ref else f" (as '{seen[file]}')"
            raise fail(f"'{ref}' is listed twice{also}: give each component once, with its whole weight", path, line)
        seen[file] = ref
        definition = load(found)
        if definition is None:
            raise fail(f"'{ref}' is itself a mixture: nested mixtures are not supported; list its components "
                       "directly, with their weights multiplied out", path, line)  # fmt: skip
        components.append(Component(definition, weight))
    return Mixture(
        name=name,
        path=path,
        description=header.values["description"],
        components=tuple(components),
        mix_by=mix_by,
        text=text,
        extra={k: v for k, v in header.values.items() if k not in ("description", "mix", "mix-by")},
    )
