"""How the user runs shardsql from their shell: the command the "Next" lines print.

One rule, for every line that tells the user what to run next (the demo's closing lines,
`demo --serve`'s commands, the errors that point at `shardsql explain`):

1. `$SHARDSQL_COMMAND` where it is set: `./dev` sets it to itself (`./dev shardsql`, as the user
   typed it) and the justfile to `just shardsql`, since a recipe's `uv run` puts the clone's
   `.venv/bin` on a PATH that only the recipe sees;
2. `shardsql`, where the `shardsql` the user's PATH finds is this one (and not a PATH that
   `uv run` made for itself alone);
3. else this installation's script by its path (`.venv/bin/shardsql` in the clone it runs
   from; the absolute path elsewhere);
4. else `python -m shardsql`, with this interpreter.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

COMMAND_ENV = "SHARDSQL_COMMAND"


def _script() -> Path:
    return Path(sys.prefix) / "bin" / "shardsql"


def shardsql_command() -> str:
    """The command that runs this shardsql from the user's shell, as they would type it."""
    given = os.environ.get(COMMAND_ENV, "").strip()
    if given:
        return given
    script = _script()
    found = shutil.which("shardsql")
    under_uv_run = "UV_RUN_RECURSION_DEPTH" in os.environ  # uv run's PATH is the recipe's alone
    if found and not under_uv_run and script.exists() and Path(found).resolve() == script.resolve():
        return "shardsql"
    if script.exists():
        try:
            relative = script.relative_to(Path.cwd())
        except ValueError:
            return shlex.quote(str(script))
        return shlex.quote(str(relative))
    return f"{shlex.quote(sys.executable)} -m shardsql"


def explain_command(name: str, path: Path) -> str:
    """`shardsql explain` for a definition or mixture, as the user runs it: by its name where that
    finds this file, else by its path (a file of the user's own, outside the definitions' folders)."""
    from .definition.catalog import definition_paths
    from .errors import ShardsqlError

    try:
        found = definition_paths().get(name)
    except ShardsqlError:  # a clash in the definitions' folders: the path still works
        found = None
    same = found is not None and found.resolve() == path.resolve()
    return f"{shardsql_command()} explain {name if same else shlex.quote(str(path))}"
