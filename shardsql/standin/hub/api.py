"""The API answers: repo info, tree listings (paginated) and paths-info, as huggingface_hub 2.4 reads them."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from .errors import HubError
from .request import Request
from .store import COMMIT_DATE


def flag(values: list[str] | None) -> bool:
    return bool(values and values[0].lower() in ("true", "1"))


def _query(request: Request) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.path).query)


# huggingface_hub 2.4 fetches the Hub's registry of AI agent harnesses on its first request of
# the day and keeps it a day in HF_HOME; the Hub lists them. The stand-in lists none: the shape only.
AGENT_HARNESSES: dict[str, object] = {"standardEnvVars": [], "harnesses": {}}


def agent_harnesses(request: Request) -> None:
    """`/api/agent-harnesses`: the registry huggingface_hub asks for once a day (AGENT_HARNESSES)."""
    request.send_json(AGENT_HARNESSES)


def repo_info(request: Request, repo_id: str, rest: str | None) -> None:
    repo, snapshot, _ = request.lookup(repo_id, rest, exact=True)
    blobs = flag(_query(request).get("blobs"))
    siblings = [
        {"rfilename": p, **({"size": len(data), "blobId": snapshot.oids[p]} if blobs else {})}
        for p, data in snapshot.files.items()
    ]
    author = repo_id.split("/")[0]
    info: dict[str, object] = {"_id": snapshot.sha[:24], "id": repo_id, "author": author, "sha": snapshot.sha}
    info.update(lastModified=COMMIT_DATE, createdAt=COMMIT_DATE, private=False, disabled=False, tags=[])
    info.update(gated="auto" if repo.gated else False, downloads=0, likes=0, siblings=siblings)
    request.send_json(info | {"usedStorage": sum(map(len, snapshot.files.values()))})


def tree(request: Request, repo_id: str, rest: str | None) -> None:
    _, snapshot, path = request.lookup(repo_id, rest)
    path = path.strip("/")
    if path and path not in snapshot.dirs:  # a file too: HfFileSystem.ls relies on that
        raise HubError(404, "EntryNotFound", f"{path} does not exist on this revision")
    query, hub = _query(request), request.hub
    recursive, expand = flag(query.get("recursive")), flag(query.get("expand"))
    page_size = hub.tree_page_size_expanded if expand else hub.tree_page_size
    paths, start = snapshot.children(path, recursive), int(query.get("cursor", ["0"])[0])
    headers = {}
    if start + page_size < len(paths):
        query_string = f"recursive={str(recursive).lower()}&expand={str(expand).lower()}"
        next_url = f"{hub.url}{urlsplit(request.path).path}?{query_string}&cursor={start + page_size}"
        headers["Link"] = f'<{next_url}>; rel="next"'
    request.send_json([snapshot.entry(p, expand) for p in paths[start : start + page_size]], headers)


def paths_info(request: Request, repo_id: str, rest: str | None) -> None:
    _, snapshot, _ = request.lookup(repo_id, rest, exact=True)
    if "json" in (request.headers.get("Content-Type") or ""):
        body = json.loads(request.body or b"{}")
        paths, expand = body.get("paths", []), bool(body.get("expand"))
    else:  # what the client sends: paths=a&paths=b&expand=false
        form = parse_qs(request.body.decode())
        paths, expand = form.get("paths", []), flag(form.get("expand"))
    found = [p for p in (p.strip("/") for p in paths) if p in snapshot.files or p in snapshot.dirs]
    request.send_json([snapshot.entry(p, expand) for p in found])
