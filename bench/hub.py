"""The Hub stand-in, in its own process.

In production the Hub is another machine. Served from the benchmark's own process, the
stand-in's HTTP work would share the GIL with the conversion it measures; in its own
process it only shares the CPUs. It answers one-line commands on stdin.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from data import REPO

ROOT = Path(__file__).resolve().parent.parent


def serve(repo_dir: Path) -> None:
    """`bench.py --serve REPO_DIR`: run the stand-in; print its URL; answer commands."""
    from contenders import hub_stand_in

    hub = hub_stand_in().start()
    hub.add_dataset(REPO, repo_dir, revision="main")
    print(hub.url, flush=True)
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "reset":
            hub.reset_counters()
            reply = {}
        elif command == "latency":
            hub.before_response = _delay(float(rest[0]))
            reply = {}
        elif command == "stats":
            resolve = [r for r in hub.requests if "/resolve/" in r[1]]
            reply = {"bytes_served": hub.bytes_served, "requests": len(hub.requests), "file_requests": len(resolve)}
        else:
            reply = {"error": f"unknown command {command}"}
        print(json.dumps(reply), flush=True)
    hub.stop()


def _delay(seconds: float):
    """A `before_response` hook adding `seconds` to every request (None: no delay)."""
    if not seconds:
        return None
    return lambda handler: time.sleep(seconds) or False


class HubProcess:
    def __init__(self, repo_dir: Path):
        self._child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve().parent / "bench.py"), "--serve", str(repo_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.url = self._child.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise RuntimeError("the Hub stand-in did not start")

    def ask(self, *command: object) -> dict:
        self._child.stdin.write(" ".join(map(str, command)) + "\n")
        self._child.stdin.flush()
        return json.loads(self._child.stdout.readline())

    def close(self) -> None:
        self._child.stdin.close()
        self._child.wait(timeout=30)
