"""Every Prometheus collector of the gateway, in one place, on a registry per app.

Labels come only from small fixed sets: operation kind, status code, cache result,
rejection reason, failure kind, and the model folded to the configured list or `other`.
Never a path, key, fingerprint or credential.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from gateway import __version__

# From a 5 ms cache hit to a 3-minute image call.
LATENCY_BUCKETS = (
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    20,
    30,
    45,
    60,
    90,
    120,
    180,
    300,
    600,
)
SIZE_BUCKETS = tuple(float(1 << n) for n in range(8, 30, 2))  # 256 B .. 128 MiB

# The fixed label sets. Series for these exist from the start (at zero), so a dashboard
# shows 0 rather than "No data" before the first rejection or error.
REJECT_REASONS = ("lane_full", "queue_full", "bytes", "timeout", "client_gone")
UPSTREAM_ERROR_KINDS = ("connect", "timeout", "reset", "4xx", "5xx")
CACHE_RESULTS = ("hit", "miss", "bypass", "coalesced")
CACHE_ERROR_OPS = ("open", "stats", "read", "write", "delete", "corrupt")
#: `operation` label values: route kinds plus the Gemini / Vertex actions passed through.
#: Anything else (an action is free text in the path) counts as `other`.
OPERATIONS = frozenset(
    {
        "generate",
        "stream_generate",
        "upload",
        "other",
        "countTokens",
        "computeTokens",
        "embedContent",
        "batchEmbedContents",
        "asyncBatchEmbedContent",
        "batchGenerateContent",
        "generateAnswer",
        "predict",
        "predictLongRunning",
        "fetchPredictOperation",
        "rawPredict",
        "streamRawPredict",
    }
)


class Metrics:
    """The collectors; tests build one on a fresh `CollectorRegistry` and read it back."""

    def __init__(self, models: tuple[str, ...], registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._models = models
        self._fold_cache: dict[str, str] = {}
        r = self.registry
        p = "gemini_gateway_"
        self.requests = Counter(
            f"{p}requests",
            "Requests answered.",
            ["operation", "model", "code", "cache"],
            registry=r,
        )
        self.request_duration = Histogram(
            f"{p}request_duration_seconds",
            "Time from request start to last byte sent.",
            ["operation", "model", "cache"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(f"{p}in_flight_requests", "Requests being handled now.", registry=r)
        self.request_bytes = Histogram(
            f"{p}request_body_bytes",
            "Request body sizes.",
            ["operation"],
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.response_bytes = Histogram(
            f"{p}response_body_bytes",
            "Response body sizes.",
            ["operation"],
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.upstream_duration = Histogram(
            f"{p}upstream_duration_seconds",
            "Upstream call time, request to last byte.",
            ["operation", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_ttfb = Histogram(
            f"{p}upstream_time_to_first_byte_seconds",
            "Upstream time to first byte of streams.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            f"{p}upstream_errors",
            "Upstream failures: connect, timeout, reset, 4xx, 5xx.",
            ["kind"],
            registry=r,
        )
        self.queue_depth = Gauge(f"{p}queue_depth", "Calls waiting for a lane now.", registry=r)
        self.lanes_busy = Gauge(f"{p}lanes_busy", "Lanes with a call running now.", registry=r)
        self.queue_wait = Histogram(
            f"{p}queue_wait_seconds",
            "Time serialized calls waited.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_rejections = Counter(
            f"{p}queue_rejections", "Calls refused by the lanes, by reason.", ["reason"], registry=r
        )
        self.cache_lookups = Counter(
            f"{p}cache_lookups", "Cache lookups by result.", ["result"], registry=r
        )
        self.cache_saved_bytes = Counter(
            f"{p}cache_saved_bytes", "Response bytes served from the cache.", registry=r
        )
        self.cache_entries = Gauge(f"{p}cache_entries", "Entries in the cache.", registry=r)
        self.cache_size = Gauge(f"{p}cache_size_bytes", "Bytes in the cache.", registry=r)
        self.cache_errors = Counter(
            f"{p}cache_errors", "Cache open/stats/read/write/delete failures.", ["op"], registry=r
        )
        Info(f"{p}build", "Gateway build.", registry=r).info({"version": __version__})
        for reason in REJECT_REASONS:
            self.queue_rejections.labels(reason)
        for kind in UPSTREAM_ERROR_KINDS:
            self.upstream_errors.labels(kind)
        for result in CACHE_RESULTS:
            self.cache_lookups.labels(result)
        for op in CACHE_ERROR_OPS:
            self.cache_errors.labels(op)

    def model(self, name: str) -> str:
        """Fold a model name to a configured one or `other` (bounded label set)."""
        folded = self._fold_cache.get(name)
        if folded is None:
            folded = next((m for m in self._models if fnmatch.fnmatchcase(name, m)), "other")
            if len(self._fold_cache) < 1024:
                self._fold_cache[name] = folded
        return folded

    @staticmethod
    def operation(name: str) -> str:
        """Fold an operation to the fixed set or `other` (a passthrough action is path text)."""
        return name if name in OPERATIONS else "other"

    def watch_lanes(self, depth: Callable[[], float], busy: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)
        self.lanes_busy.set_function(busy)


def metrics_handler(
    registry: CollectorRegistry,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler answering with the registry in the Prometheus text format."""

    async def handler(_: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(registry))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    return handler


@dataclass
class MetricsServer:
    """The separate metrics listener (`metrics.port`); `url` is None when it is off."""

    url: str | None
    _runner: web.AppRunner | None = None

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


async def serve_metrics(
    registry: CollectorRegistry, host: str, port: int, path: str = "/metrics"
) -> MetricsServer:
    """Serve only `path` on `host:port` (port 0: off, nothing listens); `close()` stops it.

    For scraping from another network than the API's, or from a port the firewall keeps
    private. Fails at start (OSError) when the port is taken, so a typo shows at once.
    """
    if port == 0:
        return MetricsServer(None)
    app = web.Application()
    app.router.add_get(path, metrics_handler(registry))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    return MetricsServer(f"http://{_url_host(bound[0])}:{bound[1]}{path}", runner)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
