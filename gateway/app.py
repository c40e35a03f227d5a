"""`create_app(settings)`: routes, the edge middleware, and `cleanup_ctx` for every resource."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway import admin, auth, heap, pipeline, proxy
from gateway.admin import READY, SERVICES, SETTINGS
from gateway.cache import CacheError, Store, open_store
from gateway.config import Settings
from gateway.errors import GatewayError, UpstreamFailure, internal
from gateway.lanes import LaneLimits, LocalLanes
from gateway.logs import get_logger
from gateway.metrics import Metrics, serve_metrics
from gateway.pipeline import OUTCOME, Outcome, Services
from gateway.relay import Relayed
from gateway.routing import Route, classify
from gateway.upstream import Upstream

REQUEST_ID = web.RequestKey("request_id", str)
ROUTE = web.RequestKey("route", Route)
CACHE_STATS_INTERVAL = 15.0
UPLOAD_ROUTE = Route("upload", "gemini")
SHUTDOWN_DEADLINE = web.AppKey("shutdown_deadline", dict[str, float])
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = get_logger()


def create_app(settings: Settings, *, registry: CollectorRegistry | None = None) -> web.Application:
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[edge],
        handler_args={"max_field_size": 65536},
    )
    app[READY] = {"ready": False}
    app[SETTINGS] = settings
    app[SHUTDOWN_DEADLINE] = {}
    app.on_shutdown.append(_start_shutdown_clock)
    app.cleanup_ctx.append(_services(settings, registry))
    admin.add_routes(app, settings.metrics.path)
    app.router.add_route("*", f"{proxy.UPLOAD_PREFIX}{{tail:.*}}", upload_chunk)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    app.on_response_prepare.append(_stamp_request_id)
    return app


async def dispatch(request: web.Request) -> web.StreamResponse:
    if _is_gateway_path(request):
        raise GatewayError(
            404, "GATEWAY_ROUTE_NOT_FOUND", f"No gateway route {request.method} {request.path}."
        )
    route = classify(request.method, request.path)
    request[ROUTE] = route
    services = request.app[SERVICES]
    if route.is_generate:
        return await pipeline.handle(request, route, services)
    relayed = await proxy.forward(
        request,
        route,
        services.upstream,
        services.secret,
        services.settings.upstream.api_key,
        on_retry=request[OUTCOME].count_retry,
    )
    return _note(request, relayed)


async def upload_chunk(request: web.Request) -> web.StreamResponse:
    request[ROUTE] = UPLOAD_ROUTE
    services = request.app[SERVICES]
    return _note(
        request, await proxy.forward_upload_chunk(request, services.upstream, services.secret)
    )


def _note(request: web.Request, relayed: Relayed) -> web.StreamResponse:
    request[OUTCOME].relayed(relayed)
    return relayed.response


def _is_gateway_path(request: web.Request) -> bool:
    """The gateway's own routes (not proxied, not counted as API traffic)."""
    path = request.path
    if path.startswith(proxy.UPLOAD_PREFIX):
        return False
    return path.startswith(admin.PREFIX + "/") or path == request.app[SETTINGS].metrics.path


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, timing, error rendering, access log and request metrics."""
    request[REQUEST_ID] = request.headers.get("x-request-id") or uuid.uuid4().hex
    if _is_gateway_path(request):
        return await _render(request, handler)
    services = request.app[SERVICES]
    request[OUTCOME] = outcome = Outcome()
    started = time.monotonic()
    services.metrics.in_flight.inc()
    services.in_flight += 1
    response: web.StreamResponse | None = None
    try:
        response = await _render(request, handler)
        return response
    finally:
        services.metrics.in_flight.dec()
        services.in_flight -= 1
        services.served += 1
        _account(request, services, outcome, response, time.monotonic() - started)


async def _render(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        if isinstance(exc, UpstreamFailure) and OUTCOME in request:
            request[OUTCOME].failure = exc.kind
        return exc.response()
    except web.HTTPException as exc:
        return GatewayError(exc.status, "HTTP_" + str(exc.status), exc.reason).response()
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled_error", request_id=request[REQUEST_ID], path=request.path)
        return internal().response()


def _account(
    request: web.Request,
    services: Services,
    outcome: Outcome,
    response: web.StreamResponse | None,
    seconds: float,
) -> None:
    metrics = services.metrics
    route: Route = request.get(ROUTE) or classify(request.method, request.path)
    model = metrics.model(route.model)
    operation = metrics.operation(route.operation)
    status = response.status if response is not None else 499
    bytes_out = outcome.bytes_out if outcome.bytes_out is not None else _bytes_out(response)
    bytes_in = outcome.bytes_in if outcome.bytes_in is not None else request.content_length or 0
    metrics.requests.labels(operation, model, str(status), outcome.cache).inc()
    metrics.request_duration.labels(operation, model, outcome.cache).observe(seconds)
    metrics.request_bytes.labels(operation).observe(bytes_in)
    metrics.response_bytes.labels(operation).observe(bytes_out)
    if outcome.failure is not None:
        metrics.upstream_errors.labels(outcome.failure).inc()
    elif outcome.upstream_status is not None and outcome.upstream_status >= 400:
        metrics.upstream_errors.labels(f"{outcome.upstream_status // 100}xx").inc()
    log.info(
        "request",
        request_id=request[REQUEST_ID],
        method=request.method,
        operation=operation,
        model=route.model or None,
        status=status,
        duration_ms=round(seconds * 1000, 2),
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        cache=outcome.cache,
        queue_wait_ms=_round(outcome.queue_wait_ms),
        upstream_ms=_round(outcome.upstream_ms),
        retries=outcome.retries,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _bytes_out(response: web.StreamResponse | None) -> int:
    if response is None:
        return 0
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        return len(response.body)
    return response.body_length


async def _stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
    if REQUEST_ID in request:
        response.headers["x-request-id"] = request[REQUEST_ID]


def _services(
    settings: Settings, registry: CollectorRegistry | None
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        metrics = Metrics(settings.metrics.models, registry)
        metrics_server = await serve_metrics(
            metrics.registry, settings.server.host, settings.metrics.port, settings.metrics.path
        )
        upstream = Upstream(settings.upstream)
        await upstream.open()
        store = await _open_store(settings, metrics)
        lanes = LocalLanes(
            LaneLimits(
                per_lane_concurrency=settings.lanes.per_lane_concurrency,
                max_waiting_per_lane=settings.lanes.max_waiting_per_lane,
                max_waiting_total=settings.lanes.max_waiting_total,
                max_queued_bytes=settings.lanes.max_queued_bytes,
                max_wait_seconds=settings.lanes.max_wait_seconds,
            )
        )
        metrics.watch_lanes(lambda: lanes.snapshot().waiting, lambda: _image_lanes_busy(lanes))
        app[SERVICES] = Services(settings, upstream, lanes, store, _secret(settings), metrics)
        services = app[SERVICES]
        housekeeping = {
            asyncio.create_task(_refresh_cache_gauges(store, metrics)),
            asyncio.create_task(
                heap.trim_when_idle(lambda: services.in_flight, lambda: services.served)
            ),
        }
        app[READY]["ready"] = True
        try:
            yield
        finally:
            app[READY]["ready"] = False
            # Calls still finishing upstream for clients that left get what is left of the
            # shutdown grace (aiohttp spent the rest on open requests), then are cancelled.
            left = app[SHUTDOWN_DEADLINE].get("at", 0.0) - time.monotonic()
            await _finish(services.background, max(0.0, left))
            await _finish(housekeeping, 0.0)
            if store is not None:
                await store.close()
            await upstream.close()
            await metrics_server.close()

    return ctx


async def _start_shutdown_clock(app: web.Application) -> None:
    grace = app[SETTINGS].server.shutdown_timeout_seconds
    app[SHUTDOWN_DEADLINE]["at"] = time.monotonic() + grace


async def _finish(tasks: set[asyncio.Task[Any]], timeout: float) -> None:
    """Wait up to `timeout` for tasks, then cancel and await the rest."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout) if timeout > 0 else (set(), tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _open_store(settings: Settings, metrics: Metrics) -> Store | None:
    """An unusable cache never stops the gateway: it logs, counts, and runs uncached."""
    cache = settings.cache
    if cache.backend == "off":
        return None
    store = open_store(
        cache.backend,
        dir=cache.dir,
        max_bytes=cache.max_bytes,
        ttl_seconds=cache.ttl_seconds,
        memory_bytes=cache.memory_bytes,
    )
    try:
        await store.stats()  # opens the backend now, so a bad directory shows at start-up
        return store
    except CacheError as exc:
        with contextlib.suppress(CacheError):
            await store.close()
        metrics.cache_errors.labels("open").inc()
        log.error("cache_unavailable", backend=cache.backend, error=str(exc))
        return None


def _image_lanes_busy(lanes: LocalLanes) -> int:
    """Busy lanes of reference images; cache-key lanes only coalesce identical calls."""
    return sum(
        1
        for lane in lanes.snapshot().lanes
        if lane.running and not lane.key_prefix.startswith(pipeline.CACHE_LANE_PREFIX)
    )


def _secret(settings: Settings) -> bytes:
    try:
        return auth.load_or_create_secret(settings.cache)
    except OSError as exc:
        log.warning("secret_not_persisted", error=exc.strerror)
        return auth.load_or_create_secret(settings.replace("cache", backend="memory").cache)


async def _refresh_cache_gauges(store: Store | None, metrics: Metrics) -> None:
    while store is not None:
        try:
            stats = await store.stats()
            metrics.cache_entries.set(stats.entries)
            metrics.cache_size.set(stats.size_bytes)
        except CacheError:
            metrics.cache_errors.labels("stats").inc()
        await asyncio.sleep(CACHE_STATS_INTERVAL)
