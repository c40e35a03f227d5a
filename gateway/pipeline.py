"""The generate path, and only it: parse, look up, wait for lanes, call upstream, cache.

`lane_keys` are the reference-image fingerprints (when the model is serialized) plus the
cache key (when the call is cacheable). One mechanism gives both properties: calls that
share an image never overlap upstream, and identical calls wait for the first and are
answered from the cache (request coalescing) instead of all going upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from gateway import auth, gemini
from gateway.cache import CacheError, CorruptEntry, Entry, Store, decode, encode
from gateway.cache.entry import Kind
from gateway.cache.policy import Capture, DirectiveError, Directives, matches, parse_directives
from gateway.config import Settings
from gateway.errors import GatewayError, bad_request, body_too_large
from gateway.lanes import Held, Lanes, QueueRejected
from gateway.logs import get_logger
from gateway.metrics import Metrics
from gateway.proxy import request_headers, target
from gateway.relay import SMALL_BODY, Relayed, relay
from gateway.routing import Route
from gateway.upstream import Upstream

OFF_LOOP_BYTES = 1024 * 1024
FIRST_SLICE = 16 * 1024
MAX_ENTRY_BYTES = 64 * 1024 * 1024
_CACHE_HEADER = "x-gateway-cache"
_WAIT_HEADER = "x-gateway-queue-wait-ms"
CACHE_LANE_PREFIX = "cache:"
log = get_logger()


@dataclass
class Services:
    """What the pipeline works with; built once per app by `app.create_app`."""

    settings: Settings
    upstream: Upstream
    lanes: Lanes
    store: Store | None
    secret: bytes
    metrics: Metrics
    rotation: dict[str, int] = field(default_factory=dict)
    background: set[asyncio.Task[web.StreamResponse]] = field(default_factory=set)
    in_flight: int = 0
    served: int = 0

    def forget(self, task: asyncio.Task[web.StreamResponse]) -> None:
        """Done-callback: drop the task; mark its error retrieved (its client may be gone)."""
        self.background.discard(task)
        if not task.cancelled():
            task.exception()


@dataclass
class Outcome:
    """What happened to one request, for the access log and metrics."""

    cache: str = "off"
    queue_wait_ms: float | None = None
    upstream_ms: float | None = None
    upstream_status: int | None = None
    failure: str | None = None
    retries: int = 0
    bytes_in: int | None = None
    bytes_out: int | None = None

    def relayed(self, relayed: Relayed) -> None:
        """Record an answer relayed from the upstream (a cut stream is a failure)."""
        self.upstream_status = relayed.response.status
        self.bytes_out = relayed.bytes_out
        if relayed.broken is not None:
            self.failure = relayed.broken

    def count_retry(self) -> None:
        self.retries += 1


OUTCOME = web.RequestKey("outcome", Outcome)


Body = bytes | bytearray


@dataclass(frozen=True, slots=True)
class Call:
    route: Route
    body: Body
    fingerprints: tuple[str, ...]
    key: str | None
    directives: Directives
    serialize: bool


async def handle(request: web.Request, route: Route, services: Services) -> web.StreamResponse:
    outcome = request[OUTCOME]
    call = await _prepare(request, route, services)
    if call.key is None:
        outcome.cache = "off" if services.store is None else "bypass"
    try:
        if call.key is not None and not call.directives.no_cache:
            entry = await _lookup(services, call)
            if entry is not None:
                outcome.cache = "hit"
                return await _replay(request, entry, services, outcome)
            outcome.cache = "miss"
        keys = _lane_keys(call)
        lanes = contextlib.AsyncExitStack()
        waited = (await _wait_for_lanes(lanes, keys, call, services)).wait_seconds if keys else 0.0
        if call.serialize:
            outcome.queue_wait_ms = waited * 1000
            services.metrics.queue_wait.labels(services.metrics.model(route.model)).observe(waited)
        if not keys:  # no lane to keep until the upstream answer is complete
            return await _while_holding(lanes, request, call, services, outcome)
        # From here the call keeps its lanes until the upstream answer is complete, even
        # if the client leaves: the model goes on generating, and releasing the lane early
        # would let the next call overlap it upstream, the very thing lanes prevent. The
        # finished answer still lands in the cache for the client's retry.
        task = asyncio.create_task(_while_holding(lanes, request, call, services, outcome))
        services.background.add(task)
        task.add_done_callback(services.forget)
        return await asyncio.shield(task)
    finally:
        if outcome.cache != "off":
            services.metrics.cache_lookups.labels(outcome.cache).inc()


def _lane_keys(call: Call) -> tuple[str, ...]:
    keys = call.fingerprints if call.serialize else ()
    if call.key is not None and not call.directives.no_cache:  # a refresh need not coalesce
        keys += (CACHE_LANE_PREFIX + call.key,)
    return keys


async def _wait_for_lanes(
    lanes: contextlib.AsyncExitStack, keys: tuple[str, ...], call: Call, services: Services
) -> Held:
    try:
        return await lanes.enter_async_context(services.lanes.hold(keys, size=len(call.body)))
    except QueueRejected as exc:
        services.metrics.queue_rejections.labels(exc.reason).inc()
        code = 503 if exc.reason == "timeout" else 429
        raise GatewayError(
            code, f"QUEUE_{exc.reason.upper()}", str(exc), retry_after=exc.retry_after
        ) from None
    except asyncio.CancelledError:
        services.metrics.queue_rejections.labels("client_gone").inc()
        raise


async def _while_holding(
    lanes: contextlib.AsyncExitStack,
    request: web.Request,
    call: Call,
    services: Services,
    outcome: Outcome,
) -> web.StreamResponse:
    async with lanes:
        if call.key is not None and not call.directives.no_cache:
            entry = await _lookup(services, call)
            if entry is not None:
                outcome.cache = "coalesced"
                return await _replay(request, entry, services, outcome)
        if call.key is not None:
            outcome.cache = "bypass" if call.directives.no_cache else "miss"
        return await _call_upstream(request, call, services, outcome)


async def _prepare(request: web.Request, route: Route, services: Services) -> Call:
    settings = services.settings
    try:
        directives = parse_directives(
            request.headers.get("Cache-Control"), request.headers.get("x-gateway-cache-variants")
        )
    except DirectiveError as exc:
        raise bad_request(str(exc), "BAD_CACHE_DIRECTIVE") from None
    body = await _read_body(request, settings.server.max_body_bytes)
    request[OUTCOME].bytes_in = len(body)
    serialize = matches(route.model, settings.lanes.models)
    may_cache = (
        services.store is not None
        and not directives.no_store
        and matches(route.model, settings.cache.models)
    )
    if not (serialize or may_cache):  # nothing would use the parse
        return Call(route, body, (), None, directives, serialize)
    if len(body) > OFF_LOOP_BYTES:
        parsed = await asyncio.to_thread(gemini.parse_body, body)
    else:
        parsed = gemini.parse_body(body)
    key = None
    if may_cache and parsed.canonical is not None:
        scope = auth.scope(services.secret, auth.credential(request))
        key = gemini.cache_key(
            operation=_operation(request, route),
            api_version=route.version,
            model=route.model,
            scope=scope,
            canonical=parsed.canonical,
        )
        key = _variant(services, key, directives.variants)
    return Call(route, body, parsed.fingerprints, key, directives, serialize)


def _operation(request: web.Request, route: Route) -> str:
    """Everything outside the body that can change the answer: the path (API, project,
    location, model, action), the query (`alt`, `fields`, ...) but the key, which the
    scope covers, and a field mask."""
    query = sorted((k, v) for k, v in request.query.items() if k != "key")
    mask = request.headers.get("X-Goog-FieldMask", "")
    return json.dumps([route.kind, request.path, query, mask], separators=(",", ":"))


def _variant(services: Services, key: str, variants: int) -> str:
    """With N variants, hand out the N answers of one request in turn."""
    if variants <= 1:
        return key
    rotation = services.rotation
    turn = rotation.pop(key, -1) + 1
    rotation[key] = turn
    if len(rotation) > 10_000:
        del rotation[next(iter(rotation))]
    return f"{key}#{turn % variants}"


async def _read_body(request: web.Request, limit: int) -> Body:
    """The whole body, bounded. A large one with a Content-Length is read straight into
    one buffer of that size: `request.read()` would hold three or four copies of it."""
    length = request.content_length
    if length is not None and length > limit:
        raise body_too_large(limit)
    if length is None or length < OFF_LOOP_BYTES:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise body_too_large(limit) from None
    buffer = bytearray(length)
    with memoryview(buffer) as view:
        filled = 0
        async for chunk, _ in request.content.iter_chunks():
            if filled + len(chunk) > length:
                raise bad_request("The body is longer than its Content-Length.", "BAD_LENGTH")
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    if filled != length:
        raise bad_request("The body is shorter than its Content-Length.", "BAD_LENGTH")
    return buffer


async def _lookup(services: Services, call: Call) -> Entry | None:
    assert services.store is not None and call.key is not None
    try:
        data = await services.store.get(call.key)
        if data is None:
            return None
        entry = decode(data)
    except CorruptEntry:
        services.metrics.cache_errors.labels("corrupt").inc()
        log.warning("cache_entry_corrupt", key_prefix=call.key[:8])
        await _safe_delete(services, call.key)
        return None
    except CacheError as exc:
        services.metrics.cache_errors.labels("read").inc()
        log.warning("cache_read_failed", error=str(exc))
        return None
    max_age = call.directives.max_age
    if max_age is not None and entry.age(time.time()) > max_age:
        return None
    return entry


async def _safe_delete(services: Services, key: str) -> None:
    assert services.store is not None
    try:
        await services.store.delete(key)
    except CacheError:
        services.metrics.cache_errors.labels("delete").inc()


async def _replay(
    request: web.Request, entry: Entry, services: Services, outcome: Outcome
) -> web.StreamResponse:
    headers = dict(entry.headers)
    headers[_CACHE_HEADER] = outcome.cache.upper()
    headers["Age"] = str(int(entry.age(time.time())))
    if outcome.queue_wait_ms is not None:
        headers[_WAIT_HEADER] = f"{outcome.queue_wait_ms:.0f}"
    size = sum(map(len, entry.chunks))
    services.metrics.cache_saved_bytes.inc(size)
    outcome.bytes_out = size
    if entry.kind == "body" and size <= SMALL_BODY:
        return web.Response(status=entry.status, body=entry.chunks[0], headers=headers)
    # Large answers go out as views of the stored bytes. The first write is small: aiohttp
    # joins it with the headers, and one `web.Response` would join the whole body.
    out = web.StreamResponse(status=entry.status, headers=headers)
    out.content_length = size
    await out.prepare(request)
    for chunk in entry.chunks:
        view = memoryview(chunk)
        await out.write(view[:FIRST_SLICE])
        if len(view) > FIRST_SLICE:
            await out.write(view[FIRST_SLICE:])
    await out.write_eof()
    return out


async def _call_upstream(
    request: web.Request, call: Call, services: Services, outcome: Outcome
) -> web.StreamResponse:
    route, upstream = call.route, services.upstream
    headers = request_headers(request, services.settings.upstream.api_key)
    # Identity encoding: the cache and the SSE tee need the bytes the model produced.
    headers["Accept-Encoding"] = "identity"
    headers["Content-Length"] = str(len(call.body))
    url = upstream.base_url(route.api) + target(request)
    extra = {_CACHE_HEADER: outcome.cache.upper()} if outcome.cache != "off" else {}
    if outcome.queue_wait_ms is not None:
        extra[_WAIT_HEADER] = f"{outcome.queue_wait_ms:.0f}"
    streaming = route.kind == "stream_generate"
    capture = _capture(call, request, services)
    started = time.monotonic()
    resp = await upstream.send("POST", url, headers, call.body, on_retry=outcome.count_retry)
    async with resp:
        outcome.upstream_status = resp.status
        relayed = await relay(
            request,
            resp,
            upstream,
            extra_headers=extra,
            sink=capture,
            streaming=streaming,
            started=started,
        )
        _observe_upstream(services, call, outcome, relayed, time.monotonic() - started)
        outcome.relayed(relayed)
        if relayed.complete and capture is not None and call.key is not None:
            await _store(services, call.key, capture, resp.status, resp.headers, route.model)
        return relayed.response


def _capture(call: Call, request: web.Request, services: Services) -> Capture | None:
    if call.key is None:
        return None
    kind: Kind = "body"
    if call.route.kind == "stream_generate":
        kind = "sse" if request.query.get("alt") == "sse" else "array"
    return Capture(kind, limit=min(MAX_ENTRY_BYTES, services.settings.cache.max_bytes // 4))


def _observe_upstream(
    services: Services, call: Call, outcome: Outcome, relayed: Relayed, seconds: float
) -> None:
    metrics = services.metrics
    model = metrics.model(call.route.model)
    outcome.upstream_ms = seconds * 1000
    metrics.upstream_duration.labels(call.route.kind, model).observe(seconds)
    if call.route.kind == "stream_generate" and relayed.first_byte_seconds is not None:
        metrics.upstream_ttfb.labels(model).observe(relayed.first_byte_seconds)


async def _store(
    services: Services,
    key: str,
    capture: Capture,
    status: int,
    headers: Mapping[str, str],
    model: str,
) -> None:
    """Check, build and encode the entry (off the loop when large), then store it."""
    assert services.store is not None
    now = time.time()
    build = functools.partial(_encoded_entry, capture, status, headers, model, now)
    data = await asyncio.to_thread(build) if capture.size > OFF_LOOP_BYTES else build()
    if data is None:
        return
    try:
        await services.store.put(key, data, model=model, created_at=now)
    except CacheError as exc:
        services.metrics.cache_errors.labels("write").inc()
        log.warning("cache_write_failed", error=str(exc))


def _encoded_entry(
    capture: Capture, status: int, headers: Mapping[str, str], model: str, now: float
) -> bytes | None:
    entry = capture.entry(status, headers, model, now)
    return None if entry is None else encode(entry)
