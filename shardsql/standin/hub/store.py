"""The served data: each repo's revisions as immutable in-memory snapshots with git-like ids."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

# Fixed metadata keeps every response, and so every test, deterministic.
COMMIT_DATE = "2024-01-01T00:00:00.000Z"
COMMIT_TITLE = "Snapshot served by shardsql's Hub stand-in"


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Snapshot:
    """The files of one repo revision, with git-like oids so that ETags and shas are stable across runs."""

    def __init__(self, repo_id: str, revision: str, folder: Path):
        paths = sorted(p for p in folder.rglob("*") if p.is_file())
        self.files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in paths}
        self.oids = {p: git_blob_oid(data) for p, data in self.files.items()}
        self.dirs = {p.rsplit("/", i)[0] for p in self.files for i in range(1, p.count("/") + 1)}
        listing = "".join(f"{p}\0{oid}\n" for p, oid in self.oids.items())
        self.sha = hashlib.sha1(f"{repo_id}\0{revision}\0{listing}".encode()).hexdigest()
        # The Hub knows each file's LFS sha256 before anyone asks: computed here, a first `/resolve/`
        # answers in a round trip (hashing then would add most of a second a 300 MB file).
        self._sha256s = {p: hashlib.sha256(data).hexdigest() for p, data in self.files.items()}
        self._gzipped: dict[str, bytes] = {}

    def sha256(self, path: str) -> str:
        """The file's sha256 (hex): the Hub's LFS oid, sent as `X-Linked-ETag`."""
        return self._sha256s[path]

    def xet_hash(self, path: str) -> str:
        """A 64-hex hash of the file for `X-Xet-Hash`: not its sha256, as the Hub's (a Merkle hash) is not."""
        return hashlib.sha256(f"xet\0{self.sha256(path)}".encode()).hexdigest()

    def gzipped(self, path: str) -> bytes:
        """The whole file, gzipped (deterministically: no timestamp), as a compressing CDN would send it."""
        if path not in self._gzipped:
            self._gzipped[path] = gzip.compress(self.files[path], mtime=0)
        return self._gzipped[path]

    def entry(self, path: str, expand: bool) -> dict[str, object]:
        commit = {"id": self.sha, "title": COMMIT_TITLE, "date": COMMIT_DATE}
        if path in self.files:
            out = {"type": "file", "oid": self.oids[path], "size": len(self.files[path]), "path": path}
            if expand:
                scan = {"status": "safe", "avScan": {"virusFound": False, "virusNames": None}}
                out |= {"lastCommit": commit, "securityFileStatus": scan | {"pickleImportScan": None}}
            return out
        oid = hashlib.sha1(f"tree\0{self.sha}\0{path}".encode()).hexdigest()  # not git's, but stable
        out = {"type": "directory", "oid": oid, "size": 0, "path": path}
        return {**out, "lastCommit": commit} if expand else out

    def children(self, path: str, recursive: bool) -> list[str]:
        prefix = path + "/" if path else ""
        below = [p for p in sorted(self.dirs | self.files.keys()) if p.startswith(prefix)]
        return below if recursive else [p for p in below if "/" not in p[len(prefix) :]]


class Repo:
    def __init__(self, gated: bool):
        self.gated = gated
        self.revisions: dict[str, Snapshot] = {}

    def snapshot(self, revision: str) -> Snapshot | None:
        found = self.revisions.get(revision)
        return found or next((s for s in self.revisions.values() if s.sha == revision), None)
