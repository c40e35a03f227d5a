"""A running emulator + gateway pair on loopback, for tests and the benchmarks.

`gateway_stack` serves both on the caller's event loop (for async clients);
`threaded_stack` serves them on a loop in a background thread, so the synchronous
google-genai client can call them without blocking the loop that serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry

from gateway.admin import SERVICES
from gateway.app import create_app
from gateway.config import Settings, load_settings
from gateway.pipeline import Services
from tests.emulator import Emulator, EmulatorConfig, run_emulator
from tests.emulator.bodies import KEY_HEADERS


@dataclass
class Stack:
    emulator: Emulator
    url: str
    app: web.Application

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    @property
    def registry(self) -> CollectorRegistry:
        return self.services.metrics.registry

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def stack_settings(upstream_url: str, **sections: dict[str, Any]) -> Settings:
    """Test defaults: in-memory cache, everything else as shipped; override per section."""
    settings = load_settings(environ={}).replace(
        "upstream", url=upstream_url, vertex_url=upstream_url
    )
    settings = settings.replace("cache", backend="memory", secret="test-secret-0123456789")
    for section, changes in sections.items():
        settings = settings.replace(section, **changes)
    return settings


@asynccontextmanager
async def gateway_stack(
    emulator_config: EmulatorConfig | None = None, **sections: dict[str, Any]
) -> AsyncIterator[Stack]:
    async with run_emulator(emulator_config or EmulatorConfig()) as emu:
        app = create_app(stack_settings(emu.url, **sections), registry=CollectorRegistry())
        async with serve(app) as url:
            yield Stack(emu, url, app)


@asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@contextmanager
def threaded_stack(
    emulator_config: EmulatorConfig | None = None, **sections: dict[str, Any]
) -> Iterator[Stack]:
    loop = asyncio.new_event_loop()
    ready: asyncio.Future[Stack] = loop.create_future()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            async with gateway_stack(emulator_config, **sections) as stack:
                ready.set_result(stack)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(_wait(ready), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()


async def _wait(future: asyncio.Future[Stack]) -> Stack:
    return await future


@dataclass
class Answer:
    status: int
    headers: CIMultiDict[str]
    body: bytes


async def fetch(
    url: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
    session: aiohttp.ClientSession | None = None,
) -> Answer:
    """One request read to the end, bytes as sent (no decompression); the test API key
    unless `headers` are given."""
    async with contextlib.AsyncExitStack() as stack:
        if session is None:
            session = await stack.enter_async_context(
                aiohttp.ClientSession(
                    auto_decompress=False, timeout=aiohttp.ClientTimeout(total=timeout)
                )
            )
        resp = await stack.enter_async_context(
            session.request(method, url, data=body or None, headers=headers or KEY_HEADERS)
        )
        return Answer(resp.status, CIMultiDict(resp.headers), await resp.read())
