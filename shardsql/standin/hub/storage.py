"""The storage host: where `redirect_files` sends file reads, played as the Hub's S3/CloudFront storage.

It is another service than the Hub: another origin (a second port), no Hub rate limits, no Hub
error codes; its errors are S3's XML. In order, a request there:

1. must carry a valid signature in each style of ``hub.signed_url_styles``, unexpired on
   ``hub.clock``, or gets 403 AccessDenied ("Access Denied", or "Request has expired");
2. may meet a fault set by ``hub.storage_fault``: 403 AccessDenied on a valid URL (xet-core#897),
   or a stale edge-cache object's 416 ``bytes */{total}`` (datasets#7685);
3. with ``hub.storage_gzips`` and an ``Accept-Encoding`` that admits gzip, gets 200 with the
   whole file gzipped, whatever its Range (a compressing CDN ignores Range);
4. otherwise gets the file, or its one Range (206, 416), or, with ``hub.storage_ignores_range``,
   200 with the whole file.
"""

from __future__ import annotations

import secrets
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

from .files import parse_range, serve
from .request import Request
from .signing import ACCESS_DENIED
from .store import Snapshot


def storage(request: Request, repo_id: str, rest: str | None) -> None:
    hub = request.hub
    url = urlsplit(request.path)
    if denial := hub.signer.check(unquote(url.path), url.query, hub.clock(), hub.signed_url_styles):
        return send_xml_error(request, 403, "AccessDenied", denial.message, denial.fields)
    sha, _, quoted = (rest or "").partition("/")
    repo_id = hub.current_repo_id(repo_id)
    _, snapshot, _ = request.lookup(repo_id, sha, exact=True)
    path = unquote(quoted)
    request.file = f"{repo_id}/{path}"
    if request.command == "GET" and path in snapshot.files and _fault(request, snapshot, path):
        return
    if hub.storage_gzips and path in snapshot.files and accepts_gzip(request.headers.get("Accept-Encoding")):
        headers = {"Content-Type": "application/octet-stream", "Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        headers["ETag"] = f'"{snapshot.oids[path]}"'
        return request.send(200, snapshot.gzipped(path), headers, count=True)
    serve(request, snapshot, path, honour_range=not hub.storage_ignores_range)


def _fault(request: Request, snapshot: Snapshot, path: str) -> bool:
    """Answer with the next fault set for storage GETs, if any applies to this one; True if answered."""
    hub, range_header = request.hub, request.headers.get("Range")
    if hub.take_storage_fault("access-denied") is not None:
        send_xml_error(request, 403, "AccessDenied", ACCESS_DENIED)
        return True
    if range_header is None or (total := hub.take_storage_fault("stale-416")) is None:
        return False
    if total < 0:  # no size given: the stale object ends just before the range asked for
        asked = parse_range(range_header, len(snapshot.files[path]))
        total = asked[0] if asked else 0
    fields = {"RangeRequested": range_header, "ActualObjectSize": str(total)}
    send_xml_error(request, 416, "InvalidRange", "The requested range is not satisfiable", fields,
                   {"Content-Range": f"bytes */{total}"})  # fmt: skip
    return True


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding admits gzip. No header: no (CDNs only compress when asked to)."""
    weights = {}
    for item in (header or "").split(","):
        name, _, params = item.strip().partition(";")
        q = params.strip().removeprefix("q=").strip() if params.strip().startswith("q=") else "1"
        try:
            weights[name.strip().lower()] = float(q)
        except ValueError:
            weights[name.strip().lower()] = 0.0
    return weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0))) > 0


def send_xml_error(request: Request, status: int, code: str, message: str, fields: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> None:  # fmt: skip
    """S3's error answer: `<Error><Code>...</Code><Message>...</Message>...</Error>`, as application/xml."""
    fields = (fields or {}) | {"RequestId": secrets.token_hex(8).upper(), "HostId": secrets.token_urlsafe(24)}
    extra = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in fields.items())
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{escape(message)}</Message>'
    request.send(status, f"{body}{extra}</Error>".encode(), {"Content-Type": "application/xml", **(headers or {})})
