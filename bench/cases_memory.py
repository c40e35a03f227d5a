"""Gateway memory while calls wait in one lane, and whether it comes back afterwards.

One round: the first call holds the lane (the emulator is told to take a few seconds over
it), the other calls, all carrying the same 7 MB reference image, queue behind it. Once
the gateway's lanes view shows them all waiting, the gateway's RSS is sampled; when the
first call ends, the rest run one by one. (Cancelling the first call would not free the
lane early: by design a call keeps its lanes until the upstream answer is complete.)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bench.cases_http import run_async
from bench.env import JSON_HEADERS, Env
from bench.procs import Proc, rss_bytes
from bench.report import Row, mib
from tests.emulator.bodies import generate_body, reference_png

LANE_MODEL = "gemini-3.1-flash-image-preview"
IMAGE_BYTES = 7 * 1024 * 1024
SECONDS_PER_CALL = 0.15  # generous time to upload and queue one call (~10 MB)
SETTLE_SECONDS = 1.0


def _bodies(count: int, image: bytes, round_no: int) -> list[bytes]:
    return [
        generate_body(f"Round {round_no}, pose {i}: same character, new pose.", image)
        for i in range(count)
    ]


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, hold: float = 0) -> int:
    headers = dict(JSON_HEADERS)
    if hold:
        headers["x-emulator-latency"] = f"{hold:.1f}"
    async with session.post(url, data=body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def _lanes(session: aiohttp.ClientSession, gw: Proc) -> dict[str, Any]:
    async with session.get(gw.url + "/_gateway/lanes") as resp:
        data: dict[str, Any] = await resp.json()
        return data


async def _until(
    session: aiohttp.ClientSession, gw: Proc, key: str, value: int, deadline: float
) -> int:
    """Poll the lanes view until `key` reaches `value`; the peak RSS seen meanwhile."""
    peak = rss_bytes(gw.pid)
    while (await _lanes(session, gw))[key] < value:
        peak = max(peak, rss_bytes(gw.pid))
        if time.monotonic() > deadline:
            raise RuntimeError(f"lanes never reached {key}={value} while the first call ran")
        await asyncio.sleep(0.02)
    for _ in range(10):  # a little longer, for buffers still being released
        peak = max(peak, rss_bytes(gw.pid))
        await asyncio.sleep(0.03)
    return peak


async def _round(gw: Proc, bodies: list[bytes]) -> tuple[int, int]:
    """(peak RSS with every call held, RSS once all are done and settled)."""
    url = gw.url + f"/v1beta/models/{LANE_MODEL}:generateContent"
    timeout = aiohttp.ClientTimeout(total=600)
    connector = aiohttp.TCPConnector(limit=0)
    hold = 2.0 + SECONDS_PER_CALL * len(bodies)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.monotonic() + hold
        first = asyncio.create_task(_post(session, url, bodies[0], hold=hold))
        await _until(session, gw, "busy_lanes", 1, deadline)
        rest = [asyncio.create_task(_post(session, url, b)) for b in bodies[1:]]
        try:
            peak = await _until(session, gw, "waiting", len(rest), deadline)
        finally:
            statuses = await asyncio.gather(first, *rest)
    if any(status != 200 for status in statuses):
        raise RuntimeError(f"queued calls answered {sorted(set(statuses))}")
    await asyncio.sleep(SETTLE_SECONDS)
    return peak, rss_bytes(gw.pid)


async def _warm_up(gw: Proc) -> None:
    url = gw.url + f"/v1beta/models/{LANE_MODEL}:generateContent"
    async with aiohttp.ClientSession() as session:
        for i in range(3):
            await _post(session, url, generate_body(f"warm-up {i}", reference_png("w")))
    await asyncio.sleep(SETTLE_SECONDS)


def lane_rss(env: Env) -> list[Row]:
    plan = env.plan
    gw = env.fresh_gateway("gw-lanes", env.small_emulator())
    try:
        image = reference_png("lane", IMAGE_BYTES)
        run_async(_warm_up(gw))
        baseline = rss_bytes(gw.pid)
        ratios: list[float] = []
        held = after = 0
        afters: list[str] = []
        for round_no in range(plan.lane_rounds):
            bodies = _bodies(plan.lane_calls, image, round_no)
            held = sum(map(len, bodies))
            peak, after = run_async(_round(gw, bodies))
            del bodies
            ratios.append((peak - baseline) / held)
            afters.append(mib(after))
    finally:
        env.stop(gw)
    worst = max(ratios)
    settle = (after - baseline) / baseline
    rounds = len(ratios)
    return [
        Row(
            "lane-rss",
            f"RSS growth / bytes held ({plan.lane_calls} calls, worst of {rounds})",
            f"{mib(held)} held",
            f"+{mib(worst * held)} RSS",
            f"{worst:.2f}",
            "<= 1.5",
            worst <= 1.5,
            f"{mib(IMAGE_BYTES)} image per call, model {LANE_MODEL}, cache off; "
            f"baseline {mib(baseline)} after 3 small calls",
        ),
        Row(
            "lane-rss",
            f"RSS after {rounds} rounds vs baseline",
            mib(baseline),
            mib(after),
            f"{settle * 100:+.1f} %",
            "<= +10 %",
            settle <= 0.10,
            "RSS after each round: " + ", ".join(afters),
        ),
    ]
