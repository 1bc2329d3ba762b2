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
    hub.redirect_files = True  # as the Hub does: /resolve/ answers 302 to a signed storage URL
    hub.add_dataset(REPO, repo_dir, revision="main")
    print(hub.url, flush=True)
    for line in sys.stdin:
        command, *rest = line.split()
        reply: dict = {}
        if command == "reset":
            hub.reset_counters()
        elif command == "latency":
            hub.before_response = _delay(float(rest[0]))
        elif command == "network":  # round trip (s), a connection's pace and the link's rate (bytes/s)
            hub.model_network(float(rest[0]), float(rest[1]), float(rest[2]))
        elif command == "redirect":  # 0: play a mirror that answers /resolve/ with the bytes itself
            hub.redirect_files = rest[0] == "1"
        elif command == "limit":  # /resolve/ requests a window of so many seconds (0 0: no limit)
            hub.limit_rate(resolvers=int(rest[0]) or None, window_s=int(rest[1]) or 300)
        elif command == "stats":
            reply = stats(hub)
        elif command == "transfers":  # every answer: kind, status, bytes, and its times from the first request
            first = min((t.received for t in hub.transfers), default=0.0)
            reply = {"transfers": [(t.kind, t.status, t.body_bytes, round(t.received - first, 3),
                                    round((t.finished or t.received) - first, 3)) for t in hub.transfers]}  # fmt: skip
        else:
            reply = {"error": f"unknown command {command}"}
        print(json.dumps(reply), flush=True)
    hub.stop()


def stats(hub) -> dict:
    """What the stand-in served since the last reset: bytes, requests, resolves per file, how
    many file reads ran at once at most, and the time between the first read and the last byte."""
    transfers = [t for t in list(hub.transfers) if t.file is not None and t.method == "GET"]
    reads = [t for t in transfers if t.status in (200, 206)]  # the answers that carried file bytes
    resolves = hub.requests_per_file("resolve")
    refused = sum(1 for t in transfers if t.kind == "resolve" and t.status == 429)
    ends = [t.finished for t in reads if t.finished is not None]
    start = min((t.received for t in reads), default=0.0)
    timeline = [0.0] * (int(max(ends, default=start) - start) + 1)
    for t in reads:  # each body's bytes spread evenly over the time it took (the model paces them so)
        began, took = t.answered or t.received, max((t.finished or t.received) - (t.answered or t.received), 1e-9)
        for second in range(int(began - start), int((t.finished or began) - start) + 1):
            overlap = min(start + second + 1, t.finished or began) - max(start + second, began)
            timeline[second] += t.body_bytes * max(overlap, 0.0) / took / 1e6
    return {
        "timeline_mb_a_second": [round(x, 1) for x in timeline],
        "bytes_served": hub.bytes_served,
        "requests": len(hub.requests),
        "file_requests": len(reads),
        "resolves": sum(resolves.values()),
        "resolves_refused": refused,
        "files": len(resolves),
        "most_resolves_a_file": max(resolves.values(), default=0),
        "most_reads_at_once": hub.most_reads_at_once(),
        "read_seconds": (max(ends) - min(t.received for t in reads)) if ends else 0.0,
    }


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
