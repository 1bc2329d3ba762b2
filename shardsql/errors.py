"""One error hierarchy for everything shardsql reports to a user.

The CLI catches `ShardsqlError` and prints its message without a traceback, so every
message here is written for a person: it names the file or dataset involved and, where
it can, says what to do next.
"""

from __future__ import annotations


class ShardsqlError(Exception):
    """Base class: a problem the user can act on (bad input, missing data, network)."""

    exit_code = 1


class DefinitionError(ShardsqlError):
    """A dataset definition (a .sql file) is malformed or its SQL is not acceptable."""

    def __init__(self, message: str, path: object = None, line: int | None = None):
        where = f"{path}:{line}: " if path and line else f"{path}: " if path else ""
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class UnknownDatasetError(ShardsqlError):
    """A name that is neither a known dataset nor an existing .sql file."""

    def __init__(self, name: str, known: list[str]):
        import difflib

        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        super().__init__(
            f"Unknown dataset '{name}'.{hint} Known datasets: {', '.join(known) or '(none)'}. "
            "A path to your own .sql file works too."
        )
        self.name = name


class SourceError(ShardsqlError):
    """The source data cannot be listed or read (missing repo, revision, files, bad parquet)."""


class OptionsError(ShardsqlError):
    """An option value that cannot work (e.g. zero shards)."""

    exit_code = 2


class ConversionError(ShardsqlError):
    """The conversion ran but its output is not usable (e.g. no rows survived the filter)."""
