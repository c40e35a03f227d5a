"""`python -m tests.emulator`: a standalone emulator for benchmarks and manual poking."""

from __future__ import annotations

import argparse
import asyncio
import signal

from .config import EmulatorConfig
from .server import run_emulator


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--upload-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per call")
    parser.add_argument("--answer-image-bytes", type=int, default=0)
    parser.add_argument("--stream-events", type=int, default=3)
    parser.add_argument("--stream-event-delay", type=float, default=0.0)
    parser.add_argument(
        "--keep-records", action="store_true", help="keep every request (grows without bound)"
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    config = EmulatorConfig(
        latency=args.latency,
        answer_image_bytes=args.answer_image_bytes,
        stream_events=args.stream_events,
        stream_event_delay=args.stream_event_delay,
        keep_records=args.keep_records,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with run_emulator(
        config, host=args.host, port=args.port, upload_port=args.upload_port
    ) as emu:
        print(f"emulator listening on {emu.url} (uploads on {emu.upload_url})", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Run until SIGINT or SIGTERM."""
    asyncio.run(_serve(_parse(argv)))


if __name__ == "__main__":
    main()
