import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from helpers import read_texts

from shardsql.cli import cli

COMMANDS = sorted(cli.commands)


def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input)


def test_the_commands_are_the_documented_ones():
    assert COMMANDS == ["backups", "convert", "demo", "explain", "list", "restore", "show", "sql", "verify"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert cli.commands[command].help and len(cli.commands[command].help) > 20
    for param in cli.commands[command].params:
        if isinstance(param, click.Option):
            assert param.help, f"{command} {param.opts} has no help"


def test_list_shows_every_dataset_with_source():
    result = run("list")
    assert result.exit_code == 0
    assert "fineweb-edu-high" in result.output
    assert "hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet" in result.output


def test_list_does_not_import_the_heavy_libraries():
    code = "import atexit, sys; from shardsql.cli import main; sys.argv=['shardsql','list']\n"
    code += "heavy = ('duckdb', 'polars', 'pyarrow', 'huggingface_hub')\n"
    code += "atexit.register(lambda: print(sorted(m for m in heavy if m in sys.modules)))\nmain()\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_show_prints_the_definition_and_resolved_files(hub, hub_dataset):
    hub_dataset("github-code-python")
    result = run("show", "github-code-python")
    assert result.exit_code == 0, result.output
    assert "SELECT code AS text" in result.output
    assert "refs/convert/parquet (commit " in result.output
    assert "hf://datasets/codeparrot/github-code-clean/Python-all/partial-train/0002.parquet" in result.output


def test_convert_end_to_end_through_the_cli(hub, hub_dataset, tmp_path):
    hub_dataset("pubmed-abstract")
    result = run(
        "convert",
        "pubmed-abstract",
        "--num-shards",
        "2",
        "--rows-per-shard",
        "1000",
        "--cache-dir",
        str(tmp_path),
        "--yes",
    )
    assert result.exit_code == 0, result.output
    assert "2 training + 1 validation" in result.output
    assert "uv run prepare.py --num-shards 2" in result.output
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert [s["name"] for s in manifest["shards"]][-1] == "shard_06542.parquet"
    assert len(read_texts(tmp_path / "data" / "shard_00001.parquet")) == 1000


def test_dry_run_lists_files_and_writes_nothing(hub, hub_dataset, tmp_path):
    hub_dataset("fineweb-edu")
    result = run("convert", "fineweb-edu", "--dry-run", "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.output
    assert "000_00000.parquet" in result.output and "3,000 rows" in result.output
    assert "Total:    9,000 rows" in result.output
    assert "11 shards x 86,016 rows" in result.output
    assert "fewer rows than wanted" in result.output
    assert not (tmp_path / "cache").exists()


def test_a_count_of_one_is_said_in_the_singular(hub, hub_dataset, tmp_path):
    hub_dataset("fineweb-edu")
    query = run("sql", "SELECT 1")
    assert query.exit_code == 0 and "1 row; fetched 0 B" in query.output, query.output
    one = ["--num-shards", "1", "--rows-per-shard", "1", "--cache-dir", str(tmp_path)]
    dry = run("convert", "fineweb-edu", "--dry-run", *one, "--val-rows", "1")
    assert dry.exit_code == 0, dry.output
    assert "Wanted:   1 shard x 1 row + 1 validation row = 2 rows kept" in dry.output
    assert "Validation: 1 row, about " in dry.output
    converted = run("convert", "fineweb-edu", *one, "--yes")
    assert converted.exit_code == 0, converted.output
    assert "Converting fineweb-edu into 1 training shard + 1 validation shard" in converted.output
    assert "  validation: 1 row, about " in converted.output
    said = query.output + dry.output + converted.output
    assert not re.findall(r"(?<![\d,.])1 (?:rows|shards|requests|files|row groups|training shards)\b", said), said


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["convert", "finweb-edu"], "Did you mean: fineweb-edu", 1),
        (["convert", "fineweb-edu", "--num-shards", "0"], "--num-shards must be at least 1", 2),
        (["convert", "fineweb-edu", "--num-shards", "ten"], "'ten' is not a valid integer", 2),
        # Training shard 6542 would overwrite the validation shard_06542 (issue 10).
        (["convert", "fineweb-edu", "--num-shards", "6543"], "must stop before the validation shard's number", 2),
        (["convert", "fineweb-edu", "--num-shards", "6543", "--dry-run"], "at most 6,542", 2),
        (["show", "nope.sql"], "no such definition file", 1),
    ],
)
def test_errors_are_one_clean_line(args, message, code):
    result = run(*args)
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_missing_definition_file_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("convert", "./none.sql", "--dry-run")
    assert (result.exit_code, result.output) == (1, f"Error: none.sql: no such definition file in {tmp_path}\n")


