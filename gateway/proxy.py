"""Passthrough and resumable uploads: stream both ways, nothing buffered.

The Files API answers an upload start with `X-Goog-Upload-URL` on Google's host; left as
is, the SDK would send the bytes straight there, bypassing the gateway. We rewrite it to
`/_gateway/upload/<origin>.<mac>/<path?query>` on the gateway, and forward the chunks to
the original URL. The MAC (keyed with the gateway secret) covers origin, path and query,
so the route opens exactly the URLs Google issued and is no open proxy.
"""

from __future__ import annotations

import asyncio
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
    """End-to-end headers for the upstream; the gateway's own `x-gateway-*` stay here."""
    headers = end_to_end(request.headers, drop=_REQUEST_DROP)
    for name in [name for name in headers if name.lower().startswith("x-gateway-")]:
        del headers[name]
    auth.inject_api_key(headers, api_key, bool(auth.credential(request)))
    return headers


def target(request: web.BaseRequest) -> str:
    """Path and query exactly as sent (also for an absolute-form request target)."""
    raw = request.raw_path
    return raw if raw.startswith("/") else request.rel_url.raw_path_qs


async def _body(request: web.BaseRequest, idle_seconds: float) -> AsyncIterator[bytes]:
    """The client's body as it arrives; a client that stalls longer than `idle_seconds`
    ends it, so it cannot hold an upstream connection forever."""
    while True:
        async with asyncio.timeout(idle_seconds):
            chunk = await request.content.readany()
        if not chunk:
            return
        yield chunk


def _stream_body(
    request: web.BaseRequest, headers: CIMultiDict[str], idle_seconds: float
) -> AsyncIterator[bytes] | bytes | None:
    """The request body as a stream, keeping the client's Content-Length when it sent one."""
    if request.content_length is not None:
        headers["Content-Length"] = str(request.content_length)
        return _body(request, idle_seconds) if request.content_length else b""
    return _body(request, idle_seconds) if request.body_exists else None


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
    url = upstream.base_url(route.api) + target(request)
    body = _stream_body(request, headers, upstream.settings.read_timeout_seconds)
    resp = await upstream.send(request.method, url, headers, body, on_retry=on_retry)
    async with resp:
        extra: dict[str, str] = {}
        original = resp.headers.get(UPLOAD_URL_HEADER)
        if original:
            extra[UPLOAD_URL_HEADER] = rewrite_upload_url(original, request, secret)
        return await relay(request, resp, upstream, extra_headers=extra)


async def forward_upload_chunk(request: web.Request, upstream: Upstream, secret: bytes) -> Relayed:
    """Send upload bytes to the URL the rewritten one stands for."""
    token, slash, tail = target(request).removeprefix(UPLOAD_PREFIX).partition("/")
    original = _verify(token, slash + tail, secret)
    headers = request_headers(request)
    body = _stream_body(request, headers, upstream.settings.read_timeout_seconds)
    resp = await upstream.send(request.method, original, headers, body)
    async with resp:
        return await relay(request, resp, upstream)


def rewrite_upload_url(original: str, request: web.BaseRequest, secret: bytes) -> str:
    """`/_gateway/upload/<origin>.<mac>/<path?query>` on the host the client reached us by;
    the MAC covers origin, path and query, so the token opens exactly this one URL."""
    url = URL(original)
    origin = f"{url.scheme}://{url.raw_authority}"
    tail = url.raw_path_qs
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    return f"{scheme}://{request.host}{UPLOAD_PREFIX}{_sign(origin, tail, secret)}{tail}"


def _sign(origin: str, tail: str, secret: bytes) -> str:
    encoded = base64.urlsafe_b64encode(origin.encode()).decode().rstrip("=")
    return f"{encoded}.{_mac(origin, tail, secret)}"


def _mac(origin: str, tail: str, secret: bytes) -> str:
    message = f"upload\n{origin}\n{tail}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


def _verify(token: str, tail: str, secret: bytes) -> str:
    """The original upload URL, if this gateway signed the token for exactly this tail."""
    encoded, _, mac = token.partition(".")
    try:
        origin = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except ValueError:
        origin = ""
    if not origin or not hmac.compare_digest(mac, _mac(origin, tail, secret)):
        raise GatewayError(
            403,
            "UPLOAD_URL_INVALID",
            "This upload URL was not issued by this gateway (or the gateway "
            "secret changed); start the upload again.",
        )
    return origin + tail
