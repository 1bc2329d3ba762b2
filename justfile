# shardsql tasks. `./dev` (or `just`, if you have it) with no arguments lists them, each with the
# one line of its [doc(...)] attribute; the comments above a recipe say more.
# Recipes that take arguments pass them on quoted, exactly as given ("$@"): globs, spaces
# and quotes reach shardsql intact. Those that run shardsql run it where you are ([no-cd]), so
# `./none.sql` or `--cache-dir ./x` mean what they say from any folder, as `./dev` is called
# (`uv run --project` finds this clone's .venv from there); shardsql prints its own errors
# ([no-exit-message]), and no recipe echoes its commands (`@`).

# What shardsql prints in its "Next" lines to run itself (shardsql/invocation.py): `./dev`
# sets it to itself; run through `just` directly, `just shardsql`.
export SHARDSQL_COMMAND := env("SHARDSQL_COMMAND", "just shardsql")

# Once .venv exists, `uv sync` says nothing unless it fails: not "Resolved 61 packages" before
# every command. The first setup shows uv's account of what it installs.
sync_quiet := if path_exists(justfile_directory() / ".venv") == "true" { "--quiet" } else { "" }
project := "--project " + quote(justfile_directory())

[doc("List the recipes.")]
default:
    @just --list --justfile {{quote(justfile())}}

# Only what the tool needs (no pytest, ruff, mypy, pre-commit). --inexact: what `setup-dev`
# installed (the dev tools, Ray) stays, so a recipe run during the tests does not remove it.
[doc("Install shardsql and what it needs to run into .venv, from uv.lock.")]
setup:
    @uv sync --locked --no-dev --inexact {{sync_quiet}}

[doc("Install shardsql with its development tools (pytest, ruff, mypy) into .venv, from uv.lock.")]
setup-tools:
    @uv sync --locked --inexact {{sync_quiet}}

[doc("Install shardsql, its development tools and the Ray extra (for the tests and the benchmark).")]
setup-dev:
    @uv sync --locked --extra ray {{sync_quiet}}

# From uv.lock into this clone's .venv (`setup`), and a link to .venv/bin/shardsql in uv's
# folder for commands (~/.local/bin, or $XDG_BIN_HOME): the installed command runs this clone,
# so it reads the definitions in its sql/, new ones included, and a `git pull` updates it.
[doc("Put `shardsql` on your PATH: this clone's, installed from uv.lock, reading its sql/.")]
install: setup
    #!/bin/sh
    set -eu
    bin=${XDG_BIN_HOME:-$HOME/.local/bin}
    mkdir -p "$bin"
    uv tool uninstall shardsql >/dev/null 2>&1 || true  # an earlier `uv tool install` of it
    ln -sfn "{{justfile_directory()}}/.venv/bin/shardsql" "$bin/shardsql"
    echo "Installed $bin/shardsql: it runs this clone ({{justfile_directory()}}), as uv.lock pins it."
    echo "It reads the definitions in {{justfile_directory()}}/sql/ (yours too); more folders: SHARDSQL_SQL_DIR=DIR1:DIR2."
    case ":$PATH:" in
        *":$bin:"*) ;;
        *) echo "$bin is not on your PATH: add it with  export PATH=\"$bin:\$PATH\"  (or: {{justfile_directory()}}/.tools/bin/uv tool update-shell)" ;;
    esac

[doc("Convert a dataset into ~/.cache/autoresearch/data, e.g. `./dev convert fineweb-edu --num-shards 50`.")]
[no-cd]
[no-exit-message]
[positional-arguments]
convert dataset *args: setup
    @uv run {{project}} --no-sync shardsql convert "$@"

[doc("Run a whole conversion offline against a local Hub stand-in (touches nothing in ~/.cache).")]
[no-cd]
[no-exit-message]
[positional-arguments]
demo *args: setup
    @uv run {{project}} --no-sync shardsql demo "$@"

[doc("Serve generated data from the local Hub stand-in until Ctrl-C, to try every command offline.")]
[no-cd]
[no-exit-message]
[positional-arguments]
serve *args: setup
    @uv run {{project}} --no-sync shardsql demo --serve "$@"

[doc("Run any shardsql command, e.g. `./dev shardsql sql \"SELECT 1\"`.")]
[no-cd]
[no-exit-message]
[positional-arguments]
shardsql *args: setup
    @uv run {{project}} --no-sync shardsql "$@"

[doc("List the dataset definitions in sql/.")]
[no-cd]
[no-exit-message]
list: setup
    @uv run {{project}} --no-sync shardsql list

# On every core (pytest-xdist; `-n 0` after it runs them one at a time): the Ray tests share one
# worker and one cluster (their `xdist_group`), the rest are dealt to the others.
[doc("Run the test suite with coverage, on every core.")]
[positional-arguments]
test *args: setup-dev
    uv run pytest -n auto --dist loadgroup --cov=shardsql --cov-report=term-missing:skip-covered "$@"

# The same checks pre-commit runs; mypy's settings: pyproject.toml.
[doc("Lint, format-check and type-check.")]
lint: setup-tools
    uv run ruff check .
    uv run ruff format --check .
    uv run mypy

[doc("Format the code.")]
fmt: setup-tools
    uv run ruff format .
    uv run ruff check --fix .

# tests/test_docs.py checks that it is current.
[doc("Regenerate docs/cli.md from every command's --help.")]
docs: setup
    @uv run --no-sync python docs/generate_cli.py

# scripts/review_sql.py (docs/review.md): `./dev review --base origin/main > review.md`. Its
# markdown goes to stdout, anything else to stderr.
[doc("Write the review report of every sql/*.sql your branch changes, as markdown (docs/review.md).")]
[no-exit-message]
[positional-arguments]
review *args: setup
    @uv run --no-sync python scripts/review_sql.py "$@"

# Benchmark of the real job (3 + 1 shards of 86,016 rows), each tool a fresh process as its user runs it:
# wall and CPU time vs the seed loop and a Polars one-liner, peak RSS, fixed cost, bytes fetched
# (bench/README.md). `./dev bench --headline`: the main and the small job only.
# `./dev bench --scaling`: the scaling table, 1..all cores (pinned), local and Ray (bench/scaling.py).
# `./dev bench --profile`: where the main job's time goes, by thread (bench/profiling.py; py-spy via uvx).
# `./dev bench --shards-scaling`: shuffled vs --no-shuffle at 10 and 40 shards (bench/shards_scaling.py).
[doc("Run the benchmark (bench/README.md): 15 to 20 minutes on 2 cores; --headline: a few.")]
[positional-arguments]
bench *args: setup-dev
    uv run python bench/bench.py "$@"