def test_source_errors_are_clean(hub, tmp_path):
    result = run("convert", "fineweb-edu", "--cache-dir", str(tmp_path), "--yes")
    assert result.exit_code == 1
    assert "Error: dataset HuggingFaceFW/fineweb-edu not found" in result.output


def test_debug_shows_the_traceback(tmp_path):
    # The real entry point in a subprocess: CliRunner would capture the traceback differently.
    cmd = [sys.executable, "-m", "shardsql", "--debug", "convert", str(tmp_path / "x.sql")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "no such definition file" in proc.stderr


@pytest.mark.parametrize("command", [["list"], ["explain", "SOURCE.sql", "--sample-rows", "200"]])
def test_a_reader_that_closes_the_pipe_early_is_no_failure(tmp_path, command):
    """`shardsql explain ... | head`: head exits after its lines, the pipe closes under shardsql, which
    stops quietly and successfully (not exit status 1, nor a BrokenPipeError at exit)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": [f"text number {i} " * (i % 7 + 1) for i in range(500)]}), tmp_path / "p.parquet")
    definition = tmp_path / "mine.sql"
    definition.write_text(
        f"-- description: d\n-- source: {tmp_path}/\n\nSELECT text FROM source WHERE length(text) > 40\n"
    )
    args = [str(definition) if arg == "SOURCE.sql" else arg for arg in command]
    proc = subprocess.Popen([sys.executable, "-m", "shardsql", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before shardsql has written a line: its first write finds no reader
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err.decode()) == (0, "")


def test_skip_backup_without_yes_is_refused_when_not_interactive(hub_dataset, tmp_path):
    folder = hub_dataset("fineweb-edu")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "shard_00000.parquet").write_bytes(b"old")
    result = run("convert", "fineweb-edu", "--source", str(folder), "--skip-backup", "--cache-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "add --yes" in result.output
    assert (tmp_path / "data" / "shard_00000.parquet").read_bytes() == b"old"


def test_demo_runs_offline(tmp_path, monkeypatch):
    # The user's shell: this clone, with no shardsql on its PATH (no `uv run`, no `./dev`).
    root = Path(__file__).resolve().parent.parent
    venv_bin = str(Path(sys.prefix) / "bin")
    path = ":".join(p for p in __import__("os").environ["PATH"].split(":") if Path(p) != Path(venv_bin))
    monkeypatch.setenv("PATH", path)
    monkeypatch.delenv("UV_RUN_RECURSION_DEPTH", raising=False)
    monkeypatch.chdir(root)
    result = run("demo", "--workdir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "2 training + 1 validation" in result.output
    assert (tmp_path / "autoresearch" / "data" / "shard_06542.parquet").is_file()
    assert "only the columns and row groups needed" in result.output
    # The closing lines say it was the demo, where its files are and how to remove them,
    # then the real next steps: prepare.py only after a real conversion (run now, it would
    # read ~/.cache/autoresearch, not the demo's shards).
    assert f"That was the demo: a generated sample, not real data. Its files are in {tmp_path}" in result.output
    assert f"Remove them with: rm -rf {tmp_path}" in result.output
    assert ".venv/bin/shardsql list" in result.output and "shardsql convert NAME --dry-run" in result.output
    # Every "Next" command runs as printed, in that shell: not `shardsql: command not found`.
    listed = next(line.split()[0] for line in result.output.splitlines() if line.strip().endswith("you can convert"))
    proc = subprocess.run(f"{listed} list", shell=True, capture_output=True, text=True, cwd=root)
    assert proc.returncode == 0 and "fineweb-edu" in proc.stdout, proc.stderr
    assert "To try every command offline first: .venv/bin/shardsql demo --serve" in result.output
    # Toy runs: no validation-size warning. The mixture's validation shard is the first run's
    # (--val-from live): not rows read from its sources, so its counts add up.
    assert "warning" not in result.output
    rows_lines = [line for line in result.output.splitlines() if line.startswith("  rows:")]
    read, filtered, kept = (
        int(n.replace(",", "")) for n in re.findall(r"([\d,]+) (?:read|filtered|kept)", rows_lines[1])
    )
    assert read - filtered == kept and re.search(r"\(\+ the validation shard's [\d,]+ from live\)$", rows_lines[1])
    assert "requests (by this run)" in result.output
    real = result.output.index(f"the shards, into {Path.home() / '.cache' / 'autoresearch' / 'data'}\n")
    assert "prepare.py" not in result.output[:real]
    after = result.output[real:].splitlines()
    assert after[1:3] == ["Then: in your autoresearch checkout, train the tokenizer for the new data:",
                          "  uv run prepare.py --num-shards 10"]  # fmt: skip


def test_explain_help_puts_the_definition_before_the_edit_first():
    """As the report reads it ("OLD → NEW: what the edit changes") and docs/review.md says."""
    text = " ".join(run("explain", "--help").output.split())
    assert "shardsql explain ./old.sql --against ./new.sql --format markdown" in text
    assert "./new.sql --against ./old.sql" not in text


def test_top_level_help_names_the_environment_variables():
    result = run("--help")
    for name in ("HF_ENDPOINT", "HF_TOKEN", "SHARDSQL_SQL_DIR", "demo --serve", "NANOCHAT_BASE_DIR", "--for nanochat"):
        assert name in result.output


@pytest.mark.parametrize("command", ["convert", "verify", "backups", "restore", "demo"])
def test_every_command_that_reads_or_writes_a_cache_folder_serves_both_consumers(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "--for [autoresearch|nanochat]" in result.output
    options = {opt: param for param in cli.commands[command].params for opt in param.opts}
    consumer = options["--for"]
    # convert and demo default to autoresearch; the others find the consumer from the data.
    assert consumer.default == ("autoresearch" if command in ("convert", "demo") else None)
    assert "base_data_climbmix/" in consumer.help
    if "--cache-dir" in options:
        assert options["--cache-dir"].help.endswith(
            "[default: autoresearch: ~/.cache/autoresearch; nanochat: $NANOCHAT_BASE_DIR, else ~/.cache/nanochat]"
        )


def test_demo_serve_lets_every_command_run_offline_until_ctrl_c(monkeypatch):
    import re
    import signal

    code = "from shardsql.cli import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "demo", "--serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        lines = []
        while not any(line.startswith("(--cache-dir") for line in lines):
            lines.append(proc.stdout.readline())
            assert lines[-1], proc.stderr.read()
        printed = "".join(lines)
        endpoint = re.search(r"export HF_ENDPOINT=(\S+) HF_HUB_DISABLE_TELEMETRY=1; unset HF_TOKEN", printed).group(1)
        folder = re.search(r"from (/\S+)\.\n", printed).group(1)
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        # The convert and the verify as printed, pasted: the shards into the stand-in's folder, verified there.
        pasted = [re.match(r"  (.+?) ((?:convert fineweb-edu --num-shards|verify) .*)\n", line) for line in lines]
        (run_convert, convert), (run_verify, verify) = (m.groups() for m in pasted if m)
        convert_args, verify_args = shlex.split(convert), shlex.split(verify)
        assert run_convert == run_verify and verify_args == ["verify", f"{folder}/autoresearch/data"]
        for args in (
            ["convert", "pubmed-abstract", "--dry-run"],
            convert_args,
            verify_args,
            ["sql", "SELECT count(*) AS n FROM source.github_code_python"],
            ["explain", "fineweb-edu-high", "--sample-rows", "1000"],
        ):
            result = run(*args)
            assert result.exit_code == 0, (args, result.output)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "Stopped serving." in err, err
    assert f"Removed {folder}." in err and not __import__("pathlib").Path(folder).exists()


def test_version():
    assert run("--version").output.startswith("shardsql, version ")


def test_a_failure_mid_run_prints_one_clean_error_from_the_real_entry_point(tmp_path):
    import pyarrow.parquet as pq

    from shardsql.standin.samples import write_sample

    folder = tmp_path / "src"
    paths = write_sample("fineweb-edu", folder, files=2, rows_per_file=2000)
    broken = paths[1]
    chunk = pq.ParquetFile(broken).metadata.row_group(2).column(0)
    data = bytearray(broken.read_bytes())
    data[chunk.data_page_offset : chunk.data_page_offset + 64] = b"\xff" * 64
    broken.write_bytes(bytes(data))
    cmd = [sys.executable, "-m", "shardsql", "convert", "fineweb-edu", "--source", str(broken.parent)]
    cmd += ["--num-shards", "3", "--rows-per-shard", "1000", "--cache-dir", str(tmp_path / "cache"), "--yes"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "001_00000.parquet: row group 2 is corrupt" in proc.stderr
    assert "Traceback" not in proc.stderr and "leaked" not in proc.stderr


def test_verify_command(hub, hub_dataset, tmp_path):
    hub_dataset("fineweb-edu")
    convert = ["convert", "fineweb-edu", "--num-shards", "2", "--rows-per-shard", "1000", "--cache-dir", str(tmp_path)]
    converted = run(*convert, "--yes")
    assert converted.exit_code == 0 and "validation: " in converted.output, converted.output
    good = run("verify", str(tmp_path / "data"))
    assert good.exit_code == 0, good.output
    # A toy set: the summary says nothing of the validation shard's size, and verify agrees.
    assert "OK: 3 shards" in good.output
    assert "warning" not in converted.output and "warning" not in good.output, good.output
    shard = tmp_path / "data" / "shard_00001.parquet"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    bad = run("verify", str(tmp_path / "data"))
    assert bad.exit_code == 1
    assert "error: shard_00001.parquet: sha256 is" in bad.output


def test_a_cli_conversion_under_a_rate_limit_says_it_waits(hub, hub_dataset, tmp_path):
    hub_dataset("fineweb-edu", row_group_size=300)
    hub.limit_rate(resolvers=1, window_s=1)  # each of the 3 files is resolved once
    result = run("convert", "fineweb-edu", "--num-shards", "2", "--rows-per-shard", "800", "--cache-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "rate-limited by the Hub (resolvers): waiting 1 s (an HF_TOKEN raises the limit)\n" in result.output
    assert "2 training + 1 validation" in result.output


def test_an_invalid_token_is_one_clean_line(hub, hub_dataset, tmp_path, monkeypatch):
    hub_dataset("fineweb-edu")
    monkeypatch.setenv("HF_TOKEN", "not-a-token")
    result = run("convert", "fineweb-edu", "--cache-dir", str(tmp_path), "--yes")
    assert (result.exit_code, result.output.splitlines()[-1]) == (
        1,
        f"Error: the Hub ({hub.url}) rejects your HF_TOKEN as invalid: set a valid token, or unset HF_TOKEN "
        "(public datasets need none)",
    )
    assert "Traceback" not in result.output


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody can write: a read-only tmpfs as root (root ignores permissions), else chmod."""
    import os

    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], check=True)
        yield folder
        subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


