"""The justfile passes arguments on quoted: globs, spaces and quotes reach shardsql intact."""

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
