"""Passthrough and resumable uploads: stream both ways, nothing buffered.

The Files API answers an upload start with `X-Goog-Upload-URL` on Google's host; left as
is, the SDK would send the bytes straight there, bypassing the gateway. We rewrite it to
`/_gateway/upload/<signed origin>/<path>` on the gateway, and forward the chunks to the
original URL. The origin is signed with the gateway secret so the route cannot be used
as an open proxy to arbitrary hosts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway import auth
from gateway.errors import GatewayError
from gateway.relay import Relayed, relay
from gateway.routing import Route
from gateway.upstream import Upstream, end_to_end

UPLOAD_PREFIX = "/_gateway/upload/"
UPLOAD_URL_HEADER = "X-Goog-Upload-URL"
_REQUEST_DROP = frozenset({"host", "content-length"})


def request_headers(request: web.BaseRequest, api_key: str = "") -> CIMultiDict[str]:
    headers = end_to_end(request.headers, drop=_REQUEST_DROP)
    auth.inject_api_key(headers, api_key, bool(auth.credential(request)))
    return headers


async def _body(request: web.BaseRequest) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_any():
        yield chunk


def _stream_body(
    request: web.BaseRequest, headers: CIMultiDict[str]
) -> AsyncIterator[bytes] | bytes | None:
    """The request body as a stream, keeping the client's Content-Length when it sent one."""
    if request.content_length is not None:
        headers["Content-Length"] = str(request.content_length)
        return _body(request) if request.content_length else b""
    return _body(request) if request.body_exists else None


async def forward(
    request: web.Request,
    route: Route,
    upstream: Upstream,
    secret: bytes,
    api_key: str = "",
    on_retry: Callable[[], None] | None = None,
) -> Relayed:
    """Forward any non-generate request unchanged; rewrite upload URLs on the way back."""
    headers = request_headers(request, api_key)
    url = upstream.base_url(route.api) + request.raw_path
    body = _stream_body(request, headers)
    resp = await upstream.send(request.method, url, headers, body, on_retry=on_retry)
    async with resp:
        extra: dict[str, str] = {}
        original = resp.headers.get(UPLOAD_URL_HEADER)
        if original:
            extra[UPLOAD_URL_HEADER] = rewrite_upload_url(original, request, secret)
        return await relay(request, resp, upstream, extra_headers=extra)


async def forward_upload_chunk(request: web.Request, upstream: Upstream, secret: bytes) -> Relayed:
    """Send upload bytes to the origin the rewritten URL names."""
    token = request.match_info["token"]
    origin = _verify(token, secret)
    headers = request_headers(request)
    target = origin + request.raw_path[len(UPLOAD_PREFIX) + len(token) :]
    resp = await upstream.send(request.method, target, headers, _stream_body(request, headers))
    async with resp:
        return await relay(request, resp, upstream)


def rewrite_upload_url(original: str, request: web.BaseRequest, secret: bytes) -> str:
    url = URL(original)
    origin = f"{url.scheme}://{url.raw_authority}"
    token = _sign(origin, secret)
    base = f"{request.scheme}://{request.host}"
    query = f"?{url.raw_query_string}" if url.raw_query_string else ""
    return f"{base}{UPLOAD_PREFIX}{token}{url.raw_path}{query}"


def _sign(origin: str, secret: bytes) -> str:
    encoded = base64.urlsafe_b64encode(origin.encode()).decode().rstrip("=")
    mac = hmac.new(secret, b"upload:" + origin.encode(), hashlib.sha256).hexdigest()[:24]
    return f"{encoded}.{mac}"


def _verify(token: str, secret: bytes) -> str:
    encoded, _, mac = token.partition(".")
    try:
        origin = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except ValueError:
        origin = ""
    expected = _sign(origin, secret).partition(".")[2] if origin else ""
    if not origin or not hmac.compare_digest(mac, expected):
        raise GatewayError(
            403,
            "UPLOAD_URL_INVALID",
            "This upload URL was not issued by this gateway (or the gateway "
            "secret changed); start the upload again.",
        )
    return origin