@pytest.mark.parametrize("where", ["file", "under a file", "read-only"])
@pytest.mark.parametrize("command", ["convert", "restore"])
def test_an_unusable_cache_dir_is_one_line(tmp_path, read_only_dir, where, command):
    (tmp_path / "a-file").write_text("")
    cache = {"file": tmp_path / "a-file", "under a file": tmp_path / "a-file" / "sub", "read-only": read_only_dir}
    args = ["fineweb-edu", "--yes", "--source", str(tmp_path)] if command == "convert" else []
    result = run(command, *args, "--cache-dir", str(cache[where]))
    assert result.exit_code == 1, result.output
    why = "is not writable" if where == "read-only" else "is a file, not a folder"
    assert result.output.startswith(f"Error: cannot use {cache[where]} as the cache folder: "), result.output
    assert why in result.output and len(result.output.strip().splitlines()) == 1


def test_show_binds_the_sql_and_fails_as_the_dry_run_does(hub, hub_dataset, tmp_path):
    folder = hub_dataset("fineweb-edu")
    typo = tmp_path / "typo.sql"
    typo.write_text(f"-- description: d\n-- source: {folder}\n\nSELECT txt AS text FROM source WHERE length(txt) > 5\n")
    shown, dry = run("show", str(typo)), run("convert", str(typo), "--dry-run")
    assert shown.exit_code == dry.exit_code != 0, shown.output
    assert shown.output == dry.output and "The source has these columns: " in shown.output
    assert "row by row" not in shown.output  # nothing of the definition printed as if it ran
    two = tmp_path / "two.sql"
    two.write_text(f"-- description: d\n-- source: {folder}\n\nSELECT text, id FROM source\n")
    assert "must yield exactly one column" in run("show", str(two)).output


