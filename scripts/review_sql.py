#!/usr/bin/env python3
"""The review report of every dataset definition a change adds or edits, as markdown: for CI.

For each `sql/*.sql` that differs between the merge base of BASE and HEAD (what a pull
request changes):
  - edited: `shardsql explain OLD --against NEW --format markdown`, OLD being the file as it
    is at the merge base (named NAME_BASE, e.g. fineweb-edu_origin-main), so the report ends with what the edit changes:
    the texts only one side keeps and how the kept lengths move;
  - added (or a mixture, which --against does not compare): `shardsql explain NEW`;
  - removed: a line saying so.
The markdown goes to stdout (a GitHub Actions job appends it to $GITHUB_STEP_SUMMARY: see
docs/review.md). A definition that fails to explain (bad SQL, a source that cannot be read)
is reported with shardsql's message, and the script then exits 1, so the check fails.

Usage: ./dev review [--base origin/main] [--sample-rows N] [other explain options]
   or: .venv/bin/python scripts/review_sql.py [the same options]
Run it from the repository (any folder in it); shardsql runs as `python -m shardsql` with
this interpreter, so run it with the project's environment: `./dev review`, or the clone's
.venv/bin/python once `./dev setup` has made it (in CI: `uv run python scripts/review_sql.py`).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

MIXTURE = re.compile(r"^--\s*mix:", re.MULTILINE)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def explain(args: list[str], cwd: Path) -> tuple[str, str | None]:
    """shardsql explain's markdown, and its error message where it failed."""
    done = subprocess.run([sys.executable, "-m", "shardsql", "explain", *args, "--format", "markdown"], cwd=cwd,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout, (done.stderr.strip() or f"exit status {done.returncode}") if done.returncode else None


def demoted(markdown: str) -> str:
    """explain's headings one level down (its `##` a `###`), outside fenced blocks: under the
    report's `#` title and each file's `##`."""
    lines, fenced = [], False
    for line in markdown.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        lines.append("#" + line if line.startswith("#") and not fenced else line)
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--base", default="origin/main", help="the branch the change goes into [origin/main]")
    parser.add_argument("--sample-rows", type=int, default=None, help="explain's --sample-rows")
    options, extra = parser.parse_known_args(argv)
    if options.sample_rows is not None:
        extra = ["--sample-rows", str(options.sample_rows), *extra]

    try:
        root = Path(git("rev-parse", "--show-toplevel", cwd=Path.cwd()).strip())
    except subprocess.CalledProcessError:
        print(f"review_sql: {Path.cwd()} is not in a git repository: run it in a clone", file=sys.stderr)
        return 2
    try:
        base = git("merge-base", options.base, "HEAD", cwd=root).strip()
    except subprocess.CalledProcessError:
        print(f"review_sql: no common commit of {options.base!r} and HEAD: name the branch your change goes into "
              "with --base (e.g. --base main)", file=sys.stderr)  # fmt: skip
        return 2
    changes = git("diff", "--name-status", "--no-renames", f"{base}..HEAD", "--", "sql/*.sql", cwd=root)
    label = re.sub(r"[^a-z0-9_-]+", "-", options.base.lower())  # a definition's name: a-z, 0-9, - and _

    print(f"# Dataset definitions changed since {options.base} ({base[:12]})\n")
    failed = False
    rows = [line.split("\t") for line in changes.splitlines() if line.strip()]
    if not rows:
        print("No definition in sql/ changed.")
        return 0
    with tempfile.TemporaryDirectory(prefix="review-sql-") as tmp:
        for status, path in rows:
            new = root / path
            print(f"\n---\n\n## `{path}`: {'removed' if status == 'D' else 'added' if status == 'A' else 'edited'}\n")
            if status == "D":
                print(f"The change removes `{path}`.")
                continue
            args, shown = [path], {}  # the edited file by its path in the repository, as explain runs in it
            if status != "A" and not MIXTURE.search(new.read_text()):
                old_text = git("show", f"{base}:{path}", cwd=root)
                if not MIXTURE.search(old_text):
                    old = Path(tmp) / f"{Path(path).stem}_{label}.sql"
                    old.write_text(old_text)
                    args = [str(old), "--against", path]
                    shown = {str(old): f"{path} @ {options.base}"}  # the base's file, not where it was written
            markdown, error = explain([*args, *extra], cwd=root)
            for written, name in shown.items():
                markdown, error = markdown.replace(written, name), error and error.replace(written, name)
            print(demoted(markdown))
            if error is not None:
                failed = True
                print(f"**`shardsql explain` failed on `{path}`:**\n\n```text\n{error}\n```")
    return 1 if failed else 0


def run() -> int:
    """`main`, quiet when the reader of its output stops early (`| head`), as shardsql is."""
    try:
        code = main()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Python would complain again flushing stdout at exit: point it at nothing first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(run())
