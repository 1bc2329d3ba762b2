"""huggingface_hub's shared HTTP client, set up for shardsql: the one adapter to its private parts.

Every use of an interface huggingface_hub does not export sits in one function here, with
the public alternative named (or why there is none), and tests/test_adapters.py fails with
a clear message if a release moves it:

* `_http.default_client_factory` (in `install_client_defaults`): our request hook added to
  huggingface_hub's own client, so that every Hub call has a timeout;
* the words of `http_backoff`'s log records (in `_relay_rate_limit_log`): its 429 sleeps
  become our wait message;
* `constants.HF_HUB_DISABLE_TELEMETRY` (in `disable_telemetry`), for the offline demo;
* httpcore2 reading a request's read timeout when the body starts to stream (in
  `stream_body_within`): storage may take long to send its first byte, a stalled body must not.

Why timeouts need a hook: huggingface_hub's shared client has none, and some calls (tree
pages) pass `timeout=None` explicitly, so the hook fills in ours wherever a request has none.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Callable

import httpx2
from huggingface_hub import get_token, set_client_factory

from .. import tuning
from .retries import RATE_LIMIT_WINDOW_S, report_wait, too_long

DEFAULT_HF_ENDPOINT = "https://huggingface.co"
# Seconds to connect; to wait for each piece of an answer, and for a cold file's first byte:
# tuning.py's `read_timeout_s` and `first_byte_timeout_s`.
CONNECT_TIMEOUT_S = 10.0
# huggingface_hub's http_backoff logs these on a 429 (utils/_http.py, 2.x): the first, then
# the second before it sleeps. We say the wait ourselves, once, in our words.
HF_HTTP_LOGGER = "huggingface_hub.utils._http"
HF_429_LOG = re.compile(r"^HTTP Error 429 thrown while requesting ")
HF_RATE_LIMIT_LOG = re.compile(r"^Rate limited\. Waiting (?P<s>[\d.]+)s before retry")
HF_SLEEP_MARGIN_S = 1.0  # it sleeps the server's t + 1 s

_installed = False
_install_lock = threading.Lock()


def settings() -> tuple[str, str | None]:
    """The Hub endpoint and token of this process, with the client's defaults installed.

    Read from the environment now, not at import: huggingface_hub freezes HF_ENDPOINT when imported."""
    install_client_defaults()
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or DEFAULT_HF_ENDPOINT, os.environ.get("HF_TOKEN") or None


def token() -> str | None:
    """The Hub token of this process: HF_TOKEN, or a saved login's (as HfApi finds it)."""
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    try:
        return get_token()
    except Exception:  # an unreadable token file is no token, not a failed conversion
        return None


def default_client_factory() -> Callable[[], httpx2.Client]:
    """huggingface_hub's own client factory (its request hook: offline mode, request ids).

    Private: not exported. The public alternative, building an httpx2.Client ourselves,
    would lose that hook, which is private too. The <3 bound in pyproject keeps it in place.
    """
    from huggingface_hub.utils import _http

    return _http.default_client_factory


def install_client_defaults() -> None:
    """Give huggingface_hub's shared HTTP client our timeouts and relay its rate-limit waits.

    Process-wide and idempotent, through huggingface_hub's public `set_client_factory`.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        factory = default_client_factory()

        def ours() -> httpx2.Client:
            client = factory()
            client.event_hooks["request"].append(_fill_timeouts)
            return client

        set_client_factory(ours)
        logging.getLogger(HF_HTTP_LOGGER).addFilter(_relay_rate_limit_log)
        _installed = True


def timeouts(first_byte: float | None = None) -> httpx2.Timeout:
    """Our timeouts for one request; `first_byte`: how long its answer may take to start."""
    read = tuning.current().read_timeout_s
    return httpx2.Timeout(CONNECT_TIMEOUT_S, read=first_byte or read, write=read, pool=read)


def stream_body_within(response: httpx2.Response, seconds: float) -> None:
    """From now on, each read of `response`'s body may wait at most `seconds` (its first byte had longer).

    Private: httpcore2 reads the request's `timeout` extension when the body starts to stream,
    not when the request is sent, so changing it between the headers and the body applies to
    the body. httpx2 has no public per-phase timeout. tests/test_adapters.py notices a change;
    tests/test_storage.py shows it at work.
    """
    timeout = response.request.extensions.get("timeout")
    if isinstance(timeout, dict):
        timeout["read"] = seconds


def _fill_timeouts(request: httpx2.Request) -> None:
    """A request hook: where a request has no timeout (None), use ours."""
    timeouts = dict(request.extensions.get("timeout") or {})
    read = tuning.current().read_timeout_s
    defaults = {"connect": CONNECT_TIMEOUT_S, "read": read, "write": read, "pool": read}
    request.extensions["timeout"] = {k: timeouts.get(k) or v for k, v in defaults.items()}


def _relay_rate_limit_log(record: logging.LogRecord) -> bool:
    """A log filter: huggingface_hub's own 429 sleeps (tree pages) become our wait message.

    Relies on the words of http_backoff's log records: huggingface_hub has no callback or
    setting to hear or bound those sleeps. A wait beyond the window raises here, in the
    thread about to sleep: huggingface_hub sleeps as long as the server asks, and this is
    the only point where we can stop it.
    """
    message = record.getMessage()
    if HF_429_LOG.match(message):
        return False
    match = HF_RATE_LIMIT_LOG.match(message)
    if match is None:
        return True
    wait = float(match["s"]) - HF_SLEEP_MARGIN_S
    if wait > RATE_LIMIT_WINDOW_S:
        raise too_long("a listing", wait)
    report_wait(wait, "api", token() is not None)  # its sleeps are listings': HfApi sends a saved token too
    return False


def disable_telemetry() -> None:
    """No report to the real Hub from this process (the offline demo).

    The public way is the environment variable HF_HUB_DISABLE_TELEMETRY, which huggingface_hub
    reads once, when imported: a process that imported it already needs the constant set.
    """
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    if "huggingface_hub.constants" in sys.modules:  # imported already: it has read the variable
        import huggingface_hub.constants

        huggingface_hub.constants.HF_HUB_DISABLE_TELEMETRY = True
