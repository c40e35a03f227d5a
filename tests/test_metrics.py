"""Known traffic through a real gateway + emulator, read back from the Prometheus registry.

Each test drives traffic whose effect on the collectors is fully determined (how many
misses, hits, coalesced calls, rejections, upstream errors) and asserts exact numbers.
Every stack has its own `CollectorRegistry`, so counts start at zero.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway import __version__
from gateway.config import MetricsSettings
from gateway.metrics import (
    CACHE_ERROR_OPS,
    CACHE_RESULTS,
    OPERATIONS,
    REJECT_REASONS,
    UPSTREAM_ERROR_KINDS,
    Metrics,
    serve_metrics,
)
from tests.emulator.bodies import KEY_HEADERS, generate_body, image_digest, reference_png
from tests.harness import Answer, Stack, fetch, gateway_stack

FLASH = "gemini-2.5-flash"
NB2 = "gemini-3.1-flash-image-preview"
UNCONFIGURED = "gemini-2.0-flash"  # the emulator knows it; metrics.models does not list it
NO_CACHE = {"backend": "off"}


async def call(
    stack: Stack,
    prompt: str,
    *images: bytes,
    model: str = FLASH,
    stream: bool = False,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
) -> Answer:
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return await fetch(
        f"{stack.url}/v1beta/models/{model}:{action}",
        generate_body(prompt, *images),
        headers={**KEY_HEADERS, **(headers or {})},
        timeout=timeout,
    )


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `condition` on the loop until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def lookups(stack: Stack) -> dict[str, float]:
    return {r: stack.metric("gemini_gateway_cache_lookups_total", result=r) for r in CACHE_RESULTS}


def idle(stack: Stack) -> bool:
    return (
        stack.metric("gemini_gateway_in_flight_requests") == 0
        and stack.metric("gemini_gateway_queue_depth") == 0
        and stack.metric("gemini_gateway_lanes_busy") == 0
    )


# --- the collectors on their own ------------------------------------------------------


def test_fixed_label_sets_exist_at_zero_from_the_start() -> None:
    metrics = Metrics(MetricsSettings().models, CollectorRegistry())
    get = metrics.registry.get_sample_value
    for reason in REJECT_REASONS:
        assert get("gemini_gateway_queue_rejections_total", {"reason": reason}) == 0
    for kind in UPSTREAM_ERROR_KINDS:
        assert get("gemini_gateway_upstream_errors_total", {"kind": kind}) == 0
    for result in CACHE_RESULTS:
        assert get("gemini_gateway_cache_lookups_total", {"result": result}) == 0
    for op in CACHE_ERROR_OPS:
        assert get("gemini_gateway_cache_errors_total", {"op": op}) == 0
    assert get("gemini_gateway_build_info", {"version": __version__}) == 1
    for gauge in ("in_flight_requests", "queue_depth", "lanes_busy", "cache_entries"):
        assert get(f"gemini_gateway_{gauge}") == 0
    assert get("gemini_gateway_cache_size_bytes") == 0
    assert get("gemini_gateway_cache_saved_bytes_total") == 0


def test_model_and_operation_fold_to_fixed_sets() -> None:
    metrics = Metrics(("gemini-3.1-flash-image*", FLASH), CollectorRegistry())
    assert metrics.model(NB2) == "gemini-3.1-flash-image*"
    assert metrics.model(FLASH) == FLASH
    assert metrics.model("gemini-2.5-flash-lite") == "other"
    assert metrics.model("tunedModels/my-secret-tune") == "other"
    assert metrics.model("") == "other"
    for i in range(2000):  # the fold memo stays bounded whatever clients send
        metrics.model(f"made-up-{i}")
    assert len(metrics._fold_cache) <= 1024
    assert metrics.operation("countTokens") == "countTokens"
    assert metrics.operation("generate") == "generate"
    assert metrics.operation("aVeryMadeUpAction") == "other"


def test_watch_lanes_reads_the_callbacks_at_collection_time() -> None:
    metrics = Metrics((), CollectorRegistry())
    state = {"depth": 3.0, "busy": 2.0}
    metrics.watch_lanes(lambda: state["depth"], lambda: state["busy"])
    assert metrics.registry.get_sample_value("gemini_gateway_queue_depth") == 3
    state.update(depth=0.0, busy=1.0)
    assert metrics.registry.get_sample_value("gemini_gateway_queue_depth") == 0
    assert metrics.registry.get_sample_value("gemini_gateway_lanes_busy") == 1


def test_latency_buckets_span_a_cache_hit_to_a_three_minute_image_call() -> None:
    metrics = Metrics((), CollectorRegistry())
    for seconds in (0.005, 180.0):
        metrics.request_duration.labels("generate", "other", "hit").observe(seconds)
    get = metrics.registry.get_sample_value
    labels = {"operation": "generate", "model": "other", "cache": "hit"}
    assert get("gemini_gateway_request_duration_seconds_bucket", {**labels, "le": "0.005"}) == 1
    assert get("gemini_gateway_request_duration_seconds_bucket", {**labels, "le": "120.0"}) == 1
    assert get("gemini_gateway_request_duration_seconds_bucket", {**labels, "le": "180.0"}) == 2


# --- known traffic through the gateway ------------------------------------------------


async def test_misses_then_hits() -> None:
    async with gateway_stack() as stack:
        prompts = [f"prompt {i}" for i in range(3)]
        misses = [await call(stack, p) for p in prompts]
        hits = [await call(stack, p) for p in prompts]
        assert [a.headers["x-gateway-cache"] for a in misses] == ["MISS"] * 3
        assert [a.headers["x-gateway-cache"] for a in hits] == ["HIT"] * 3
        assert len(stack.emulator.records) == 3

        bypass = await call(stack, prompts[0], headers={"Cache-Control": "no-store"})
        assert bypass.headers["x-gateway-cache"] == "BYPASS"
        assert lookups(stack) == {"hit": 3, "miss": 3, "bypass": 1, "coalesced": 0}
        labels = {"operation": "generate", "model": FLASH}
        for cache in ("miss", "hit"):
            assert (
                stack.metric("gemini_gateway_requests_total", code="200", cache=cache, **labels)
                == 3
            )
            assert (
                stack.metric("gemini_gateway_request_duration_seconds_count", cache=cache, **labels)
                == 3
            )
        assert (
            stack.metric("gemini_gateway_requests_total", code="200", cache="bypass", **labels) == 1
        )
        assert len(stack.emulator.records) == 4, "no-store goes upstream"
        assert stack.metric("gemini_gateway_upstream_duration_seconds_count", **labels) == 4
        saved = sum(len(a.body) for a in hits)
        assert stack.metric("gemini_gateway_cache_saved_bytes_total") == saved
        sent = sum(len(generate_body(p)) for p in prompts) * 2 + len(generate_body(prompts[0]))
        assert stack.metric("gemini_gateway_request_body_bytes_sum", operation="generate") == sent
        assert stack.metric("gemini_gateway_request_body_bytes_count", operation="generate") == 7
        answered = sum(len(a.body) for a in [*misses, *hits, bypass])
        assert stack.metric("gemini_gateway_response_body_bytes_sum", operation="generate") == (
            answered
        )
        assert stack.metric("gemini_gateway_upstream_errors_total", kind="5xx") == 0
        assert idle(stack)


async def test_identical_concurrent_calls_coalesce() -> None:
    async with gateway_stack() as stack:
        slow = {"x-emulator-latency": "1.0"}
        burst = [asyncio.create_task(call(stack, "same", headers=slow)) for _ in range(5)]
        # While the first is upstream, the other four wait on its cache-key lane.
        await until(
            lambda: (
                stack.metric("gemini_gateway_queue_depth") == 4
                and stack.metric("gemini_gateway_in_flight_requests") == 5
            )
        )
        answers = await asyncio.gather(*burst)
        assert sorted(a.headers["x-gateway-cache"] for a in answers) == ["COALESCED"] * 4 + ["MISS"]
        assert len(stack.emulator.records) == 1
        assert lookups(stack) == {"hit": 0, "miss": 1, "bypass": 0, "coalesced": 4}
        labels = {"operation": "generate", "model": FLASH, "code": "200"}
        assert stack.metric("gemini_gateway_requests_total", cache="coalesced", **labels) == 4
        assert stack.metric("gemini_gateway_requests_total", cache="miss", **labels) == 1
        assert stack.metric("gemini_gateway_cache_saved_bytes_total") == 4 * len(answers[0].body)
        # Coalescing is not serialization: no queue wait for a model outside lanes.models.
        assert stack.metric("gemini_gateway_queue_wait_seconds_count", model=FLASH) == 0
        assert idle(stack)


async def test_calls_sharing_a_reference_image_queue_and_the_wait_is_observed() -> None:
    # Cache off: lane keys are then only the image fingerprint, so exactly one lane is busy.
    async with gateway_stack(cache=NO_CACHE) as stack:
        image = reference_png("shared")
        slow = {"x-emulator-latency": "0.3"}
        tasks = [
            asyncio.create_task(call(stack, f"pose {i}", image, model=NB2, headers=slow))
            for i in range(3)
        ]
        await until(
            lambda: (
                stack.metric("gemini_gateway_queue_depth") == 2
                and stack.metric("gemini_gateway_lanes_busy") == 1
            )
        )
        answers = await asyncio.gather(*tasks)
        assert [a.status for a in answers] == [200] * 3
        assert not any(r.conflicted for r in stack.emulator.records)

        assert stack.metric("gemini_gateway_queue_wait_seconds_count", model=NB2) == 3
        # The second waited for one call and the third for two, each >= 0.3 s upstream.
        assert stack.metric("gemini_gateway_queue_wait_seconds_sum", model=NB2) >= 0.8
        assert (
            stack.metric(
                "gemini_gateway_upstream_duration_seconds_count", operation="generate", model=NB2
            )
            == 3
        )
        labels = {"operation": "generate", "model": NB2, "code": "200", "cache": "off"}
        assert stack.metric("gemini_gateway_requests_total", **labels) == 3
        assert sum(lookups(stack).values()) == 0, "no cache, no lookups"
        assert idle(stack)


@pytest.mark.parametrize(
    ("limits", "calls", "reason", "status"),
    [
        ({"max_waiting_per_lane": 1}, 3, "lane_full", 429),
        ({"max_waiting_total": 1}, 3, "queue_full", 429),
        ({"max_queued_bytes": 100}, 2, "bytes", 429),
        ({"max_wait_seconds": 0.2}, 2, "timeout", 503),
    ],
)
async def test_lane_refusals_are_counted_by_reason(
    limits: dict[str, Any], calls: int, reason: str, status: int
) -> None:
    async with gateway_stack(cache=NO_CACHE, lanes=limits) as stack:
        image = reference_png("crowded")
        slow = {"x-emulator-latency": "0.6"}
        answers = await asyncio.gather(
            *(call(stack, f"p{i}", image, model=NB2, headers=slow) for i in range(calls))
        )
        assert sorted(a.status for a in answers) == [200] * (calls - 1) + [status]
        for other in REJECT_REASONS:
            expected = 1 if other == reason else 0
            assert stack.metric("gemini_gateway_queue_rejections_total", reason=other) == expected
        labels = {"operation": "generate", "model": NB2, "cache": "off"}
        assert stack.metric("gemini_gateway_requests_total", code=str(status), **labels) == 1
        # The gateway's own refusal is not an upstream error.
        assert stack.metric("gemini_gateway_upstream_errors_total", kind="4xx") == 0
        assert stack.metric("gemini_gateway_upstream_errors_total", kind="5xx") == 0
        assert len(stack.emulator.records) == calls - 1
        assert idle(stack)


async def test_a_client_that_leaves_the_queue_is_counted_as_client_gone() -> None:
    async with gateway_stack(cache=NO_CACHE) as stack:
        image = reference_png("impatient")
        slow = {"x-emulator-latency": "0.8"}
        first = asyncio.create_task(call(stack, "first", image, model=NB2, headers=slow))
        await until(lambda: stack.metric("gemini_gateway_lanes_busy") == 1)
        with pytest.raises(asyncio.TimeoutError):
            await call(stack, "second", image, model=NB2, headers=slow, timeout=0.2)
        await until(
            lambda: stack.metric("gemini_gateway_queue_rejections_total", reason="client_gone") == 1
        )
        assert (await first).status == 200
        await until(lambda: idle(stack))
        assert len(stack.emulator.records) == 1, "the departed call never went upstream"


async def test_upstream_errors_by_kind_and_unknown_models_fold_to_other() -> None:
    async with gateway_stack() as stack:
        failing = {"x-emulator-error": "500"}
        for _ in range(2):
            assert (await call(stack, "boom", headers=failing)).status == 500
        assert (await call(stack, "x", model="no-such-model")).status == 404
        assert (await call(stack, "y", model=UNCONFIGURED)).status == 200

        assert stack.metric("gemini_gateway_upstream_errors_total", kind="5xx") == 2
        assert stack.metric("gemini_gateway_upstream_errors_total", kind="4xx") == 1
        generate = {"operation": "generate", "cache": "miss"}
        assert (
            stack.metric("gemini_gateway_requests_total", model=FLASH, code="500", **generate) == 2
        )
        assert (
            stack.metric("gemini_gateway_requests_total", model="other", code="404", **generate)
            == 1
        )
        assert (
            stack.metric("gemini_gateway_requests_total", model="other", code="200", **generate)
            == 1
        )
        # Errors are never cached: both failing calls went upstream.
        assert lookups(stack) == {"hit": 0, "miss": 4, "bypass": 0, "coalesced": 0}
        assert len(stack.emulator.records) == 4
        text = generate_latest(stack.registry).decode()
        assert "no-such-model" not in text and UNCONFIGURED not in text


async def test_unreachable_and_timed_out_upstreams_are_counted() -> None:
    async with gateway_stack(upstream={"read_timeout_seconds": 0.2}) as stack:
        answer = await call(stack, "slow", headers={"x-emulator-latency": "1"})
        assert answer.status == 504
        assert stack.metric("gemini_gateway_upstream_errors_total", kind="timeout") == 1
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with gateway_stack(upstream={"url": dead, "connect_retries": 0}) as stack:
            assert (await call(stack, "gone")).status == 502
            assert stack.metric("gemini_gateway_upstream_errors_total", kind="connect") == 1
            assert idle(stack)


async def test_stream_time_to_first_byte_is_observed_for_upstream_streams_only() -> None:
    async with gateway_stack() as stack:
        slow = {"x-emulator-latency": "0.2"}
        first = await call(stack, "story", stream=True, headers=slow)
        again = await call(stack, "story", stream=True, headers=slow)
        assert (
            first.headers["x-gateway-cache"] == "MISS" and again.headers["x-gateway-cache"] == "HIT"
        )
        assert first.body == again.body and first.body.count(b"\r\n\r\n") == 3

        assert (
            stack.metric("gemini_gateway_upstream_time_to_first_byte_seconds_count", model=FLASH)
            == 1
        )
        ttfb = stack.metric("gemini_gateway_upstream_time_to_first_byte_seconds_sum", model=FLASH)
        upstream = stack.metric(
            "gemini_gateway_upstream_duration_seconds_sum", operation="stream_generate", model=FLASH
        )
        assert 0.2 <= ttfb <= upstream
        labels = {"operation": "stream_generate", "model": FLASH, "code": "200"}
        assert stack.metric("gemini_gateway_requests_total", cache="miss", **labels) == 1
        assert stack.metric("gemini_gateway_requests_total", cache="hit", **labels) == 1
        assert stack.metric("gemini_gateway_cache_saved_bytes_total") == len(again.body)
        # Non-stream calls never observe TTFB.
        await call(stack, "plain")
        assert (
            stack.metric("gemini_gateway_upstream_time_to_first_byte_seconds_count", model=FLASH)
            == 1
        )
        assert idle(stack)


def allowed_label_values(models: tuple[str, ...]) -> dict[str, set[str] | None]:
    """Every label the gateway may export and its fixed set (None: checked by shape)."""
    return {
        "operation": set(OPERATIONS),
        "model": {*models, "other"},
        "cache": {*CACHE_RESULTS, "off"},
        "result": set(CACHE_RESULTS),
        "reason": set(REJECT_REASONS),
        "kind": set(UPSTREAM_ERROR_KINDS),
        "op": set(CACHE_ERROR_OPS),
        "version": {__version__},
        "code": None,
        "le": None,
    }


async def test_label_values_come_from_fixed_sets_and_never_carry_secrets() -> None:
    async with gateway_stack() as stack:
        image = reference_png("private")
        key = "test-key"
        secret_query = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession() as session:
            path = f"/v1beta/models/{NB2}:generateContent?key={key}"
            async with session.post(
                stack.url + path, data=generate_body("q", image), headers=secret_query
            ) as resp:
                assert resp.status == 200
            async with session.post(
                f"{stack.url}/v1beta/models/tunedModels-x:countTokens",
                data=generate_body("count"),
                headers=KEY_HEADERS,
            ) as resp:
                await resp.read()
            async with session.get(f"{stack.url}/v1beta/models", headers=KEY_HEADERS) as resp:
                assert resp.status == 200
        await call(stack, "q2", image, model=NB2, stream=True)
        await call(stack, "q2", image, model=NB2, stream=True)
        await call(stack, "bad key", headers={"x-goog-api-key": "AIza" + "s" * 35})

        text = generate_latest(stack.registry).decode()
        forbidden = [key, "AIza", image_digest(image), image_digest(image)[:8], "/v1beta", "tuned"]
        for needle in forbidden:
            assert needle not in text
        allowed = allowed_label_values(stack.services.settings.metrics.models)
        seen: set[str] = set()
        for family in text_string_to_metric_families(text):
            assert family.name.startswith("gemini_gateway_")
            for sample in family.samples:
                for name, value in sample.labels.items():
                    seen.add(name)
                    assert name in allowed, f"unexpected label {name}"
                    fixed = allowed[name]
                    if fixed is not None:
                        assert value in fixed, f"{sample.name}{{{name}={value!r}}}"
                    elif name == "code":
                        assert value.isdigit() and len(value) == 3
        assert {"operation", "model", "code", "cache", "result", "reason", "kind"} <= seen


async def test_invented_actions_do_not_create_new_operation_labels() -> None:
    async with gateway_stack() as stack, aiohttp.ClientSession() as session:
        for action in ("inventedActionOne", "inventedActionTwo"):
            url = f"{stack.url}/v1beta/models/{FLASH}:{action}"
            async with session.post(url, data=b"{}", headers=KEY_HEADERS) as resp:
                await resp.read()
        text = generate_latest(stack.registry).decode()
        assert "inventedAction" not in text


async def test_in_flight_counts_requests_being_handled() -> None:
    async with gateway_stack(cache=NO_CACHE) as stack:
        slow = {"x-emulator-latency": "0.5"}
        tasks = [asyncio.create_task(call(stack, f"p{i}", headers=slow)) for i in range(4)]
        await until(lambda: stack.metric("gemini_gateway_in_flight_requests") == 4)
        await asyncio.gather(*tasks)
        assert stack.metric("gemini_gateway_in_flight_requests") == 0


# --- the endpoints --------------------------------------------------------------------


async def test_metrics_endpoint_serves_the_registry_and_is_not_itself_counted() -> None:
    async with gateway_stack(metrics={"path": "/prom"}) as stack:
        await call(stack, "counted")
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.get(f"{stack.url}/prom") as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Type"].startswith("text/plain; version=")
                    text = await resp.text()
        assert f'gemini_gateway_build_info{{version="{__version__}"}} 1.0' in text
        families = {f.name for f in text_string_to_metric_families(text)}
        for name in ("requests", "request_duration_seconds", "queue_depth", "cache_lookups"):
            assert f"gemini_gateway_{name}" in families
        total = sum(
            s.value
            for f in text_string_to_metric_families(text)
            if f.name == "gemini_gateway_requests"
            for s in f.samples
            if s.name.endswith("_total")
        )
        assert total == 1, "scrapes are not requests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_serve_metrics_on_a_separate_port() -> None:
    metrics = Metrics(MetricsSettings().models, CollectorRegistry())
    metrics.requests.labels("generate", FLASH, "200", "hit").inc()
    off = await serve_metrics(metrics.registry, "127.0.0.1", 0)
    assert off.url is None
    await off.close()

    port = free_port()
    server = await serve_metrics(metrics.registry, "127.0.0.1", port, "/metrics")
    try:
        assert server.url == f"http://127.0.0.1:{port}/metrics"
        with pytest.raises(OSError):  # a taken port fails at start, not silently
            await serve_metrics(metrics.registry, "127.0.0.1", port)
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url) as resp:
                assert resp.status == 200
                assert "gemini_gateway_requests_total" in await resp.text()
            async with session.get(f"http://127.0.0.1:{port}/v1beta/models") as resp:
                assert resp.status == 404, "only the metrics path is served there"
    finally:
        await server.close()
        await server.close()  # idempotent
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session, session.get(server.url):
            pass
