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
* ``GET``/``HEAD /api/resolve-cache/datasets/{repo}/{sha}/{path}``: as ``resolve`` (see ``resolve_via_cache``).
* On the storage host: ``GET``/``HEAD /__storage/{repo}/{sha}/{path}?<signature>`` (see ``redirect_files``).

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

The real Hub's harder behaviours, each off by default (see ``HubStandIn``'s attributes and methods; the
signed URLs and Xet headers are on, but only show once ``redirect_files`` is):

* ``limit_rate(resolvers=, api=, window_s=, clock=)``: per-window request budgets, answered past the budget
  with 429 and only ``RateLimit: "resolvers";r=0;t=<s>`` (``"api"`` for API calls) / ``RateLimit-Policy``
  headers (no ``Retry-After``), as the Hub does; answers within the budget carry the headers too, with the
  requests remaining. Only paths with a ``/resolve/`` segment spend "resolvers"; ``resolve-cache`` and the
  storage host spend nothing (storage is another service).
* ``redirect_files``: ``resolve`` (GET and HEAD) answers 302 to the storage host, another origin (a second
  port, ``storage_url``), as the Hub sends reads to its storage. The 302 has a ``text/plain; charset=utf-8``
  body ``Found. Redirecting to <Location>`` and the headers ``Location``, ``X-Repo-Commit``, ``ETag``,
  ``X-Linked-Size`` (the file's size), ``X-Linked-ETag`` (its quoted sha256), ``X-Xet-Hash`` and ``Link``
  (``rel="xet-reconstruction-info"`` and ``rel="xet-auth"``; both targets 404). ``advertise_xet = False``
  drops the last two: with them, ``hf_hub_download`` takes its Xet path, which the stand-in does not serve.
* Signed, expiring storage URLs (with ``redirect_files``): ``signed_url_styles`` (default ``("amz",
  "cloudfront")``: S3's ``X-Amz-Algorithm/Credential/Date/Expires/Signature/SignedHeaders`` and CloudFront's
  ``Expires/Signature/Key-Pair-Id`` on the same URL, same expiry; ``()``: unsigned, never expires), valid for
  ``url_lifetime_s`` (3600) from the 302. Storage answers a missing or bad signature with 403 and S3's XML
  ``<Error><Code>AccessDenied</Code><Message>Access Denied</Message>...``, an expired URL with 403 ``Request
  has expired`` (``application/xml``; no ``X-Error-Code``: storage is not the Hub).
* ``clock``: the stand-in's wall clock (unix seconds, default ``time.time``). It signs URLs, checks their
  expiry and dates every answer on both servers (``Date``): move a fake one to expire URLs without waiting.
  (``limit_rate``'s clock and the network model use monotonic time of their own.)
* ``storage_fault(kind, times=1, total=None)``: the next ``times`` storage GETs that pass the signature
  check get a fault: ``"access-denied"`` (403 AccessDenied XML on a valid URL, xet-core#897) or
  ``"stale-416"`` (GETs with a Range only: 416, ``Content-Range: bytes */<total>`` and S3's InvalidRange
  XML, a stale object in a CDN edge cache, datasets#7685; ``total`` defaults to the range's start).
* ``storage_ignores_range``: the storage host answers 200 with the whole file to a Range.
* ``storage_gzips``: a storage GET or HEAD whose ``Accept-Encoding`` admits gzip (``gzip``, ``x-gzip`` or
  ``*`` with q > 0; no header: no) gets 200, ``Content-Encoding: gzip`` and the whole file gzipped, whatever
  its Range, as a compressing CDN answers. httpx2 sends ``gzip, deflate`` unless told ``identity``.
* ``rename(old, new)``: every route of ``old`` answers 307 with a relative ``Location`` to the same route
  of ``new`` (query kept), as the Hub does for a renamed repo.
* ``resolve_via_cache``: ``resolve`` answers 307 to a relative
  ``/api/resolve-cache/datasets/{repo}/{commit}/{path}?{quoted resolve path}=&etag={quoted etag}``, which
  answers as ``resolve`` does (the content, or the 302 to storage).
* ``model_network(rtt_s=, connection_bytes_per_s=, link_bytes_per_s=, connect_rtts=2)`` or
  ``play_network(network.SLOW_LINK)``: a network between client and both servers (``network.py``): a round
  trip before each answer, ``connect_rtts`` more before a new connection's first, bodies paced per
  connection and on one link that all connections share fairly. ``shardsql demo --slow-link`` plays it.
* ``stall(kind, times)``: the next requests of a kind get no answer for ``stall_s`` seconds, then a closed
  connection.
* ``before_response``: a hook for any other fault (tests/faults.py).

Counters: ``requests`` (method, path with query, Range, status, body bytes) and ``bytes_served`` (file
bodies as sent, gzipped if so), as before; ``transfers`` (``records.Transfer``: server, kind "api" /
"resolve" / "storage", file, status, body bytes, monotonic times received / answered / finished) and
``requests_per_file(kind="storage", method="GET")``, e.g. how many storage requests each file got, and
``most_reads_at_once()``, the most file reads answered at the same time. ``reset_counters()`` clears them all.

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
  (https://huggingface.co unless HF_ENDPOINT was set at import; this stand-in answers with an empty list,
  which huggingface_hub keeps a day in ``HF_HOME``, as it keeps the Hub's) unless
  ``HF_HUB_DISABLE_TELEMETRY=1`` is in the environment or ``constants.HF_HUB_DISABLE_TELEMETRY`` is True.

Modules, top to bottom (each imports only those below it): ``server`` (``HubStandIn``: the two HTTP servers,
started and stopped), ``handler`` (one request: faults, routing, sending), ``routes`` (the route table, renamed
repos), the answers ``api`` (repo info, tree, paths-info), ``storage`` (the storage host: signature checks,
faults, gzip) and ``files`` (file content, ranges, the redirects), ``request`` (what an answer needs of a
request), ``state`` (served repos, settings, faults, counters); and the leaves ``errors`` (the error answer),
``signing`` (signed URLs), ``network`` (the network model), ``records`` (what each answer did, and when),
``store`` (the served snapshots), ``limits`` (rate-limit budgets).
"""

from .server import HubStandIn

__all__ = ["HubStandIn"]
