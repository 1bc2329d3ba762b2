"""File content on the Hub: `resolve` and `resolve-cache` (access checks, optional redirects), and the
answer with the bytes, used by the Hub and the storage host alike: single `Range` requests (206, 416)
or, to play a bad mirror, none.

With `redirect_files`, `resolve` answers as the Hub does for a file in LFS or Xet storage: a 302 to a
signed storage URL on another origin, carrying what clients read from it (`X-Linked-Size`,
`X-Linked-ETag`, `X-Xet-Hash` and the `Link` to Xet's reconstruction and token routes, which the
stand-in does not serve). With `resolve_via_cache`, `resolve` first answers a relative 307 to
`/api/resolve-cache/...` at the commit, which then answers as `resolve` would have."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from .errors import HubError
from .request import Request
from .store import Snapshot

STORAGE_PREFIX = "/__storage"
CACHE_PREFIX = "/api/resolve-cache/datasets"
RANGE_HEADER = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def resolve(request: Request, repo_id: str, rest: str | None) -> None:
    """`/datasets/{repo}/resolve/{rev}/{path}`: the file, a 302 to storage, or a 307 to `resolve-cache`."""
    snapshot, path = _check_access(request, repo_id, rest)
    hub = request.hub
    if hub.resolve_via_cache:  # same origin, relative, as the Hub's cacheable resolver
        quoted = quote(urlsplit(request.path).path, safe="")
        etag = quote(f'"{snapshot.oids[path]}"', safe="")
        location = f"{CACHE_PREFIX}/{quote(repo_id)}/{snapshot.sha}/{quote(path)}?{quoted}=&etag={etag}"
        headers = {"ETag": f'"{snapshot.oids[path]}"', "X-Repo-Commit": snapshot.sha}
        return send_redirect(request, 307, location, headers)
    answer_file(request, repo_id, snapshot, path)


def resolve_cache(request: Request, repo_id: str, rest: str | None) -> None:
    """`/api/resolve-cache/datasets/{repo}/{commit sha}/{path}`: answers as `resolve` does, without the 307."""
    snapshot, path = _check_access(request, repo_id, rest)  # the route only matches a commit sha there
    answer_file(request, repo_id, snapshot, path)


def _check_access(request: Request, repo_id: str, rest: str | None) -> tuple[Snapshot, str]:
    """The snapshot and path a file request names, or the Hub's 401/403 (gated) or 404 (missing)."""
    hub = request.hub
    repo, snapshot, path = request.lookup(repo_id, rest)
    auth = request.headers.get("Authorization")
    if repo.gated and (hub.token is None or auth != f"Bearer {hub.token}"):
        status, need = (401, "be authenticated") if auth is None else (403, "be in the authorized list")
        raise HubError(status, "GatedRepo", f"Access to dataset {repo_id} is restricted. You must {need}.")
    if path not in snapshot.files:
        raise HubError(404, "EntryNotFound", f"{path} does not exist on this revision")
    request.file = f"{repo_id}/{path}"
    return snapshot, path


def answer_file(request: Request, repo_id: str, snapshot: Snapshot, path: str) -> None:
    """The file's content, or with `redirect_files` the Hub's 302 to a signed storage URL."""
    hub = request.hub
    if not hub.redirect_files:
        return serve(request, snapshot, path, honour_range=True)
    storage_path = f"{STORAGE_PREFIX}/{repo_id}/{snapshot.sha}/{path}"
    signature = hub.signer.sign(storage_path, hub.clock(), hub.url_lifetime_s, hub.signed_url_styles)
    location = f"{hub.storage_url}{quote(storage_path)}" + (f"?{signature}" if signature else "")
    sha256, xet_hash = snapshot.sha256(path), snapshot.xet_hash(path)
    headers = {"ETag": f'"{snapshot.oids[path]}"', "X-Repo-Commit": snapshot.sha}
    headers |= {"X-Linked-Size": str(len(snapshot.files[path])), "X-Linked-ETag": f'"{sha256}"'}
    if hub.advertise_xet:
        reconstruction = f"{hub.storage_url}/reconstruction/{xet_hash}"
        token = f"{hub.url}/api/datasets/{quote(repo_id)}/xet-read-token/{snapshot.sha}"
        headers["X-Xet-Hash"] = xet_hash
        headers["Link"] = f'<{reconstruction}>; rel="xet-reconstruction-info", <{token}>; rel="xet-auth"'
    send_redirect(request, 302, location, headers)


def send_redirect(request: Request, status: int, location: str, headers: dict[str, str] | None = None) -> None:
    """A redirect as the Hub sends one: `Location`, and a short text body saying where to."""
    reason = {302: "Found", 307: "Temporary Redirect"}[status]
    body = f"{reason}. Redirecting to {location}".encode()
    request.send(status, body, {"Location": location, "Content-Type": "text/plain; charset=utf-8", **(headers or {})})


def serve(request: Request, snapshot: Snapshot, path: str, honour_range: bool) -> None:
    if path not in snapshot.files:
        raise HubError(404, "EntryNotFound", f"{path} does not exist on this revision")
    data = snapshot.files[path]
    headers = {"Accept-Ranges": "bytes" if honour_range else "none", "Content-Type": "application/octet-stream"}
    headers |= {"ETag": f'"{snapshot.oids[path]}"', "X-Repo-Commit": snapshot.sha}
    byte_range = parse_range(request.headers.get("Range"), len(data)) if honour_range else None
    if byte_range is None:
        return request.send(200, data, headers, count=True)
    start, end = byte_range
    if start > end:
        return request.send(416, b"", headers | {"Content-Range": f"bytes */{len(data)}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    request.send(206, data[start : end + 1], headers, count=True)


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
