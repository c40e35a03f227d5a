"""Load generators: wrk (C, one thread) where it can express the case, aiohttp where not.

wrk drives the fixed-body cases (latency percentiles at concurrency 1, throughput at
higher concurrency). Time to first SSE event and the lane memory case need a client that
looks inside a response or holds requests open, so they use aiohttp.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

_MARK = "BENCH-RESULT "

_LUA = """\
local f = assert(io.open({body_path}, "rb"))
local body = f:read("*a")
f:close()
wrk.method = {method}
if #body > 0 then wrk.body = body end
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p99_us":%d,'
    .. '"non2xx":%d,"errors":%d}}\\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    bytes: int
    p50: float
    p99: float
    non2xx: int
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def clean(self) -> bool:
        return self.requests > 0 and self.non2xx == 0 and self.errors == 0


@dataclass(frozen=True)
class Target:
    """One fixed request for wrk: where, how, and what body (written to a file once)."""

    url: str
    method: str
    headers: Mapping[str, str]
    script: Path


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def make_target(
    work: Path, name: str, url: str, body: bytes = b"", headers: Mapping[str, str] | None = None
) -> Target:
    body_path = work / f"{name}.body"
    body_path.write_bytes(body)
    lines = [f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in (headers or {}).items()]
    method = "POST" if body else "GET"
    script = work / f"{name}.lua"
    script.write_text(
        _LUA.format(
            body_path=_lua(str(body_path)),
            method=_lua(method),
            headers="\n".join(lines),
            mark=_MARK,
        )
    )
    return Target(url, method, dict(headers or {}), script)


def _lua(text: str) -> str:
    """A Lua string literal (JSON's escapes are valid Lua for the ASCII we pass)."""
    if not text.isascii():
        raise ValueError(f"non-ASCII text in a wrk script: {text!r}")
    return json.dumps(text)


def wrk(target: Target, *, connections: int, seconds: float) -> WrkResult:
    """Run wrk with one thread (the machine has few cores; wrk must not crowd the gateway)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    argv += ["--timeout", "10s", "-s", str(target.script), target.url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(_MARK):
            raw = json.loads(line[len(_MARK) :])
            return WrkResult(
                requests=raw["requests"],
                seconds=raw["duration_us"] / 1e6,
                bytes=raw["bytes"],
                p50=raw["p50_us"] / 1e6,
                p99=raw["p99_us"] / 1e6,
                non2xx=raw["non2xx"],
                errors=raw["errors"],
            )
    raise RuntimeError(f"wrk gave no result (exit {done.returncode}): {done.stderr.strip()}")


async def first_event_seconds(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: Mapping[str, str]
) -> float:
    """Seconds from sending a streamGenerateContent?alt=sse call to its first whole event."""
    start = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as resp:
        first = await resp.content.readuntil(b"\r\n\r\n")
        elapsed = time.perf_counter() - start
        rest = await resp.read()
        if resp.status != 200 or not first.startswith(b"data: ") or not rest:
            raise RuntimeError(f"unexpected SSE answer {resp.status} from {url}")
    return elapsed


async def full_answer_seconds(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: Mapping[str, str]
) -> tuple[float, int]:
    """Seconds from sending a call to having its whole answer; and the answer's size."""
    start = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as resp:
        data = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"status {resp.status} from {url}: {data[:200]!r}")
    return time.perf_counter() - start, len(data)
