"""What an answer needs of a request: `Request`, the part of handler.py's `Handler` that the
route table (routes.py) and the answers (api.py, files.py, storage.py) use.

`Handler` reads a request, applies the faults and routes it: it imports the routes. So the
answers name this protocol instead of `Handler`, and the modules import each other in one
direction: server -> handler -> routes -> answers -> request -> state. A `Handler` is a
`Request` by its shape; nothing registers it.
"""

from __future__ import annotations

from email.message import Message
from typing import Protocol

from .state import HubState
from .store import Repo, Snapshot


class Request(Protocol):
    """One request being answered, on the Hub or the storage host."""

    command: str  # the method: "GET", "HEAD", "POST"...
    path: str  # with the query
    headers: Message
    body: bytes  # read before the request is routed
    file: str | None  # "{repo}/{path}" once a file route has found the file (for `transfers`)

    @property
    def role(self) -> str:
        """The server it came to: "hub" or "storage"."""
        ...

    @property
    def hub(self) -> HubState:
        """The stand-in it came to: what is served, the settings and faults in play."""
        ...

    def lookup(self, repo_id: str, rest: str | None, exact: bool = False) -> tuple[Repo, Snapshot, str]:
        """The repo, the snapshot of the revision that `rest` starts with, and the path after it."""
        ...

    def send(self, status: int, body: bytes, headers: dict[str, str], count: bool = False) -> None:
        """Answer; `count`: the body is file content, counted in `bytes_served`."""
        ...

    def send_json(self, payload: object, headers: dict[str, str] | None = None) -> None: ...
