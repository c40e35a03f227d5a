"""Copy an upstream response to the client, byte for byte.

Small bodies go out in one `web.Response` (a chunked `StreamResponse` costs about 2 ms
more per call); large bodies and streams go out chunk by chunk as they arrive, so time to
first byte is preserved and nothing large is held. An optional sink sees every chunk,
which is how the pipeline tees an answer into a cache entry without a second copy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from gateway.errors import FailureKind
from gateway.upstream import Upstream, end_to_end

SMALL_BODY = 256 * 1024
CHUNK = 64 * 1024

# Set by aiohttp from what we actually send; the upstream's value would be wrong for us.
_RESPONSE_DROP = frozenset({"content-length"})


@dataclass(slots=True)
class Relayed:
    response: web.StreamResponse
    bytes_out: int
    first_byte_seconds: float | None
    broken: FailureKind | None = None  # why the upstream stream ended early, if it did

    @property
    def complete(self) -> bool:
        return self.broken is None


def response_headers(
    upstream: aiohttp.ClientResponse, extra: Mapping[str, str]
) -> CIMultiDict[str]:
    headers = end_to_end(upstream.headers, drop=_RESPONSE_DROP)
    headers.update(extra)
    return headers


async def relay(
    request: web.BaseRequest,
    resp: aiohttp.ClientResponse,
    upstream: Upstream,
    *,
    extra_headers: Mapping[str, str] | None = None,
    sink: Callable[[bytes], None] | None = None,
    streaming: bool = False,
    started: float | None = None,
) -> Relayed:
    """Send `resp` to the client. Upstream read errors become `UpstreamFailure` before the
    client saw anything, else the client connection is cut (as the upstream cut ours).
    `first_byte_seconds` counts from `started` (when the request was sent), if given."""
    started = time.monotonic() if started is None else started
    headers = response_headers(resp, extra_headers or {})
    length = resp.content_length
    if not streaming and length is not None and length <= SMALL_BODY and request.method != "HEAD":
        try:
            body = await resp.read()
        except Exception as exc:
            raise upstream.failure(exc) from None
        if sink is not None:
            sink(body)
        small = web.Response(status=resp.status, reason=resp.reason, body=body, headers=headers)
        return Relayed(small, len(body), time.monotonic() - started)
    out = web.StreamResponse(status=resp.status, reason=resp.reason, headers=headers)
    if length is not None:
        out.content_length = length
    client = _Client(request, out)
    first: float | None = None
    chunks = resp.content.iter_any() if streaming else resp.content.iter_chunked(CHUNK)
    try:
        async for chunk in chunks:
            if first is None:
                first = time.monotonic() - started
            if sink is not None:
                sink(chunk)
            await client.write(chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        if first is None:
            raise upstream.failure(exc) from None
        _abort(request)
        return Relayed(out, client.sent, first, upstream.failure(exc).kind)
    await client.finish()
    return Relayed(out, client.sent, first)


class _Client:
    """Writes to the client until it leaves; after that the upstream is still drained
    (into the sink) so a finished answer is not lost."""

    def __init__(self, request: web.BaseRequest, out: web.StreamResponse) -> None:
        self.request = request
        self.out = out
        self.sent = 0
        self.gone = False

    async def write(self, chunk: bytes) -> None:
        if self.gone:
            return
        try:
            if not self.out.prepared:
                await self.out.prepare(self.request)
            await self.out.write(chunk)
            self.sent += len(chunk)
        except ConnectionResetError:
            self.gone = True

    async def finish(self) -> None:
        if self.gone:
            return
        try:
            if not self.out.prepared:
                await self.out.prepare(self.request)
            await self.out.write_eof()
        except ConnectionResetError:
            self.gone = True


def _abort(request: web.BaseRequest) -> None:
    """Cut the client connection so a broken upstream stream never looks complete."""
    transport = request.transport
    if transport is not None:
        transport.close()
