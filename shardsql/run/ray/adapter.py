"""Ray, loaded for shardsql: the one adapter to Ray's private parts.

Ray is an optional extra: it is imported here, and only when a conversion asks for
`--engine ray`. Each use of an interface Ray does not export sits in one function here,
with the public alternative named, and tests/test_adapters.py fails with a clear message
if a release moves it:

* `ray._private.ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV` (in `load_ray`);
* the logger `ray._private.authentication.authentication_token_setup` (in `quiet_token_notice`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ...errors import OptionsError

INSTALL_HINT = "--engine ray needs Ray: pip install 'shardsql[ray]' (or, in a clone, uv sync --extra ray)"
# Ray otherwise starts each worker of a driver run by `uv run` through `uv run` in a copy of the
# working directory: a fresh environment, without the ray extra. Workers use this Python (on a
# cluster: the nodes' own, which must have shardsql installed).
UV_HOOK_ENV = "RAY_ENABLE_UV_RUN_RUNTIME_ENV"
TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"


def load_ray() -> Any:
    """The `ray` module, without its `uv run` hook; or a one-line error saying how to install it.

    The public switch is the environment variable, which Ray reads once, when imported. A
    process that imported Ray before (a script, a test) has read it already: then only the
    private constant it was read into can turn the hook off.
    """
    os.environ.setdefault(UV_HOOK_ENV, "0")
    try:
        import ray
        from ray._private import ray_constants
    except ImportError:
        raise OptionsError(INSTALL_HINT) from None
    ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = False
    return ray


@contextmanager
def quiet_token_notice() -> Iterator[None]:
    """Inside the block, Ray's notice that the Ray it starts has token authentication on (it
    should) is not shown. Ray's logging configuration has no public way to silence one
    message; if the logger's name changes, the notice merely shows again."""
    logger = logging.getLogger(TOKEN_NOTICE_LOGGER)
    logger.addFilter(_no_token_notice)
    try:
        yield
    finally:
        logger.removeFilter(_no_token_notice)


def _no_token_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Token authentication is enabled")
