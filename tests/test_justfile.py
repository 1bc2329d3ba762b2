"""The justfile passes arguments on quoted: globs, spaces and quotes reach shardsql intact."""

import os
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not (shutil.which("just") and shutil.which("uv")), reason="needs just and uv (./dev has both)")
def test_recipe_arguments_keep_their_spaces_and_globs(tmp_path):
    folder = tmp_path / "my data"  # a space in the path
    folder.mkdir()
    pq.write_table(pa.table({"text": ["kept  as  is"]}), folder / "part 0.parquet")
    query = "SELECT text, 'a * b' AS star FROM source"
    args = ["just", "--justfile", str(ROOT / "justfile"), "shardsql", "sql", "--format", "csv"]
    proc = subprocess.run([*args, "--source", f"{folder}/*.parquet", query], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1:] == ["kept  as  is,a * b"]


def _just() -> list[str]:
    return ["just", "--justfile", str(ROOT / "justfile")]


@pytest.mark.skipif(not shutil.which("just"), reason="needs just (./dev has it)")
def test_every_recipe_is_listed_with_a_one_line_sentence():
    proc = subprocess.run([*_just(), "--list"], capture_output=True, text=True, cwd=ROOT, check=True)
    recipes = subprocess.run([*_just(), "--summary"], capture_output=True, text=True, check=True).stdout.split()
    lines = proc.stdout.splitlines()[1:]  # after "Available recipes:"
    assert len(lines) == len(recipes) and "default" in recipes
    for line in lines:
        assert " # " in line, f"no description: {line!r}"
        description = line.split(" # ", 1)[1].strip()
        # A sentence: a capital first, a full stop last, and not the tail of a longer comment.
        assert description[0].isupper() and description.endswith("."), line
        assert len(description) <= 100, line


@pytest.mark.skipif(not shutil.which("just"), reason="needs just (./dev has it)")
def test_the_demo_installs_only_what_the_tool_needs_and_the_tests_get_everything():
    def synced(recipe: str) -> list[str]:
        """Its `uv sync` line, less the --quiet it has once .venv exists."""
        proc = subprocess.run([*_just(), "--dry-run", recipe], capture_output=True, text=True, cwd=ROOT, check=True)
        return [line.removesuffix(" --quiet") for line in proc.stderr.splitlines() if line.startswith("uv sync")]

    for recipe in ("demo", "list", "install"):
        assert synced(recipe) == ["uv sync --locked --no-dev --inexact"], recipe
    assert synced("test") == ["uv sync --locked --extra ray"]  # the dev group is uv's default


def test_the_benchmark_takes_as_long_as_its_readme_says():
    stated = "15 to 20 minutes on 2 cores"
    assert stated in (ROOT / "justfile").read_text()
    assert stated.replace(" on 2 cores", "") in (ROOT / "bench" / "README.md").read_text()


@pytest.mark.skipif(not (shutil.which("just") and shutil.which("uv")), reason="needs just and uv (./dev has both)")
def test_install_links_this_clone_which_reads_its_own_sql_folder(tmp_path):
    import os

    bin_dir = tmp_path / "bin"
    env = {**os.environ, "XDG_BIN_HOME": str(bin_dir), "UV_TOOL_DIR": str(tmp_path / "tools")}
    proc = subprocess.run([*_just(), "install"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    installed = bin_dir / "shardsql"
    # From uv.lock into the clone's .venv: the command is the clone's, not a copy of it.
    assert installed.resolve() == (ROOT / ".venv" / "bin" / "shardsql").resolve()
    assert f"It reads the definitions in {ROOT}/sql/" in proc.stdout and "SHARDSQL_SQL_DIR" in proc.stdout
    assert "is not on your PATH" in proc.stdout  # tmp_path/bin is not
    code = "from shardsql.definition.catalog import sql_dirs; print(*sql_dirs(), sep='\\n')"
    python = installed.resolve().parent / "python"
    env.pop("SHARDSQL_SQL_DIR", None)
    dirs = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert str(ROOT / "sql") in dirs.splitlines()
    listed = subprocess.run([str(installed), "list"], capture_output=True, text=True, env=env, check=True).stdout
    assert "fineweb-edu" in listed


@pytest.mark.skipif(not (shutil.which("just") and shutil.which("uv")), reason="needs just and uv (./dev has both)")
def test_dev_runs_shardsql_quietly_from_where_the_user_is(tmp_path):
    """`./dev shardsql ...` (and convert, demo, serve) from any folder: the paths it is given are read
    from there, not from the clone; it prints shardsql's output alone (no recipe lines echoed, no
    uv chatter once .venv is set up), and a failure is shardsql's one line and exit status."""
    folder = tmp_path / "my data"
    folder.mkdir()
    pq.write_table(pa.table({"text": ["the first text", "the second text", "the third text"]}), folder / "p.parquet")
    (tmp_path / "mine.sql").write_text("-- description: d\n-- source: ./my data/\n\nSELECT text FROM source\n")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}  # uv warns when one that is not .venv is set

    def dev(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(ROOT / "dev"), *args], capture_output=True, text=True, cwd=tmp_path, env=env)

    shown = dev("shardsql", "show", "./mine.sql")
    assert (shown.returncode, shown.stderr) == (0, ""), shown.stderr
    assert "name:        mine" in shown.stdout and "resolved:    " in shown.stdout
    missing = dev("shardsql", "show", "./none.sql")
    assert (missing.returncode, missing.stderr) == (1, f"Error: none.sql: no such definition file in {tmp_path}\n")
    converted = dev("convert", "./mine.sql", "--num-shards", "1", "--rows-per-shard", "1", "--cache-dir", "./x",
                    "--no-shuffle")  # fmt: skip
    assert converted.returncode == 0, converted.stderr
    assert (tmp_path / "x" / "data" / "shard_06542.parquet").is_file() and not (ROOT / "x").exists()
    assert not any(word in converted.stderr for word in ("uv ", "Resolved", "recipe")), converted.stderr
