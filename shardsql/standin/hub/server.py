"""The stand-in's lifecycle: its two HTTP servers, started and stopped.

Two HTTP servers on 127.0.0.1, each on its own free port: the Hub (API and `resolve`) and a
storage host, a different origin as the Hub's storage is, so that redirected reads cross
origins as they do in production (and an Authorization header sent there would show).

`HubStandIn` is the stand-in's one public class: the state (state.py: served repos, settings,
counters) with the servers that answer from it. It is the top of the stand-in's modules: it
imports the request handling (handler.py), which imports the answers, which import the state;
none of them imports this module.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from .handler import Handler, Server
from .state import HubState

HOST = "127.0.0.1"
# shutdown() waits for the serve loop to notice; the default 0.5 s would dominate short tests.
POLL_INTERVAL = 0.05


class HubStandIn(HubState):
    """Serve local folders as Hub dataset repos on ``http://127.0.0.1:<free port>``."""

    def __init__(self, token: str | None = None):
        super().__init__(token)
        self._servers: dict[str, Server] = {}

    def start(self) -> HubStandIn:
        if not self._servers:
            self._stopping.clear()
            for role in ("hub", "storage"):
                server = Server((HOST, 0), Handler)
                server.hub, server.role = self, role
                self._servers[role] = server
                self._urls[role] = f"http://{HOST}:{server.server_port}"  # the free port bound
                thread = threading.Thread(target=server.serve_forever, args=(POLL_INTERVAL,), daemon=True)
                thread.name = f"standin-hub-{role}"
                thread.start()
        return self

    def stop(self) -> None:
        if not self._servers:
            return
        self._stopping.set()
        servers, self._servers, self._urls = self._servers, {}, {}
        for server in servers.values():
            server.shutdown()
            server.server_close()
        # Clients keep pooled keep-alive connections open: close them so nothing is answered after stop().
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> HubStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
