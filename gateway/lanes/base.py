"""The lanes contract: serialize calls that share a key, run the rest in parallel.

A *lane* is identified by a key (a reference-image fingerprint or a cache key). Calls
that share any key take turns on that lane in arrival order; calls with disjoint keys
never wait for each other. Backends (in-process, Redis) implement `Lanes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Literal, Protocol

RejectReason = Literal["lane_full", "queue_full", "bytes", "timeout"]

KEY_PREFIX_CHARS = 8


def key_prefix(key: str) -> str:
    """Shorten a key for logs, errors and admin views; full keys may identify content."""
    return key[:KEY_PREFIX_CHARS]


@dataclass(frozen=True)
class LaneLimits:
    """Bounds on waiting, so a burst costs memory and latency we chose, not what it wants."""

    per_lane_concurrency: int = 1
    max_waiting_per_lane: int = 64
    max_waiting_total: int = 1024
    max_queued_bytes: int = 1 << 30
    max_wait_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.per_lane_concurrency < 1:
            raise ValueError("per_lane_concurrency must be at least 1")
        if min(self.max_waiting_per_lane, self.max_waiting_total, self.max_queued_bytes) < 0:
            raise ValueError("lane waiting limits must not be negative")
        if self.max_wait_seconds <= 0:
            raise ValueError("max_wait_seconds must be positive")


class QueueRejected(Exception):
    """A call refused a place in (or dropped from) a lane; the HTTP layer maps it to 429/503.

    `retry_after` is a hint in seconds for the client's Retry-After header. The message
    never carries request content and names keys only by their 8-character prefix.
    """

    def __init__(self, reason: RejectReason, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.reason: RejectReason = reason
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Held:
    """What a caller learns on entering its lanes (for logs and metrics)."""

    wait_seconds: float
    keys: tuple[str, ...]


@dataclass(frozen=True)
class LaneView:
    """One lane as the read-only admin page shows it; only a key prefix, never the key."""

    key_prefix: str
    running: int
    waiting: int
    oldest_wait_seconds: float


@dataclass(frozen=True)
class LanesSnapshot:
    """Point-in-time totals for metrics and the admin view."""

    busy_lanes: int
    waiting: int
    queued_bytes: int
    longest_wait_seconds: float
    lanes: tuple[LaneView, ...]


class Lanes(Protocol):
    """Serialize calls per key. `hold` waits its turn on every key and releases on exit.

    Raises `QueueRejected` when a bound is hit or the wait exceeds the limit. A caller
    cancelled while waiting leaves the queue at once.
    """

    def hold(self, keys: Sequence[str], *, size: int = 0) -> AbstractAsyncContextManager[Held]: ...

    def snapshot(self) -> LanesSnapshot: ...
