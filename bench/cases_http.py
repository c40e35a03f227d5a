"""Latency and throughput cases: each runs direct and through the gateway, alternating.

wrk rounds alternate which side goes first, so slow drift (CPU frequency, page cache)
falls on both sides alike; aiohttp cases interleave single requests for the same reason.
Figures are medians over rounds (or over requests for the aiohttp cases).
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import aiohttp

from bench.env import JSON_HEADERS, SSE_EVENTS, Env
from bench.load import (
    Target,
    WrkResult,
    first_event_seconds,
    full_answer_seconds,
    make_target,
    wrk,
)
from bench.report import Row, median, mib, ms, rate, signed_ms
from tests.emulator.bodies import generate_body, reference_png

MODEL_PATH = "/v1beta/models/gemini-2.5-flash"
SMALL_PROMPT = "Describe a teal-haired character in one line."
T = TypeVar("T")


def _alternate(
    env: Env, direct: Target, via: Target, connections: int
) -> tuple[list[WrkResult], list[WrkResult]]:
    plan = env.plan
    for target in (direct, via):
        wrk(target, connections=connections, seconds=plan.warmup_seconds)
    sides: tuple[list[WrkResult], list[WrkResult]] = ([], [])
    for i in range(plan.rounds):
        order = ((0, direct), (1, via)) if i % 2 == 0 else ((1, via), (0, direct))
        for side, target in order:
            result = wrk(target, connections=connections, seconds=plan.round_seconds)
            if not result.clean:
                raise RuntimeError(
                    f"{target.url}: {result.non2xx} non-2xx, {result.errors} socket errors"
                )
            sides[side].append(result)
    return sides


def _small_targets(env: Env) -> tuple[Target, Target]:
    emu = env.small_emulator()
    gw = env.gateway("gw-off", emu)
    body = generate_body(SMALL_PROMPT)
    path = MODEL_PATH + ":generateContent"
    direct = make_target(env.work, "small-direct", emu.url + path, body, JSON_HEADERS)
    via = make_target(env.work, "small-gateway", gw.url + path, body, JSON_HEADERS)
    return direct, via


def small_c1(env: Env) -> list[Row]:
    direct, via = _small_targets(env)
    d, g = _alternate(env, direct, via, connections=1)
    count = f"{sum(r.requests for r in g)} gateway requests in {len(g)} rounds"
    rows = []
    for name, pick, limit in (("p50", "p50", 0.0005), ("p99", "p99", 0.002)):
        added = median([getattr(b, pick) - getattr(a, pick) for a, b in zip(d, g, strict=True)])
        rows.append(
            Row(
                "small-c1",
                f"{name} latency, added",
                ms(median([getattr(r, pick) for r in d])),
                ms(median([getattr(r, pick) for r in g])),
                signed_ms(added),
                f"<= +{limit * 1000:g} ms",
                added <= limit,
                count if name == "p50" else "",
            )
        )
    return rows


def small_c64(env: Env) -> list[Row]:
    direct, via = _small_targets(env)
    d, g = _alternate(env, direct, via, connections=64)
    ratio = median([b.rate / a.rate for a, b in zip(d, g, strict=True)])
    note = (
        "emulator (Python, one process) is the ceiling on both sides; through the gateway "
        "it shares the 2 cores with the gateway and wrk, so this is a CPU-cost ratio"
    )
    return [
        Row(
            "small-c64",
            "throughput gateway/direct",
            rate(median([r.rate for r in d])),
            rate(median([r.rate for r in g])),
            f"{ratio:.2f}",
            ">= 0.5",
            ratio >= 0.5,
            note,
        )
    ]


Sample = Callable[[aiohttp.ClientSession, str], Awaitable[float]]


async def _interleave(
    urls: tuple[str, str], sample: Sample, warmup: int, pairs: int
) -> tuple[list[float], list[float]]:
    """Alternate single requests between the two sides, each on its own kept-alive session."""
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) for _ in urls]
    sides: tuple[list[float], list[float]] = ([], [])
    try:
        for i in range(warmup + pairs):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            for side in order:
                seconds = await sample(sessions[side], urls[side])
                if i >= warmup:
                    sides[side].append(seconds)
    finally:
        for session in sessions:
            await session.close()
    return sides


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def sse_ttfb(env: Env) -> list[Row]:
    emu = env.small_emulator()
    gw = env.gateway("gw-off", emu)
    body = generate_body(SMALL_PROMPT)
    path = MODEL_PATH + ":streamGenerateContent?alt=sse"

    async def sample(session: aiohttp.ClientSession, url: str) -> float:
        return await first_event_seconds(session, url, body, JSON_HEADERS)

    pairs = env.plan.sse_pairs
    d, g = run_async(_interleave((emu.url + path, gw.url + path), sample, 20, pairs))
    added = median(g) - median(d)
    return [
        Row(
            "sse-ttfb",
            f"time to first event ({SSE_EVENTS} events), added",
            ms(median(d)),
            ms(median(g)),
            signed_ms(added),
            "<= +1 ms",
            added <= 0.001,
            f"median of {pairs} interleaved requests per side (aiohttp client)",
        )
    ]


def big_body() -> bytes:
    """About 20 MB: three distinct 5 MB inline images (base64) and a prompt."""
    images = [reference_png(f"big-{i}", 5_000_000) for i in range(3)]
    return generate_body("Put these three characters in one scene.", *images)


def big_20mb(env: Env) -> list[Row]:
    emu = env.big_emulator()
    gw = env.gateway("gw-off-big", emu)
    body = big_body()
    path = MODEL_PATH + ":generateContent"
    sizes: list[int] = []

    async def sample(session: aiohttp.ClientSession, url: str) -> float:
        seconds, size = await full_answer_seconds(session, url, body, JSON_HEADERS)
        sizes.append(size)
        return seconds

    pairs = env.plan.big_pairs
    d, g = run_async(_interleave((emu.url + path, gw.url + path), sample, 2, pairs))
    added = (median(g) - median(d)) / median(d)
    return [
        Row(
            "big-20mb",
            "latency, added",
            ms(median(d)),
            ms(median(g)),
            f"{added * 100:+.1f} %",
            "<= +10 %",
            added <= 0.10,
            f"{mib(len(body))} request, {mib(max(sizes))} answer, {pairs} pairs",
        )
    ]


def _post(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[bytes, str]:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    with urllib.request.urlopen(request, timeout=30) as resp:
        return resp.read(), resp.headers.get("x-gateway-cache", "")


def cache_hit(env: Env, backend: str = "memory") -> list[Row]:
    emu = env.big_emulator()
    gw = env.gateway(f"gw-{backend}-big", emu, cache=backend)
    body = generate_body(SMALL_PROMPT)
    url = gw.url + MODEL_PATH + ":generateContent"
    answer, state = _post(url, body, JSON_HEADERS)  # the miss that fills the cache
    for _ in range(40):  # the entry may be stored just after the answer went out
        if state == "HIT":
            break
        time.sleep(0.05)
        answer, state = _post(url, body, JSON_HEADERS)
    else:
        raise RuntimeError(f"expected a cache hit, got x-gateway-cache: {state!r}")
    root = env.work / "nginx-root"
    root.mkdir(exist_ok=True)
    (root / "answer.json").write_bytes(answer)
    nginx = env.procs.nginx("nginx", root, "answer.json")
    try:
        direct = make_target(env.work, "nginx-answer", nginx.url + "/answer.json")
        via = make_target(env.work, f"hit-{backend}", url, body, JSON_HEADERS)
        d, g = _alternate(env, direct, via, connections=16)
    finally:
        env.stop(nginx)
    ratio = median([b.rate / a.rate for a, b in zip(d, g, strict=True)])
    case = "cache-hit" if backend == "memory" else f"cache-hit-{backend}"
    return [
        Row(
            case,
            f"throughput gateway ({backend} cache)/nginx",
            rate(median([r.rate for r in d])),
            rate(median([r.rate for r in g])),
            f"{ratio:.2f}",
            ">= 0.9",
            ratio >= 0.9,
            f"{mib(len(answer))} answer; nginx: 1 worker, sendfile, same bytes from a file",
        )
    ]
