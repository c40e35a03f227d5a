"""The one upstream `ClientSession`: header policy, timeouts, connect retries, error mapping.

aiohttp exceptions never leave this module: they become `UpstreamFailure`, a `GatewayError`
with a `kind` (connect, timeout, reset) for metrics, rendered in Google's error shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Mapping

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.config import UpstreamSettings
from gateway.errors import UpstreamFailure

Body = bytes | bytearray | AsyncIterable[bytes] | None

# RFC 9110 section 7.6.1: connection-specific fields a proxy must not forward.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def end_to_end(
    headers: Mapping[str, str], *, drop: frozenset[str] = frozenset()
) -> CIMultiDict[str]:
    """Copy headers without hop-by-hop fields, those named in Connection, and `drop`."""
    named = {
        token.strip().lower() for value in _all(headers, "connection") for token in value.split(",")
    }
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in named or lower in drop:
            continue
        out.add(name, value)
    return out


def _all(headers: Mapping[str, str], name: str) -> list[str]:
    if isinstance(headers, CIMultiDict | CIMultiDictProxy):
        return headers.getall(name, [])
    value = headers.get(name)
    return [value] if value is not None else []


class Upstream:
    """Owns the connection pool; `send` returns an open response the caller must release."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.settings.pool_size, limit_per_host=0, enable_cleanup_closed=True
        )
        # `connect` also bounds the wait for a free pooled connection, so a full pool
        # (stalled uploads, say) answers 504 instead of hanging every call behind it.
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.settings.connect_timeout_seconds,
            sock_connect=self.settings.connect_timeout_seconds,
            sock_read=self.settings.read_timeout_seconds,
        )
        # auto_decompress=False: bytes pass through exactly as the upstream sent them.
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def base_url(self, api: str) -> str:
        return (self.settings.vertex_url if api == "vertex" else self.settings.url).rstrip("/")

    async def send(
        self,
        method: str,
        url: str,
        headers: CIMultiDict[str],
        body: Body,
        on_retry: Callable[[], None] | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request; connect failures are retried only when the body can be resent."""
        assert self._session is not None, "Upstream.open() was not awaited"
        attempts = 1 + (self.settings.connect_retries if not _is_stream(body) else 0)
        for attempt in range(attempts):
            try:
                return await self._session.request(
                    method, url, headers=headers, data=body, allow_redirects=False
                )
            except aiohttp.ClientConnectorError as exc:
                if attempt + 1 < attempts:
                    if on_retry is not None:
                        on_retry()
                    await asyncio.sleep(0.05 * 2**attempt)
                    continue
                raise UpstreamFailure("connect", _describe(exc)) from None
            except Exception as exc:
                raise self.failure(exc) from None
        raise AssertionError("unreachable")

    def failure(self, exc: BaseException) -> UpstreamFailure:
        """Translate an aiohttp/asyncio error met while sending or reading."""
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            seconds = self.settings.connect_timeout_seconds
            detail = f"no connection within {seconds:g} s (upstream.connect_timeout_seconds)"
            return UpstreamFailure("connect", detail)
        if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
            return UpstreamFailure("timeout", f"{self.settings.read_timeout_seconds:g} s")
        if isinstance(exc, aiohttp.ClientConnectorError):
            return UpstreamFailure("connect", _describe(exc))
        return UpstreamFailure("reset", _describe(exc))


def _is_stream(body: Body) -> bool:
    return body is not None and not isinstance(body, bytes | bytearray)


def _describe(exc: BaseException) -> str:
    """A short cause without URLs or query strings (they may carry `?key=`)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection to {exc.host}:{exc.port} failed ({exc.os_error.strerror or 'error'})"
    return type(exc).__name__
