"""Everything under `/_gateway/`: health, readiness, a read-only lanes view, cache admin.

Writes (cache purge) need the admin token from settings; with none configured they are
off. Views never show image data, keys or credentials: fingerprints only as prefixes.
"""

from __future__ import annotations

import dataclasses
import hmac
import math
import re

from aiohttp import web

from gateway.cache import CacheError, PurgeFilter
from gateway.config import Settings
from gateway.errors import GatewayError, bad_request
from gateway.metrics import metrics_handler
from gateway.pipeline import Services

SERVICES = web.AppKey("services", Services)
SETTINGS = web.AppKey("settings", Settings)
READY = web.AppKey("ready", dict[str, bool])
PREFIX = "/_gateway"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def add_routes(app: web.Application, metrics_path: str) -> None:
    app.router.add_get(f"{PREFIX}/healthz", healthz)
    app.router.add_get(f"{PREFIX}/readyz", readyz)
    app.router.add_get(f"{PREFIX}/lanes", lanes_view)
    app.router.add_get(f"{PREFIX}/cache", cache_stats)
    app.router.add_post(f"{PREFIX}/cache/purge", cache_purge)
    app.router.add_get(metrics_path, metrics_view)


async def metrics_view(request: web.Request) -> web.Response:
    return await metrics_handler(request.app[SERVICES].metrics.registry)(request)


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready = request.app[READY].get("ready", False)
    return web.json_response({"ready": ready}, status=200 if ready else 503)


async def lanes_view(request: web.Request) -> web.Response:
    snap = request.app[SERVICES].lanes.snapshot()
    return web.json_response(
        {
            "busy_lanes": snap.busy_lanes,
            "waiting": snap.waiting,
            "queued_bytes": snap.queued_bytes,
            "longest_wait_seconds": round(snap.longest_wait_seconds, 3),
            "lanes": [dataclasses.asdict(lane) for lane in snap.lanes],
        }
    )


async def cache_stats(request: web.Request) -> web.Response:
    store = request.app[SERVICES].store
    if store is None:
        return web.json_response({"backend": "off"})
    try:
        stats = await store.stats()
    except CacheError as exc:
        raise GatewayError(503, "CACHE_UNAVAILABLE", f"cache stats failed: {exc}") from None
    backend = request.app[SERVICES].settings.cache.backend
    return web.json_response({"backend": backend, **dataclasses.asdict(stats)})


async def cache_purge(request: web.Request) -> web.Response:
    """POST /_gateway/cache/purge?model=GLOB&older_than=DURATION or ?all=true."""
    services = request.app[SERVICES]
    _require_admin(request, services.settings.admin.token)
    if services.store is None:
        return web.json_response({"removed": 0, "backend": "off"})
    flt = purge_filter(
        request.query.get("model"),
        request.query.get("older_than"),
        request.query.get("all", "").lower() in ("1", "true", "yes"),
    )
    try:
        removed = await services.store.purge(flt)
    except CacheError as exc:
        raise GatewayError(503, "CACHE_UNAVAILABLE", f"cache purge failed: {exc}") from None
    return web.json_response({"removed": removed})


def purge_filter(model: str | None, older_than: str | None, purge_all: bool) -> PurgeFilter:
    """Refuse an unfiltered purge unless `all` is explicit: it is too easy to do by mistake."""
    if not (model or older_than or purge_all):
        raise bad_request(
            "purge needs model=GLOB, older_than=DURATION (e.g. 7d, 12h) or all=true",
            "PURGE_FILTER_MISSING",
        )
    return PurgeFilter(
        model_glob=model or None,
        older_than_seconds=parse_duration(older_than) if older_than else None,
    )


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if match is None:
        raise bad_request(
            f"older_than must look like 90s, 30m, 12h or 7d, got {text!r}", "BAD_DURATION"
        )
    seconds = float(match[1]) * _UNITS[match[2]]
    if not math.isfinite(seconds):
        raise bad_request(f"older_than is too large: {text[:20]!r}...", "BAD_DURATION")
    return seconds


def _require_admin(request: web.Request, token: str) -> None:
    if not token:
        raise GatewayError(
            403,
            "ADMIN_DISABLED",
            "Admin writes are off: set admin.token (GEMINI_GATEWAY_ADMIN_TOKEN).",
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    given = given.strip() if scheme.lower() == "bearer" else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise GatewayError(
            401, "ADMIN_TOKEN_INVALID", "Send the admin token as 'Authorization: Bearer <token>'."
        )
