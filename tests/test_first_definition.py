"""docs/first-definition.md runs as printed: its ```bash blocks, in order, as one shell script in a
folder holding a copy of sql/, against the Hub stand-in (the page's `demo --serve` and `export
HF_ENDPOINT` steps are the fixture's)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "first-definition.md"


def test_the_walkthrough_runs_as_printed(hub_dataset, tmp_path):
    hub_dataset("fineweb-edu")
    blocks = re.findall(r"^```bash\n(.*?)^```", PAGE.read_text(), re.S | re.M)
    assert len(blocks) >= 8
    work = tmp_path / "clone"
    shutil.copytree(ROOT / "sql", work / "sql")
    script = "set -euo pipefail\n" + "\n".join(blocks)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "TERM": "dumb"}
    done = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "name:        my-edu" in out and "path:        row by row" in out  # show
    assert "Kept: " in out and "(int_score >= 3)" in out and "text length (characters)" in out  # explain
    assert "fineweb-edu → my-edu: what the edit changes" in out and "Only fineweb-edu keeps" in out
    review = (work / "my-edu-review.md").read_text()
    assert "### fineweb-edu → my-edu: what the edit changes" in review and "| p50 |" in review
    assert "Dry run: only parquet footers were read" in out
    # Step 6 as the page says it: the validation shard's estimate, and no warning for a try this small.
    assert "Validation: 500 rows, about " in out and "\nwarning: the validation shard holds" not in out
    assert "OK: 3 shards in my-edu-try/data" in out
