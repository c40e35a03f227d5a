"""`gemini-gateway serve | check-config | cache stats | cache purge`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence

import prometheus_client
from aiohttp import web

from gateway import __version__
from gateway.config import ConfigError, Settings, describe, load_settings

CONFIG_ENV = "GEMINI_GATEWAY_CONFIG"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gemini-gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    _config_arg(serve)
    serve.add_argument("--host", help="listen address (server.host)")
    serve.add_argument("--port", type=int, help="listen port (server.port)")
    serve.add_argument("--log-format", choices=("json", "console"), help="server.log_format")
    serve.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), help="server.log_level"
    )
    check = sub.add_parser("check-config", help="print the effective settings, secrets masked")
    _config_arg(check)
    cache = sub.add_parser("cache", help="inspect or purge the response cache")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    _config_arg(cache_sub.add_parser("stats", help="entries and bytes in the cache"))
    purge = cache_sub.add_parser("purge", help="remove cache entries")
    _config_arg(purge)
    purge.add_argument("--model", help="only entries for models matching this glob")
    purge.add_argument("--older-than", help="only entries older than this (90s, 30m, 12h, 7d)")
    purge.add_argument("--all", action="store_true", help="remove every entry")
    return parser


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get(CONFIG_ENV),
        help=f"TOML settings file (default: ${CONFIG_ENV}, else built-in defaults)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        if args.command == "serve":
            return serve(settings, args)
    except ConfigError as exc:
        print(f"gemini-gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(json.dumps(describe(settings), indent=2))
        return 0
    return asyncio.run(cache_command(settings, args))


async def cache_command(settings: Settings, args: argparse.Namespace) -> int:
    """Stats and purge work on the disk cache directly: the gateway need not be running."""
    from gateway.admin import parse_duration
    from gateway.cache import CacheError, PurgeFilter, open_store
    from gateway.errors import GatewayError

    if settings.cache.backend != "disk":
        print(
            f"gemini-gateway: cache.backend is {settings.cache.backend!r}; only the disk "
            "cache outlives the process (use /_gateway/cache on a running gateway)",
            file=sys.stderr,
        )
        return 2
    try:
        store = open_store(
            "disk",
            dir=settings.cache.dir,
            max_bytes=settings.cache.max_bytes,
            ttl_seconds=settings.cache.ttl_seconds,
        )
        try:
            if args.cache_command == "stats":
                stats = await store.stats()
                print(
                    json.dumps(
                        {
                            "backend": "disk",
                            "dir": settings.cache.dir,
                            "entries": stats.entries,
                            "size_bytes": stats.size_bytes,
                            "max_bytes": stats.max_bytes,
                        },
                        indent=2,
                    )
                )
                return 0
            if not (args.model or args.older_than or args.all):
                print("gemini-gateway: purge needs --model, --older-than or --all", file=sys.stderr)
                return 2
            older = parse_duration(args.older_than) if args.older_than else None
            removed = await store.purge(
                PurgeFilter(model_glob=args.model, older_than_seconds=older)
            )
            print(json.dumps({"removed": removed}))
            return 0
        finally:
            await store.close()
    except (CacheError, GatewayError) as exc:
        print(f"gemini-gateway: {exc}", file=sys.stderr)
        return 1


def serve(settings: Settings, args: argparse.Namespace) -> int:
    from gateway import heap, logs
    from gateway.app import create_app

    server = {
        key: value
        for key, value in (
            ("host", args.host),
            ("port", args.port),
            ("log_format", args.log_format),
            ("log_level", args.log_level),
        )
        if value is not None
    }
    if server:
        settings = settings.replace("server", **server)
    logs.configure(settings.server.log_format, settings.server.log_level)
    heap.tune()
    # `*_created` series double every counter and only clutter Grafana.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    loop_factory = _uvloop_factory()
    logs.get_logger().info(
        "starting",
        version=__version__,
        host=settings.server.host,
        port=settings.server.port,
        upstream=settings.upstream.url,
        cache=settings.cache.backend,
        event_loop="uvloop" if loop_factory else "asyncio",
    )
    web.run_app(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        print=None,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=settings.server.shutdown_timeout_seconds,
        loop=loop_factory() if loop_factory else None,
    )
    return 0


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (the `fast` extra): it cuts the gateway's own latency."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
