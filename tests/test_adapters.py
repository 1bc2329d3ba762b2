"""The private interfaces of dependencies that shardsql uses, each behind one adapter
(hub/client.py, run/ray/adapter.py): these fail, with a message saying what moved, when a
release of huggingface_hub or Ray changes them, instead of shardsql degrading silently; and
one habit of pyarrow's that a missing package made slow (python-dateutil, in pyproject.toml)."""

from __future__ import annotations

import importlib
import inspect
import logging

import pytest

from shardsql.hub import client


def test_huggingface_hub_still_has_its_default_client_factory():
    from huggingface_hub.utils import _http

    assert callable(getattr(_http, "default_client_factory", None)), (
        "huggingface_hub.utils._http.default_client_factory is gone: hub/client.py adds shardsql's "
        "timeouts to the client it builds; find its new name (or build the client from public parts)"
    )
    assert client.default_client_factory() is _http.default_client_factory


def test_huggingface_hub_logs_its_rate_limit_sleeps_in_the_words_relayed():
    from huggingface_hub.utils import _http

    source = inspect.getsource(_http)
    assert _http.logger.name == client.HF_HTTP_LOGGER, "hub/client.py filters another logger than http_backoff's"
    assert 'f"Rate limited. Waiting {actual_sleep}s before retry' in source, (
        "huggingface_hub's http_backoff no longer logs 'Rate limited. Waiting Ns before retry': hub/client.py "
        "relays those words as shardsql's rate-limit message (HF_RATE_LIMIT_LOG)"
    )
    assert client.HF_RATE_LIMIT_LOG.match("Rate limited. Waiting 213.0s before retry [Retry 1/5].")["s"] == "213.0"


def test_the_relay_turns_huggingface_hubs_sleep_into_our_message(monkeypatch):
    said: list[tuple] = []
    monkeypatch.setattr(client, "report_wait", lambda *args: said.append(args))
    record = logging.LogRecord(client.HF_HTTP_LOGGER, logging.WARNING, "", 0,
                               "Rate limited. Waiting 13.0s before retry [Retry 1/5].", None, None)  # fmt: skip
    assert client._relay_rate_limit_log(record) is False, "huggingface_hub's own line is not shown"
    assert said == [(12.0, "api", False)], "the wait the server asked for (huggingface_hub adds a second), no token"


def test_huggingface_hub_reads_telemetry_from_the_constant_the_demo_sets():
    constants = importlib.import_module("huggingface_hub.constants")
    assert hasattr(constants, "HF_HUB_DISABLE_TELEMETRY"), (
        "huggingface_hub.constants.HF_HUB_DISABLE_TELEMETRY is gone: hub/client.disable_telemetry sets it"
    )


def test_ray_still_has_the_constant_and_the_logger_the_adapter_uses():
    pytest.importorskip("ray", reason="the ray extra is not installed (./dev test installs it)")
    from ray._private import ray_constants

    from shardsql.run.ray import adapter

    assert hasattr(ray_constants, "RAY_ENABLE_UV_RUN_RUNTIME_ENV"), (
        "ray._private.ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV is gone: run/ray/adapter.py turns Ray's "
        "`uv run` hook off with it (workers would start in a fresh environment without the ray extra)"
    )
    module = importlib.import_module(adapter.TOKEN_NOTICE_LOGGER)
    assert "Token authentication is enabled" in inspect.getsource(module), (
        f"{adapter.TOKEN_NOTICE_LOGGER} no longer says 'Token authentication is enabled': "
        "run/ray/adapter.quiet_token_notice filters that notice"
    )


def test_httpcore_reads_the_read_timeout_when_a_body_starts_to_stream():
    """hub/client.stream_body_within shortens the read timeout between a storage answer's headers
    (cold storage: up to FIRST_BYTE_TIMEOUT_S) and its body. tests/test_storage.py's
    test_cold_storages_slow_first_byte_is_waited_for_and_a_stalled_body_is_not shows it working."""
    from httpcore2._sync import http11

    source = inspect.getsource(http11.HTTP11Connection._receive_response_body)
    assert 'request.extensions.get("timeout"' in source and 'timeouts.get("read"' in source, (
        "httpcore2 no longer reads the request's read timeout when a body starts to stream: "
        "hub/client.stream_body_within changes it there; find the new place (or time the body ourselves)"
    )


def test_pyarrow_converts_a_python_scalar_without_searching_for_a_module():
    """pyarrow imports dateutil.relativedelta whenever it converts a Python scalar (an interval
    type it might be); where dateutil is missing, every conversion searched sys.path again (919
    times in a 10-shard shuffle, 0.23 s). The project depends on python-dateutil for that alone."""
    import sys

    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.array([1, 2, 3], pa.int64())
    pc.divide(values, 2)  # the first conversion may import it
    searched = []

    class Watch:
        def find_spec(self, name, path=None, target=None):
            searched.append(name)
            return None

    sys.meta_path.insert(0, Watch())
    try:
        for _ in range(10):
            pc.divide(values, 2)
    finally:
        sys.meta_path.remove(sys.meta_path[0])
    assert not searched, f"pyarrow searched for {sorted(set(searched))} on each Python scalar it converted"
