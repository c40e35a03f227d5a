"""The gateway forwards Gemini calls byte for byte, and makes its own errors in Google's shape."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from multidict import CIMultiDict
from structlog.testing import capture_logs

from tests.emulator import EmulatorConfig
from tests.emulator.bodies import KEY_HEADERS, generate_body, reference_png
from tests.harness import Stack, fetch, gateway_stack, serve

MODEL = "gemini-2.5-flash"
NB2 = "gemini-3.1-flash-image-preview"


async def raw(
    url: str,
    path: str,
    body: bytes = b"",
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> tuple[int, CIMultiDict[str], bytes]:
    answer = await fetch(url + path, body, method=method, headers=headers)
    return answer.status, answer.headers, answer.body


async def both(
    stack: Stack,
    path: str,
    body: bytes = b"",
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
    d_status, _, d_body = await raw(stack.emulator.url, path, body, method, headers)
    g_status, _, g_body = await raw(stack.url, path, body, method, headers)
    return (d_status, d_body), (g_status, g_body)


async def test_sse_bytes_and_framing_pass_unchanged() -> None:
    async with gateway_stack(cache={"backend": "off"}) as stack:
        path = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
        direct, through = await both(stack, path, generate_body("hello"))
        assert through[0] == 200
        strip = [json.loads(e.removeprefix(b"data: ")) for e in through[1].split(b"\r\n\r\n") if e]
        assert through[1].count(b"\r\n\r\n") == stack.emulator.config.stream_events
        assert [c.pop("responseId", None) and c for c in strip]
        assert through[1].replace(b" ", b"")[:40] == direct[1].replace(b" ", b"")[:40]


async def test_json_array_stream_and_query_and_body_bytes() -> None:
    async with gateway_stack(cache={"backend": "off"}) as stack:
        body = generate_body("hi", reference_png("a"), style="snake")
        status, _, data = await raw(stack.url, f"/v1/models/{MODEL}:streamGenerateContent", body)
        assert status == 200 and data.startswith(b"[") and data.rstrip().endswith(b"]")
        assert len(json.loads(data)) == stack.emulator.config.stream_events
        seen = stack.emulator.records[-1]
        assert seen.body == body, "the request body must reach the upstream as the original bytes"
        key_only = {"Content-Type": "application/json"}
        status, _, _ = await raw(
            stack.url,
            f"/v1beta/models/{MODEL}:generateContent?key=test-key",
            body,
            headers=key_only,
        )
        assert status == 200
        assert stack.emulator.records[-1].query == {"key": "test-key"}


async def test_end_to_end_headers_pass_and_hop_by_hop_do_not() -> None:
    async with gateway_stack(cache={"backend": "off"}) as stack:
        headers = {
            **KEY_HEADERS,
            "x-custom": "kept",
            "Connection": "keep-alive, x-drop",
            "x-drop": "dropped",
            "Keep-Alive": "timeout=5",
            "x-request-id": "rid-1",
        }
        status, resp_headers, _ = await raw(
            stack.url,
            f"/v1beta/models/{MODEL}:generateContent",
            generate_body("x"),
            headers=headers,
        )
        assert status == 200
        seen = stack.emulator.records[-1].headers
        assert seen["x-custom"] == "kept" and seen["x-request-id"] == "rid-1"
        assert "x-drop" not in seen and "Keep-Alive" not in seen
        assert resp_headers["x-request-id"] == "rid-1"
        _, generated, _ = await raw(stack.url, "/v1beta/models", method="GET")
        assert len(generated["x-request-id"]) == 32


async def test_vertex_paths_go_to_the_vertex_upstream() -> None:
    async with gateway_stack(cache={"backend": "off"}) as stack:
        bearer = {"Authorization": "Bearer test-token", "Content-Type": "application/json"}
        path = (
            f"/v1/projects/p/locations/us-central1/publishers/google/models/{MODEL}:generateContent"
        )
        direct, through = await both(stack, path, generate_body("v"), headers=bearer)
        assert direct[0] == through[0] == 200
        express = f"/v1beta1/publishers/google/models/{MODEL}:generateContent"
        direct, through = await both(stack, express, generate_body("v"))
        assert direct[0] == through[0] == 200


async def test_google_errors_pass_through_unchanged() -> None:
    async with gateway_stack(cache={"backend": "off"}) as stack:
        path = "/v1beta/models/no-such-model:generateContent"
        direct, through = await both(stack, path, generate_body("x"))
        assert direct == through and through[0] == 404
        bad = {**KEY_HEADERS, "x-emulator-error": "429"}
        direct, through = await both(
            stack, f"/v1beta/models/{MODEL}:generateContent", generate_body("x"), headers=bad
        )
        assert direct == through and through[0] == 429


def google_error(data: bytes) -> dict[str, object]:
    error = json.loads(data)["error"]
    assert set(error) >= {"code", "message", "status"}
    return dict(error)


async def test_unreachable_upstream_is_a_502_in_googles_shape() -> None:
    async with gateway_stack(
        cache={"backend": "off"}, upstream={"url": "http://127.0.0.1:9", "connect_retries": 2}
    ) as stack:
        with capture_logs() as logs:
            status, headers, data = await raw(
                stack.url, f"/v1beta/models/{MODEL}:generateContent", generate_body("x")
            )
        assert status == 502 and "Retry-After" in headers
        error = google_error(data)
        assert error["status"] == "UNAVAILABLE" and "could not reach" in str(error["message"])
        assert stack.metric("gemini_gateway_upstream_errors_total", kind="connect") == 1
        assert [e["retries"] for e in logs if e["event"] == "request"] == [2]


async def test_upstream_timeout_is_a_504() -> None:
    async with gateway_stack(
        cache={"backend": "off"}, upstream={"read_timeout_seconds": 0.2}
    ) as stack:
        slow = {**KEY_HEADERS, "x-emulator-latency": "2"}
        status, _, data = await raw(
            stack.url, f"/v1beta/models/{MODEL}:generateContent", generate_body("x"), headers=slow
        )
        assert status == 504 and google_error(data)["status"] == "DEADLINE_EXCEEDED"


async def test_body_over_the_limit_is_a_413_and_never_reaches_upstream() -> None:
    async with gateway_stack(server={"max_body_bytes": 1000}) as stack:
        status, _, data = await raw(
            stack.url,
            f"/v1beta/models/{NB2}:generateContent",
            generate_body("x", reference_png("big", size=2000)),
        )
        assert status == 413 and "max_body_bytes" in str(google_error(data)["message"])
        assert not stack.emulator.records
        assert stack.services.lanes.snapshot().waiting == 0


async def test_health_and_readiness() -> None:
    async with gateway_stack() as stack:
        assert (await raw(stack.url, "/_gateway/healthz", method="GET"))[0] == 200
        assert (await raw(stack.url, "/_gateway/readyz", method="GET"))[0] == 200
        assert not stack.emulator.records, "gateway routes never reach the upstream"


async def test_access_log_has_the_fields_and_no_secrets() -> None:
    async with gateway_stack(cache={"backend": "off"}) as stack:
        secret_key = "AIza" + "k" * 35
        with capture_logs() as logs:
            await raw(
                stack.url,
                f"/v1beta/models/{MODEL}:generateContent?key={secret_key}",
                generate_body("x", reference_png("log")),
                headers={"Content-Type": "application/json"},
            )
        lines = [entry for entry in logs if entry["event"] == "request"]
        assert len(lines) == 1
        line = lines[0]
        assert line["operation"] == "generate" and line["model"] == MODEL
        assert line["status"] == 400 and line["bytes_in"] > 0 and line["duration_ms"] >= 0
        assert secret_key not in repr(logs)


async def test_many_concurrent_calls_share_one_pool() -> None:
    async with gateway_stack(cache={"backend": "off"}) as stack:
        stack.emulator.config.latency = 0.2
        path = f"/v1beta/models/{MODEL}:generateContent"
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(
            *(raw(stack.url, path, generate_body(f"p{i}")) for i in range(100))
        )
        elapsed = asyncio.get_running_loop().time() - started
        assert all(status == 200 for status, _, _ in results)
        assert elapsed < 5, "100 independent calls must run in parallel, not one by one"


@pytest.mark.parametrize("content_length", [True, False])
async def test_passthrough_streams_request_bodies(content_length: bool) -> None:
    async with gateway_stack() as stack:
        payload = generate_body("count me")

        async def chunks():  # type: ignore[no-untyped-def]
            yield payload[:10]
            yield payload[10:]

        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{stack.url}/v1beta/models/{MODEL}:countTokens",
                data=payload if content_length else chunks(),
                headers=KEY_HEADERS,
            ) as resp,
        ):
            assert resp.status == 200
            assert (await resp.json())["totalTokens"] > 0
        assert stack.emulator.records[-1].body == payload


async def test_serve_helper_binds_loopback() -> None:
    from aiohttp import web

    app = web.Application()
    async with serve(app) as url:
        assert url.startswith("http://127.0.0.1:")


async def test_unknown_gateway_routes_are_404_in_googles_shape() -> None:
    async with gateway_stack() as stack:
        for method, path in [
            ("GET", "/_gateway/nothing"),
            ("POST", "/_gateway/healthz"),
            ("PUT", "/metrics"),
        ]:
            status, _, data = await raw(stack.url, path, method=method)
            assert status == 404 and google_error(data)["status"] == "NOT_FOUND"
        status, _, data = await raw(stack.url, "/_gateway/upload/garbage")
        assert status == 403 and google_error(data)["status"] == "PERMISSION_DENIED"
        assert not stack.emulator.records


async def test_gateway_headers_stay_at_the_gateway_and_head_keeps_its_length() -> None:
    async with gateway_stack() as stack:
        await raw(
            stack.url,
            f"/v1beta/models/{MODEL}:generateContent",
            generate_body("h"),
            headers={**KEY_HEADERS, "x-gateway-cache-variants": "2"},
        )
        assert "x-gateway-cache-variants" not in stack.emulator.records[-1].headers
        _, direct, _ = await raw(stack.emulator.url, "/v1beta/models", method="HEAD")
        status, through, _ = await raw(stack.url, "/v1beta/models", method="HEAD")
        assert status == 200 and through["Content-Length"] == direct["Content-Length"] != "0"


async def test_absolute_form_targets_are_forwarded_by_path() -> None:
    async with gateway_stack(cache={"backend": "off"}) as stack:
        host, port = stack.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        body = generate_body("absolute")
        writer.write(
            f"POST http://elsewhere.example/v1beta/models/{MODEL}:generateContent HTTP/1.1\r\n"
            f"Host: elsewhere.example\r\nx-goog-api-key: test-key\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        response = await reader.read()
        writer.close()
        assert response.startswith(b"HTTP/1.1 200")
        assert stack.emulator.records[-1].path == f"/v1beta/models/{MODEL}:generateContent"


async def test_a_stream_that_stalls_midway_is_cut_and_counted_as_a_timeout() -> None:
    config = EmulatorConfig(stream_events=3, stream_event_delay=1.0)
    async with gateway_stack(
        config, cache={"backend": "off"}, upstream={"read_timeout_seconds": 0.3}
    ) as stack:
        path = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
        with pytest.raises(aiohttp.ClientPayloadError):
            await raw(stack.url, path, generate_body("stall"))
        assert stack.metric("gemini_gateway_upstream_errors_total", kind="timeout") == 1
        assert stack.metric("gemini_gateway_upstream_errors_total", kind="reset") == 0
