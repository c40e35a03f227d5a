"""Cache policy, pure: request directives, variants, and what makes an answer complete.

Only complete 2xx answers are cached: a JSON body that is whole, an SSE stream whose
events are all terminated and whose last event carries `finishReason`, a JSON-array
stream that parses. A stream that broke off is never replayed as if it were whole.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.cache.entry import Entry, Kind

MAX_VARIANTS = 16
REPLAYED_HEADERS = ("content-type",)
_FINISH = b'"finishReason"'


class DirectiveError(ValueError):
    """A cache control header the caller sent is malformed."""


@dataclass(frozen=True, slots=True)
class Directives:
    no_cache: bool = False
    no_store: bool = False
    max_age: float | None = None
    variants: int = 1


def parse_directives(cache_control: str | None, variants: str | None) -> Directives:
    no_cache = no_store = False
    max_age: float | None = None
    for part in (cache_control or "").split(","):
        name, _, value = part.strip().partition("=")
        name = name.strip().lower()
        if name == "no-cache":
            no_cache = True
        elif name == "no-store":
            no_store = True
        elif name == "max-age":
            try:
                max_age = float(int(value.strip().strip('"')))
            except ValueError:
                raise DirectiveError(
                    f"Cache-Control max-age must be whole seconds, got {value!r}"
                ) from None
            if max_age < 0:
                raise DirectiveError("Cache-Control max-age must not be negative")
    count = 1
    if variants is not None:
        try:
            count = int(variants.strip())
        except ValueError:
            count = 0
        if not 1 <= count <= MAX_VARIANTS:
            raise DirectiveError(
                f"x-gateway-cache-variants must be a whole number from 1 to {MAX_VARIANTS}, "
                f"got {variants!r}"
            )
    return Directives(no_cache, no_store, max_age, count)


def matches(model: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(model, pattern) for pattern in globs)


class Capture:
    """Collects an answer's chunks as they are relayed; gives up past `limit` bytes."""

    def __init__(self, kind: Kind, limit: int) -> None:
        self.kind: Kind = kind
        self.limit = limit
        self.size = 0
        self.chunks: list[bytes] = []
        self.overflow = False

    def __call__(self, chunk: bytes) -> None:
        if self.overflow:
            return
        self.size += len(chunk)
        if self.size > self.limit:
            self.overflow = True
            self.chunks.clear()
        else:
            self.chunks.append(chunk)

    def entry(
        self, status: int, headers: Mapping[str, str], model: str, now: float
    ) -> Entry | None:
        """The cache entry, or None when the answer is not a complete 2xx."""
        if self.overflow or not 200 <= status < 300:
            return None
        data = b"".join(self.chunks)
        chunks = complete_chunks(self.kind, data)
        if chunks is None:
            return None
        kept = tuple((name, headers[name]) for name in REPLAYED_HEADERS if name in headers)
        return Entry(
            status=status, headers=kept, kind=self.kind, chunks=chunks, model=model, created_at=now
        )


def complete_chunks(kind: Kind, data: bytes) -> tuple[bytes, ...] | None:
    if kind == "sse":
        return _sse_events(data)
    if kind == "array":
        try:
            items = json.loads(data)
        except ValueError:
            return None
        if (
            not isinstance(items, list)
            or not items
            or _FINISH not in json.dumps(items[-1]).encode()
        ):
            return None
        return (data,)
    # Only the ends are looked at: a whole body parse of an image answer costs milliseconds.
    if not (data[:64].lstrip().startswith(b"{") and data[-64:].rstrip().endswith(b"}")):
        return None
    return (data,)


def _sse_events(data: bytes) -> tuple[bytes, ...] | None:
    """The stream as one chunk, if its last event is terminated and finished the answer.

    Replaying the same bytes in one write keeps the events and their framing; only the
    last event is inspected, so a multi-megabyte image stream costs no scan."""
    separator = b"\r\n\r\n" if data.endswith(b"\r\n\r\n") else b"\n\n"
    if not data.endswith(separator):
        return None
    start = data.rfind(separator, 0, len(data) - len(separator))
    last = data[start + len(separator) if start >= 0 else 0 :]
    return (data,) if _FINISH in last else None
