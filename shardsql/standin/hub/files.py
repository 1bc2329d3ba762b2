"""File content: `resolve` on the Hub (access checks, optional redirect) and the storage host
that serves the bytes, with single `Range` requests (206, 416) or, to play a bad mirror, none."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from .errors import HubError

if TYPE_CHECKING:
    from .handler import Handler
    from .store import Snapshot

STORAGE_PREFIX = "/__storage"
RANGE_HEADER = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def resolve(handler: Handler, repo_id: str, rest: str | None) -> None:
    hub = handler.hub
    repo, snapshot, path = handler.lookup(repo_id, rest)
    auth = handler.headers.get("Authorization")
    if repo.gated and (hub.token is None or auth != f"Bearer {hub.token}"):
        status, need = (401, "be authenticated") if auth is None else (403, "be in the authorized list")
        raise HubError(status, "GatedRepo", f"Access to dataset {repo_id} is restricted. You must {need}.")
    if path not in snapshot.files:
        raise HubError(404, "EntryNotFound", f"{path} does not exist on this revision")
    if hub.redirect_files:  # to the storage host: another origin, as the Hub's storage is
        location = f"{hub.storage_url}{STORAGE_PREFIX}/{quote(repo_id)}/{snapshot.sha}/{quote(path)}"
        headers = {"Location": location, "ETag": f'"{snapshot.oids[path]}"', "X-Repo-Commit": snapshot.sha}
        return handler.send(302, b"", headers)
    serve(handler, snapshot, path, honour_range=True)


def storage(handler: Handler, repo_id: str, rest: str | None) -> None:
    sha, _, path = (rest or "").partition("/")
    _, snapshot, _ = handler.lookup(repo_id, sha, exact=True)
    serve(handler, snapshot, unquote(path), honour_range=not handler.hub.storage_ignores_range)


def serve(handler: Handler, snapshot: Snapshot, path: str, honour_range: bool) -> None:
    if path not in snapshot.files:
        raise HubError(404, "EntryNotFound", f"{path} does not exist on this revision")
    data = snapshot.files[path]
    headers = {"Accept-Ranges": "bytes" if honour_range else "none", "Content-Type": "application/octet-stream"}
    headers |= {"ETag": f'"{snapshot.oids[path]}"', "X-Repo-Commit": snapshot.sha}
    byte_range = parse_range(handler.headers.get("Range"), len(data)) if honour_range else None
    if byte_range is None:
        return handler.send(200, data, headers, count=True)
    start, end = byte_range
    if start > end:
        return handler.send(416, b"", headers | {"Content-Range": f"bytes */{len(data)}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    handler.send(206, data[start : end + 1], headers, count=True)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Inclusive (start, end) of a single range; start > end means 416, None means serve it all."""
    match = RANGE_HEADER.match(header or "")
    if match is None or match.groups() == ("", ""):
        return None  # absent or malformed (multi-range too): RFC 9110 lets us ignore it
    first, last = match.groups()
    if not first:  # suffix range: the last n bytes
        return (max(0, size - int(last)), size - 1) if int(last) else (1, 0)
    if last and int(last) < int(first):
        return None
    return int(first), min(int(last), size - 1) if last else size - 1
