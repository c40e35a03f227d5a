"""Every Prometheus collector of the gateway, in one place, on a registry per app.

Labels come only from small fixed sets: operation kind, status code, cache result,
rejection reason, failure kind, and the model folded to the configured list or `other`.
Never a path, key, fingerprint or credential.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

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
            f"{p}cache_errors", "Cache read/write failures.", ["op"], registry=r
        )
        Info(f"{p}build", "Gateway build.", registry=r).info({"version": __version__})
        for reason in ("lane_full", "queue_full", "bytes", "timeout", "client_gone"):
            self.queue_rejections.labels(reason)
        for kind in ("connect", "timeout", "reset", "4xx", "5xx"):
            self.upstream_errors.labels(kind)
        for result in ("hit", "miss", "bypass", "coalesced"):
            self.cache_lookups.labels(result)

    def model(self, name: str) -> str:
        """Fold a model name to a configured one or `other` (bounded label set)."""
        folded = self._fold_cache.get(name)
        if folded is None:
            folded = next((m for m in self._models if fnmatch.fnmatchcase(name, m)), "other")
            if len(self._fold_cache) < 1024:
                self._fold_cache[name] = folded
        return folded

    def watch_lanes(self, depth: Callable[[], float], busy: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)
        self.lanes_busy.set_function(busy)
