# shardsql tasks. `just` with no arguments lists them.

default:
    @just --list

# Install the project and its development tools into .venv (from uv.lock).
setup:
    uv sync --locked

# As setup, plus the optional extras the tests and the benchmark exercise (Ray, for --engine ray).
setup-dev:
    uv sync --locked --extra ray

# Convert a dataset into ~/.cache/autoresearch/data, e.g. `just convert fineweb-edu --num-shards 50`.
convert dataset *args: setup
    uv run shardsql convert {{dataset}} {{args}}

# Run a whole conversion offline against a local Hub stand-in (touches nothing in ~/.cache).
demo *args: setup
    uv run shardsql demo {{args}}

# List the dataset definitions in sql/.
list: setup
    uv run shardsql list

# Run the test suite with coverage.
test *args: setup-dev
    uv run pytest --cov=shardsql --cov-report=term-missing:skip-covered {{args}}

# Lint and format-check (the same checks pre-commit runs).
lint: setup
    uv run ruff check .
    uv run ruff format --check .

# Format the code.
fmt: setup
    uv run ruff format .
    uv run ruff check --fix .

# Benchmark: speed vs the seed loop and a Polars pipeline, peak RSS, bytes fetched (bench/README.md).
bench *args: setup-dev
    uv run python bench/bench.py {{args}}
