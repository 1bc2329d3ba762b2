# shardsql tasks. `./dev` (or `just`, if you have it) with no arguments lists them.
# Recipes that take arguments pass them on quoted, exactly as given ("$@"): globs, spaces
# and quotes reach shardsql intact.

default:
    @just --list

# Install the project and its development tools into .venv (from uv.lock). --inexact: extras
# that `setup-dev` installed (Ray) stay, so a recipe run during the tests does not remove them.
setup:
    uv sync --locked --inexact

# As setup, plus the optional extras the tests and the benchmark exercise (Ray, for --engine ray).
setup-dev:
    uv sync --locked --extra ray

# Put `shardsql` on your PATH (uv's tool folder, ~/.local/bin; `uv tool update-shell` adds it to PATH).
install:
    uv tool install --force --reinstall .
    @echo "shardsql is in $(uv tool dir --bin); if that is not on your PATH, run: {{justfile_directory()}}/.tools/bin/uv tool update-shell"

# Convert a dataset into ~/.cache/autoresearch/data, e.g. `just convert fineweb-edu --num-shards 50`.
[positional-arguments]
convert dataset *args: setup
    uv run shardsql convert "$@"

# Run a whole conversion offline against a local Hub stand-in (touches nothing in ~/.cache).
[positional-arguments]
demo *args: setup
    uv run shardsql demo "$@"

# Serve generated data from the local Hub stand-in until Ctrl-C, to try every command offline.
[positional-arguments]
serve *args: setup
    uv run shardsql demo --serve "$@"

# Run any shardsql command, e.g. `just shardsql sql "SELECT 1"`.
[positional-arguments]
shardsql *args: setup
    uv run shardsql "$@"

# List the dataset definitions in sql/.
list: setup
    uv run shardsql list

# Run the test suite with coverage.
[positional-arguments]
test *args: setup-dev
    uv run pytest --cov=shardsql --cov-report=term-missing:skip-covered "$@"

# Lint, format-check and type-check (the same checks pre-commit runs; mypy's settings: pyproject.toml).
lint: setup
    uv run ruff check .
    uv run ruff format --check .
    uv run mypy

# Format the code.
fmt: setup
    uv run ruff format .
    uv run ruff check --fix .

# Regenerate docs/cli.md from every command's --help (tests/test_docs.py checks that it is current).
docs: setup
    uv run python docs/generate_cli.py

# Benchmark of the real job (3 + 1 shards of 86,016 rows), each tool a fresh process as its user runs it:
# wall and CPU time vs the seed loop and a Polars one-liner, peak RSS, fixed cost, bytes fetched
# (bench/README.md); ~15 minutes on 2 cores. `just bench --headline`: the main and the small job only.
# `just bench --scaling`: the scaling table, 1..all cores (pinned), local and Ray (bench/scaling.py).
# `just bench --profile`: where the main job's time goes, by thread (bench/profiling.py; py-spy via uvx).
[positional-arguments]
bench *args: setup-dev
    uv run python bench/bench.py "$@"
