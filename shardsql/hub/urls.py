"""`hf://` URLs: which repo, revision and path glob a source names.

`hf://datasets/<org>/<repo>[@<rev>]/<path glob>`, where `<rev>` is a branch, tag or commit,
`refs/convert/parquet` or `refs/pr/N` unquoted or quoted (`refs%2Fconvert%2Fparquet`), or
`~parquet` (= `refs/convert/parquet`). Unquoted refs are split as huggingface_hub's
`parse_hf_uri` splits them: `refs/convert/<name>` and `refs/pr/<N>` take their segments,
any other revision one segment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from ..errors import SourceError

PARQUET_REF = "refs/convert/parquet"
REVISION_ALIASES = {"~parquet": PARQUET_REF}  # the alias DuckDB's hf:// reader accepts
HF_URL = re.compile(r"^hf://(?P<type>datasets|models|spaces)/(?P<repo>[^/@]+/[^/@]+)(?P<tail>[@/].*)?$")
# As huggingface_hub's parse_hf_uri: refs whose name spans several path segments.
SPECIAL_REF = re.compile(r"^refs/(?:convert/[\w.-]+|pr/\d+)(?=/|$)")


@dataclass(frozen=True)
class HubUrl:
    type: str  # datasets, models or spaces
    repo: str
    revision: str | None  # as the URL names it, unquoted and de-aliased
    pattern: str


def parse_url(url: str) -> HubUrl | None:
    """The parts of an `hf://` URL, or None for any other URL."""
    match = HF_URL.match(url)
    if match is None:
        return None
    tail, revision = match["tail"] or "", None
    path = tail.removeprefix("/")
    if tail.startswith("@"):
        rest = tail[1:]
        special = SPECIAL_REF.match(rest)
        revision, _, path = (special[0], "", rest[special.end() + 1 :]) if special else rest.partition("/")
        revision = REVISION_ALIASES.get(unquote(revision), unquote(revision))
    return HubUrl(match["type"], match["repo"], revision, path or "*.parquet")


def choose_revision(url: str, in_url: str | None, asked: str | None, override: bool) -> str:
    """The revision to read: `asked` if it overrides, else the URL's and `asked`, which must agree."""
    asked = REVISION_ALIASES.get(asked, asked) if asked else None
    if override and asked:
        return asked
    if in_url and asked and in_url != asked:
        raise SourceError(
            f"{url} names revision '{in_url}' but the definition's revision is '{asked}': make them agree "
            "(or pass --revision, which overrides both)"
        )
    return in_url or asked or "main"
