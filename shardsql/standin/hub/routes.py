"""The route table: which method and path reach which answer, strictly, as on the Hub.

A path that matches a route with another method is a 405; a path that matches none is the
Hub's 404 (RepoNotFound for other repo types, which the stand-in never has). Any route of a
repo renamed by `hub.rename` answers first, with a relative 307 to the same route of its new name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote, unquote

from . import api, files, storage
from .errors import HubError
from .request import Request

REPO = r"(?P<repo>[^/]+/[^/]+)"
SHA = "[0-9a-f]{40}"
STORAGE = files.STORAGE_PREFIX
# (server, methods, path pattern, answer)
# An answer: (request, repo id, the rest of the path after the route's fixed part, or None).
Answer = Callable[[Request, str, str | None], None]
ROUTES: list[tuple[str, tuple[str, ...], re.Pattern[str], Answer]] = [
    ("hub", ("GET",), re.compile(rf"^/api/datasets/{REPO}$"), api.repo_info),
    ("hub", ("GET",), re.compile(rf"^/api/datasets/{REPO}/revision/(?P<rest>.+)$"), api.repo_info),
    ("hub", ("GET",), re.compile(rf"^/api/datasets/{REPO}/tree/(?P<rest>.+)$"), api.tree),
    ("hub", ("POST",), re.compile(rf"^/api/datasets/{REPO}/paths-info/(?P<rest>.+)$"), api.paths_info),
    ("hub", ("GET", "HEAD"), re.compile(rf"^/datasets/{REPO}/resolve/(?P<rest>.+)$"), files.resolve),
    # Where `resolve_via_cache` sends `resolve`, pinned to the commit.
    ("hub", ("GET", "HEAD"), re.compile(rf"^{files.CACHE_PREFIX}/{REPO}/(?P<rest>{SHA}/.+)$"), files.resolve_cache),
    # Where `redirect_files` sends file reads, as the Hub sends them to its storage (LFS or Xet).
    ("storage", ("GET", "HEAD"), re.compile(rf"^{STORAGE}/{REPO}/(?P<rest>{SHA}/.+)$"), storage.storage),
]
# Every route of a repo: what a renamed repo's old name redirects (prefix, repo, the rest).
REPO_ROUTE = re.compile(
    r"^(?P<prefix>/api/datasets/|/datasets/|/api/resolve-cache/datasets/)(?P<repo>[^/]+/[^/]+)(?P<tail>/.*)?$"
)
# Paths without "datasets/" mean model repos: a RepoNotFound makes HfFileSystem raise FileNotFoundError.
OTHER_REPO_ROUTE = re.compile(r"^/(api/(models|spaces)/.*|[^/]+/[^/]+/resolve/.*)$")


def dispatch(request: Request) -> None:
    path = request.path.split("?", 1)[0]
    if request.role == "hub" and (location := renamed(request, request.path)):
        return files.send_redirect(request, 307, location)
    if request.role == "hub" and path == "/api/agent-harnesses" and request.command == "GET":
        return api.agent_harnesses(request)
    for server, methods, pattern, answer in ROUTES:
        match = pattern.match(path)
        if server != request.role or match is None:
            continue
        if request.command not in methods:
            raise HubError(405, None, f"Method {request.command} not allowed here", {"Allow": ", ".join(methods)})
        return answer(request, unquote(match["repo"]), match.groupdict().get("rest"))
    if request.role == "hub" and OTHER_REPO_ROUTE.match(path):
        raise HubError(404, "RepoNotFound", "Repository not found")  # only datasets are served
    raise HubError(404, None, "Sorry, we can't find the page you are looking for.")


def renamed(request: Request, target: str) -> str | None:
    """The same route of the repo's new name, relative, if `target` names a repo renamed by `hub.rename`."""
    path, _, query = target.partition("?")
    match = REPO_ROUTE.match(path)
    if match is None:
        return None
    old = unquote(match["repo"])
    new = request.hub.renamed_to(old)
    if new is None:
        return None
    return f"{match['prefix']}{quote(new)}{match['tail'] or ''}" + (f"?{query}" if query else "")
