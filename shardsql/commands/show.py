"""`shardsql show`: how a definition runs, and the source files it resolves to.

Its SQL is bound against the source's schema first, as `convert --dry-run` binds it: a
definition that `show` prints is one that convert can run.

A dataset's source is its definition's, or --source's; its revision its definition's, or
--revision's (which overrides a revision pinned in the source's URL as well). A mixture's
components each resolve their own, with no override (--source and --revision apply to one
dataset: commands/options.py's `for_one_dataset`).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..definition.analysis import Shape
from ..definition.evaluator import Evaluator
from ..definition.mixture import Mixture
from ..definition.model import Definition
from ..source.files import Source, open_source
from ..source.footers import read_footer


def shape(definition: Definition) -> Shape:
    """How a definition runs (row by row, or over the whole source) and whether it orders its rows."""
    evaluator = Evaluator(definition)
    evaluator.close()
    return evaluator.shape


def resolved(model: Definition | Mixture, revision: str | None = None,
             source_url: str | None = None) -> Iterator[tuple[str, Source]]:  # fmt: skip
    """Each source a dataset or a mixture reads, listed, one at a time: (a label, "" for a
    dataset and "NAME: " for a mixture's component, and the source), each definition bound
    against its source's schema (`bind`)."""
    if isinstance(model, Mixture):
        for c in model.components:
            yield f"{c.definition.name}: ", _open(c.definition)
    else:
        yield "", _open(model, revision, source_url)


def _open(definition: Definition, revision: str | None = None, source_url: str | None = None) -> Source:
    source = open_source(source_url or definition.source, revision or definition.revision, override=bool(revision))
    bind(definition, source)
    return source


def bind(definition: Definition, source: Source) -> None:
    """Bind the SQL against the source's schema (its first file's footer), as `convert` and its
    --dry-run do: a misspelt column, a wrong type or a second column fails here, with the source's
    columns listed, before anything else is read."""
    evaluator = Evaluator(definition)
    try:
        evaluator.check(read_footer(source, source.files[0]).schema)
    finally:
        evaluator.close()
