"""A local stand-in for the Hugging Face Hub HTTP API.

shardsql reads datasets through the real, unmodified ``huggingface_hub`` client (``HfFileSystem``, ``HfApi``).
Tests and the offline ``shardsql demo`` must not touch the network, so instead of mocking the client we serve
local folders over HTTP with the routes, headers, JSON fields and error codes that huggingface_hub 2.4.0 uses:
the client code that runs against this server is the code that runs in production.

Routes (dataset repos only; every ``add_dataset`` call is an immutable in-memory snapshot). Routes are strict,
as the Hub's: another method on a known path is a 405, anything after a revision where none belongs a 404.

* ``GET /api/datasets/{repo}[/revision/{rev}]``: repo info (``sha``, ``siblings``, ``gated``).
* ``GET /api/datasets/{repo}/tree/{rev}[/{dir}]``: listing, ``recursive``/``expand``, ``Link`` pagination.
* ``POST /api/datasets/{repo}/paths-info/{rev}``: info for some paths (form or JSON body).
* ``GET``/``HEAD /datasets/{repo}/resolve/{rev}/{path}``: file content with one ``Range`` (206, 416).

A revision is a branch (``main``), a ref (``refs/convert/parquet``, quoted as ``refs%2Fconvert%2Fparquet`` or
not) or a 40-hex commit sha. Serve a folder at ``refs/convert/parquet`` laid out as the Hub's automatic
conversions are (``default/train/0000.parquet``, or ``default/partial-train/0000.parquet`` for a partial
conversion of a large dataset). Errors carry the ``X-Error-Code`` that the client turns into exceptions:
``RepoNotFound`` (the spelling 2.4.0 checks; "RepositoryNotFound" would give a plain HfHubHTTPError) ->
RepositoryNotFoundError, ``RevisionNotFound`` -> RevisionNotFoundError, ``EntryNotFound`` ->
RemoteEntryNotFoundError, ``GatedRepo`` -> GatedRepoError. HfFileSystem checks repo info and listings before
reading, so it reports a missing repo, revision or file as FileNotFoundError. As on the real Hub, a gated
repo's info and listings are public; only file content needs ``Authorization: Bearer <token>``: 401 without a
token, 403 with another one (GatedRepoError either way, also from HfFileSystem reads). A token that is not a
Hub token at all (one not starting with ``hf_``) gets the Hub's 401 "Invalid credentials in Authorization
header" on every route, public repos included.

The real Hub's harder behaviours, each off by default (see ``HubStandIn``'s attributes and methods):

* ``limit_rate(resolvers=, api=, window_s=)``: per-window request budgets, answered past the budget with 429
  and only ``RateLimit: "resolvers";r=0;t=<s>`` / ``RateLimit-Policy`` headers (no ``Retry-After``), as the
  Hub does; answers within the budget carry the headers too, with the requests remaining.
* ``redirect_files``: ``resolve`` answers 302 to a storage host on another origin (a second port), as the Hub
  sends reads to its storage; ``storage_ignores_range`` makes that host answer 200 with the whole file.
* ``stall(kind, times)``: the next requests of a kind get no answer for ``stall_s`` seconds, then a closed
  connection.
* ``before_response``: a hook for any other fault (tests/faults.py).

Pointing the client at it:

* Pass ``endpoint=hub.url``: ``HfFileSystem(endpoint=hub.url, token=...)``, ``HfApi(endpoint=hub.url)``.
  This is the reliable way.
* ``HF_ENDPOINT`` is read once, when ``huggingface_hub`` is imported (``constants.ENDPOINT`` and the resolve
  URL template ``constants.HUGGINGFACE_CO_URL_TEMPLATE``). It only works for a process that imports
  huggingface_hub after the stand-in has started, e.g. a subprocess. In-process, patching both constants
  works; patching only ``constants.ENDPOINT`` is a trap: listings reach the stand-in, file URLs still point
  at https://huggingface.co.
* HfFileSystem caches instances (per endpoint and token) and their directory listings: create it with
  ``skip_instance_cache=True`` or call ``HfFileSystem.clear_instance_cache()`` when the stand-in or its data
  changes. ``token=None`` sends an implicit token (``HF_TOKEN`` or a saved login); ``token=False`` sends none.
* Reads: ``fs.open(path, "rb", cache_type="none")`` requests exactly the ranges read (pyarrow works on it);
  the default read-ahead cache asks for up to 5 MiB past each read; ``block_size=0`` streams a single GET
  and refuses to seek, so pyarrow cannot read Parquet from it.
* Offline use: on its first request a 2.4.0 process also fetches ``{constants.ENDPOINT}/api/agent-harnesses``
  (https://huggingface.co unless HF_ENDPOINT was set at import; this stand-in answers 404) unless
  ``HF_HUB_DISABLE_TELEMETRY=1`` is in the environment or ``constants.HF_HUB_DISABLE_TELEMETRY`` is True.

Modules: ``server`` (the stand-in's state and lifecycle), ``handler`` (one request: faults, routing,
sending), ``errors`` (the error answer), ``routes`` (the route table), ``api`` (repo info, tree,
paths-info), ``files`` (file content, storage, ranges), ``store`` (the served snapshots), ``limits``
(rate-limit budgets).
"""

from .server import HubStandIn

__all__ = ["HubStandIn"]
