"""The command shardsql prints to run itself next: one rule (shardsql/invocation.py), as the user's shell runs it."""

import os
import subprocess
import sys
from pathlib import Path

from shardsql.invocation import shardsql_command

SCRIPT = Path(sys.prefix) / "bin" / "shardsql"
ROOT = Path(__file__).resolve().parent.parent


def _path_without_venv() -> str:
    return ":".join(p for p in os.environ["PATH"].split(":") if Path(p) != SCRIPT.parent)


def test_dev_and_just_say_how_they_were_run(monkeypatch):
    monkeypatch.setenv("SHARDSQL_COMMAND", "./dev shardsql")
    assert shardsql_command() == "./dev shardsql"


def test_shardsql_alone_only_where_the_users_path_finds_this_one(monkeypatch, tmp_path):
    monkeypatch.delenv("UV_RUN_RECURSION_DEPTH", raising=False)
    monkeypatch.setenv("PATH", _path_without_venv())
    monkeypatch.chdir(tmp_path)
    assert shardsql_command() == str(SCRIPT)  # not on PATH, run from elsewhere: the absolute path
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "shardsql").symlink_to(SCRIPT)  # as `./dev install` links it
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{_path_without_venv()}")
    assert shardsql_command() == "shardsql"
    # `uv run` puts .venv/bin on a PATH of its own: the user's shell may not have it.
    monkeypatch.setenv("UV_RUN_RECURSION_DEPTH", "1")
    assert shardsql_command() == str(SCRIPT)


def test_in_the_clone_the_venv_script_relative_to_where_the_user_is(monkeypatch):
    monkeypatch.delenv("UV_RUN_RECURSION_DEPTH", raising=False)
    monkeypatch.setenv("PATH", _path_without_venv())
    monkeypatch.chdir(SCRIPT.parent.parent.parent)
    command = shardsql_command()
    assert command == str(SCRIPT.relative_to(SCRIPT.parent.parent.parent))
    proc = subprocess.run(f"{command} --version", shell=True, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("shardsql, version"), proc.stderr


def test_dev_sets_it_to_itself_as_the_user_typed_it(tmp_path):
    import shutil

    import pytest

    if not shutil.which("just"):
        pytest.skip("needs just (./dev has it)")
    env = {k: v for k, v in os.environ.items() if k != "SHARDSQL_COMMAND"}
    out = subprocess.run(["./dev", "--evaluate", "SHARDSQL_COMMAND"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.stdout == "./dev shardsql", out.stderr
    out = subprocess.run(["just", "--justfile", str(ROOT / "justfile"), "--evaluate", "SHARDSQL_COMMAND"],
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert out.stdout == "just shardsql", out.stderr
