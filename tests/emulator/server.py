"""Serving the emulator on loopback: an API host plus a separate upload host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from .app import create_emulator, create_upload_app
from .config import EmulatorConfig
from .records import Record
from .state import STATE, EmulatorState


@dataclass
class Emulator:
    """A running emulator: where it listens and what it has seen."""

    url: str
    upload_url: str
    state: EmulatorState

    @property
    def config(self) -> EmulatorConfig:
        """The live config (changes apply to the next request)."""
        return self.state.config

    @property
    def records(self) -> list[Record]:
        """Every request so far, in arrival order (both hosts)."""
        return self.state.records

    @property
    def uploads(self) -> dict[str, bytes]:
        """Bytes received per finished upload, by file name ("files/abc")."""
        return self.state.uploads()


async def _serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"


@asynccontextmanager
async def run_emulator(
    config: EmulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    upload_port: int = 0,
) -> AsyncIterator[Emulator]:
    """Serve the API host and the upload host (port 0: any free port) until exit."""
    app = create_emulator(config or EmulatorConfig())
    state = app[STATE]
    upload_runner, upload_url = await _serve(create_upload_app(state), host, upload_port)
    state.upload_base = upload_url
    try:
        api_runner, url = await _serve(app, host, port)
        try:
            yield Emulator(url=url, upload_url=upload_url, state=state)
        finally:
            await api_runner.cleanup()
    finally:
        await upload_runner.cleanup()
