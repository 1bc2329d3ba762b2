"""scripts/review_sql.py, the CI recipe of docs/review.md: run for real on a temporary git
repository whose branch edits, adds and removes definitions, against the Hub stand-in."""

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "review_sql.py"
GIT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull}  # fmt: skip


def git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env={**os.environ, **GIT})


def repository(tmp_path, files):
    """A git repository whose main branch holds `files` (name -> text) in sql/, on a branch `change`."""
    repo = tmp_path / "repo"
    (repo / "sql").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for name, text in files.items():
        (repo / "sql" / name).write_text(text)
    (repo / "README.md").write_text("a project\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "change")
    return repo


def review(repo, *args):
    done = subprocess.run([sys.executable, str(SCRIPT), "--base", "main", *args], cwd=repo / "sql",
                          capture_output=True, text=True, env={**os.environ, **GIT}, timeout=300)  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def test_a_pull_request_that_edits_adds_and_removes_definitions(hub_dataset, tmp_path):
    folder = hub_dataset("fineweb-edu-high")
    high = (ROOT / "sql" / "fineweb-edu-high.sql").read_text()
    repo = repository(
        tmp_path, {"fineweb-edu-high.sql": high, "fineweb.sql": (ROOT / "sql" / "fineweb.sql").read_text()}
    )
    (repo / "sql" / "fineweb-edu-high.sql").write_text(high.replace("int_score >= 3", "int_score >= 4"))
    shutil.copy(ROOT / "sql" / "fineweb-edu.sql", repo / "sql" / "my-edu.sql")
    (repo / "sql" / "fineweb.sql").unlink()
    (repo / "README.md").write_text("not a definition: not reviewed\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "stricter edu, my-edu, no fineweb")

    code, out, err = review(repo, "--sample-rows", "1500")
    assert code == 0, err + out
    assert out.startswith("# Dataset definitions changed since main (")
    assert "README" not in out
    # One hierarchy: the report's title, a file's heading, explain's under it; its headings only.
    headings = [line.split(" ", 1)[0] for line in out.splitlines() if line.startswith("#")]
    assert headings[0] == "#" and set(headings[1:]) == {"##", "###", "####"}, headings
    assert [line for line in out.splitlines() if line.startswith("## ")] == [
        "## `sql/fineweb-edu-high.sql`: edited",
        "## `sql/fineweb.sql`: removed",
        "## `sql/my-edu.sql`: added",
    ]

    edited = out.split("## `sql/fineweb-edu-high.sql`: edited")[1].split("\n---\n")[0]
    assert "\n### explain fineweb-edu-high_main\n" in edited and "\n### against fineweb-edu-high\n" in edited
    # The files as the repository names them, not where the script wrote the base's copy.
    assert (
        "Definition: `sql/fineweb-edu-high.sql @ main`" in edited and "Definition: `sql/fineweb-edu-high.sql`" in edited
    )
    assert "review-sql-" not in out and str(repo) not in out
    assert "| `((int_score IS NULL) OR (int_score >= 4))` |" in edited
    assert "\n#### fineweb-edu-high_main → fineweb-edu-high: what the edit changes\n" in edited
    rows = pa.concat_tables(pq.read_table(p, columns=["text", "int_score"]) for p in sorted(folder.glob("*.parquet")))
    rows = rows.slice(0, 1500).to_pylist()

    def kept(minimum):
        return Counter(r["text"] for r in rows if (r["int_score"] is None or r["int_score"] >= minimum)
                       and r["text"] is not None and len(r["text"]) >= 50)  # fmt: skip

    dropped = sum((kept(3) - kept(4)).values())
    assert f"**Only fineweb-edu-high_main keeps {dropped:,} texts, e.g.:**" in edited
    assert "| kept length (chars) | fineweb-edu-high_main | fineweb-edu-high | change |" in edited
    assert "| p50 |" in edited and "```text" in edited

    added = out.split("## `sql/my-edu.sql`: added")[1].split("\n---\n")[0]
    assert "\n### explain my-edu\n" in added and "against" not in added and "**Kept:**" in added
    assert "Definition: `sql/my-edu.sql`" in added
    assert "The change removes `sql/fineweb.sql`." in out


def test_a_definition_that_fails_fails_the_check(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"text": ["a text long enough", "short"]}), data / "part-0.parquet")
    text = f"-- description: d\n-- source: {data}\n\nSELECT text FROM source WHERE length(text) > 5\n"
    repo = repository(tmp_path, {"mine.sql": text})
    (repo / "sql" / "mine.sql").write_text(text.replace("length(text)", "length(txet)"))
    git(repo, "commit", "-q", "-am", "typo")
    code, out, _ = review(repo)
    assert code == 1
    assert "**`shardsql explain` failed on `sql/mine.sql`:**" in out and "txet" in out

    git(repo, "checkout", "-q", "main")
    code, out, _ = review(repo)
    assert code == 0 and out.rstrip().endswith("No definition in sql/ changed.")


@pytest.mark.skipif(not (shutil.which("just") and shutil.which("uv")), reason="needs just and uv (./dev has both)")
def test_dev_review_runs_the_script_with_the_projects_python():
    """docs/review.md's local form: `./dev review`, no uv on the user's PATH needed. (--help: CI runs
    the tests in a copy of the checkout that is no git repository; the report is tested above.)"""
    done = subprocess.run([str(ROOT / "dev"), "review", "--help"], capture_output=True, text=True, cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: review_sql.py") and "--base" in done.stdout


def test_outside_a_git_repository_it_says_so_in_one_line(tmp_path):
    env = {**os.environ, **GIT, "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)}
    done = subprocess.run([sys.executable, str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=60)  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"review_sql: {tmp_path} is not in a git repository: run it in a clone\n"


def test_a_base_it_cannot_find_says_so_in_one_line(tmp_path):
    repo = repository(tmp_path, {"a.sql": "-- description: a\n-- source: /nowhere\n\nSELECT text FROM source\n"})
    code, out, err = review(repo, "--base", "nosuch")
    assert code == 2 and out == ""
    assert err == (
        "review_sql: no common commit of 'nosuch' and HEAD: name the branch your change goes into with --base "
        "(e.g. --base main)\n"
    )


def test_a_reader_that_stops_early_ends_it_quietly(tmp_path):
    """`review_sql.py | head`: a reader gone before the report is written (its end of the pipe
    closed first) ends it with status 0 and no BrokenPipeError on stderr."""
    repo = repository(tmp_path, {"a.sql": "-- description: a\n-- source: /nowhere\n\nSELECT text FROM source\n"})
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, str(SCRIPT), "--base", "main"], cwd=repo, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, **GIT}, timeout=60)  # fmt: skip
    finally:
        os.close(write_end)
    assert done.stderr == "" and done.returncode == 0, done
