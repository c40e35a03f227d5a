"""The case list, in run order, and the adapter for `bench/fingerprint.py`."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from bench.cases_http import big_20mb, cache_hit, small_c1, small_c64, sse_ttfb
from bench.cases_memory import lane_rss
from bench.env import Env
from bench.report import Row

Case = Callable[[Env], list[Row]]


def fingerprint(env: Env) -> list[Row]:
    """Rows from the colleague-owned `bench.fingerprint` (parse of a ~28 MB body vs sha256)."""
    try:
        module = importlib.import_module("bench.fingerprint")
        run: Callable[..., list[dict[str, Any]]] = module.run
    except (ImportError, AttributeError) as exc:
        reason = f"bench.fingerprint not available ({type(exc).__name__}: {exc})"
        return [
            Row(
                "fingerprint",
                "parse time / sha256",
                "-",
                "-",
                "not available",
                "<= 2.5",
                None,
                reason,
            )
        ]
    kwargs = (
        {"runs": env.plan.fingerprint_runs} if "runs" in inspect.signature(run).parameters else {}
    )
    return [_fingerprint_row(raw) for raw in run(**kwargs)]


def _fingerprint_row(raw: dict[str, Any]) -> Row:
    target = raw.get("target")
    passed = raw.get("pass")
    body = f"{raw['body_mb']} MB body" if "body_mb" in raw else ""
    return Row(
        "fingerprint",
        f"parse / sha256: {raw.get('case', '?')}",
        f"{raw['sha256_ms']} ms" if "sha256_ms" in raw else "-",
        f"{raw['parse_ms']} ms" if "parse_ms" in raw else "-",
        f"{float(raw['ratio']):.2f}",
        f"<= {target}" if target is not None else "-",
        passed if isinstance(passed, bool) else None,
        body + ("; best of runs, in the bench process" if body else ""),
    )


CASES: dict[str, Case] = {
    "small-c1": small_c1,
    "small-c64": small_c64,
    "sse-ttfb": sse_ttfb,
    "big-20mb": big_20mb,
    "lane-rss": lane_rss,
    "fingerprint": fingerprint,
    "cache-hit": cache_hit,
    "cache-hit-disk": lambda env: cache_hit(env, "disk"),
}
