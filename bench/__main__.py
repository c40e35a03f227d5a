"""`python -m bench [--quick] [--only CASE[,CASE]]`: one table, direct vs through the gateway.

Starts the emulator (latency 0), gateways and nginx on loopback, runs each case on both
sides in alternation, prints one table (figure, target, pass/fail) and writes it to
bench/results.md. Every child process is stopped on exit, including on Ctrl-C / SIGTERM.
Exit status: 0 when every case ran, 1 when one could not run (or, with --strict, missed
its target), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from bench.cases import CASES
from bench.env import Env, Plan
from bench.load import wrk_available
from bench.procs import ROOT, Procs
from bench.report import Row, error_row, notes, table, write_results

RESULTS = ROOT / "bench" / "results.md"
WORK = ROOT / "bench" / ".work"
NEEDS_WRK = frozenset({"small-c1", "small-c64", "cache-hit", "cache-hit-disk"})
NEEDS_NGINX = frozenset({"cache-hit", "cache-hit-disk"})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short rounds (smoke test)")
    parser.add_argument("--only", help="comma-separated cases: " + ", ".join(CASES))
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the table")
    parser.add_argument(
        "--loop",
        choices=("default", "uvloop", "asyncio"),
        default="default",
        help="gateway event loop; default is what `serve` picks (uvloop when installed)",
    )
    parser.add_argument("--log-level", default="info", help="gateway server.log_level")
    parser.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for gateways (e.g. MALLOC_ARENA_MAX=2); repeatable",
    )
    parser.add_argument("--keep-work", action="store_true", help="keep logs in bench/.work")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser


def _select(parser: argparse.ArgumentParser, only: str | None) -> list[str]:
    if not only:
        return list(CASES)
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown or not names:
        parser.error(f"unknown case(s) {', '.join(unknown)!r}; known: {', '.join(CASES)}")
    return names


def _missing_tools(names: Sequence[str]) -> list[str]:
    missing = []
    if NEEDS_WRK.intersection(names) and not wrk_available():
        missing.append("wrk (apt-get install -y wrk)")
    if NEEDS_NGINX.intersection(names) and not (
        shutil.which("nginx") or Path("/usr/sbin/nginx").exists()
    ):
        missing.append("nginx (apt-get install -y nginx)")
    return missing


def _loop_name(loop: str) -> str:
    if loop != "default":
        return loop
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through Procs.__exit__, which stops children


def run(args: argparse.Namespace, names: Sequence[str]) -> list[Row]:
    work = WORK / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    rows: list[Row] = []
    try:
        with Procs(work, loop=args.loop, log_level=args.log_level) as procs:
            procs.gateway_env = dict(item.split("=", 1) for item in args.gateway_env)
            env = Env(procs, Plan.make(args.quick))
            for name in names:
                print(f"bench: {name} ...", file=sys.stderr, flush=True)
                started = time.monotonic()
                try:
                    rows += CASES[name](env)
                except Exception as exc:
                    rows.append(error_row(name, exc))
                took = time.monotonic() - started
                print(f"bench: {name} done in {took:.1f} s", file=sys.stderr, flush=True)
    finally:
        if args.keep_work:
            print(f"bench: logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
            with contextlib.suppress(OSError):
                WORK.rmdir()  # only when no other run's files are left in it
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    names = _select(parser, args.only)
    missing = _missing_tools(names)
    if missing:
        print("bench: missing " + ", ".join(missing), file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    rows = run(args, names)
    mode = "quick" if args.quick else "full"
    settings = f"gateway loop {_loop_name(args.loop)}, log level {args.log_level}, {mode} run"
    if args.gateway_env:
        settings += ", gateway env " + " ".join(args.gateway_env)
    print(table(rows))
    extra = notes(rows)
    if extra:
        print("\n" + extra)
    write_results(args.results, rows, settings)
    print(f"\n({settings}; written to {args.results})")
    if any(row.figure == "error" for row in rows):
        return 1
    return 1 if args.strict and any(row.passed is False for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