@pytest.mark.parametrize(
    "args, thread, torn_down",
    [(["list"], False, False), (["convert", "no-such-dataset"], False, True), (["list"], True, True)],
    ids=["success", "failure", "a thread still running"],
)
def test_a_successful_command_ends_without_tearing_down_the_interpreter(args, thread, torn_down):
    """After success the process ends once every exit handler ran (one registered before the
    command too, as a library or coverage would) and its output is flushed whole into the pipe,
    without the interpreter's teardown (pyarrow's, DuckDB's and Polars' modules: 0.1 to 0.15 s).
    A failed command, or one that leaves a thread running, ends as Python ends it."""
    code = (
        "import atexit, sys, threading\n"
        "from shardsql import cli\n"
        "class Teardown:\n"
        "    def __del__(self): print('torn down')\n"
        "kept = Teardown()\n"
        "atexit.register(lambda: print('exit handler ran'))\n"
        "def until_exit(): threading.main_thread().join(); print('thread finished')\n"
        f"if {thread}: threading.Thread(target=until_exit).start()  # alive until Python's exit starts\n"
        f"sys.argv = ['shardsql', *{args!r}]\n"
        "cli.main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == (0 if args == ["list"] else 1), proc.stderr
    assert "exit handler ran" in proc.stdout
    assert ("torn down" in proc.stdout) == torn_down
    assert ("thread finished" in proc.stdout) == thread
    if args == ["list"]:
        assert run("list").output in proc.stdout
