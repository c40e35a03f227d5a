"""Issue 4 end to end: identical calls cost one upstream call, across restarts and
concurrency, and only complete 2xx answers are ever replayed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from google import genai
from google.genai import types
from multidict import CIMultiDict

from gateway.cli import main as cli_main
from tests.emulator import EmulatorConfig
from tests.emulator.bodies import KEY_HEADERS, generate_body, reference_png
from tests.harness import Stack, fetch, gateway_stack

MODEL = "gemini-2.5-flash"
NB2 = "gemini-3.1-flash-image-preview"
ADMIN = "admin-token-0123456789"


async def post(
    stack: Stack, path: str, body: bytes, **headers: str
) -> tuple[int, CIMultiDict[str], bytes]:
    merged = {**KEY_HEADERS, **{k.replace("_", "-"): v for k, v in headers.items()}}
    answer = await fetch(stack.url + path, body, headers=merged)
    return answer.status, answer.headers, answer.body


def gen(model: str = MODEL, version: str = "v1beta") -> str:
    return f"/{version}/models/{model}:generateContent"


def upstream_calls(stack: Stack) -> int:
    return sum(1 for r in stack.emulator.records if r.is_generate)


async def test_second_identical_call_is_a_byte_identical_hit() -> None:
    async with gateway_stack() as stack:
        body = generate_body("a cat", reference_png("cat"))
        first = await post(stack, gen(NB2), body)
        second = await post(stack, gen(NB2), body)
        assert first[1]["x-gateway-cache"] == "MISS" and second[1]["x-gateway-cache"] == "HIT"
        assert second[2] == first[2] and second[0] == 200
        assert int(second[1]["Age"]) >= 0
        assert second[1]["Content-Type"].startswith("application/json")
        assert upstream_calls(stack) == 1


async def test_sdk_hit_and_spellings_follow_the_key_rules() -> None:
    async with gateway_stack() as stack:

        def client(version: str) -> genai.Client:
            return genai.Client(
                api_key="test-key",
                http_options=types.HttpOptions(base_url=stack.url, api_version=version),
            )

        contents = [
            types.Part.from_bytes(data=reference_png("sdk"), mime_type="image/png"),
            "same character, new pose",
        ]
        first = await client("v1beta").aio.models.generate_content(model=NB2, contents=contents)
        again = await client("v1beta").aio.models.generate_content(model=NB2, contents=contents)
        assert again.response_id == first.response_id and upstream_calls(stack) == 1
        # The SDK's spelling (snake_case inside inline_data, url-safe base64), plain
        # camelCase with standard base64 and all-snake_case are the same request.
        camel = generate_body("same character, new pose", reference_png("sdk"))
        status, headers, _ = await post(stack, gen(NB2), camel)
        assert status == 200 and headers["x-gateway-cache"] == "HIT"
        snake = generate_body(
            "same character, new pose", reference_png("sdk"), style="snake", urlsafe=True
        )
        status, headers, _ = await post(stack, gen(NB2), snake)
        assert headers["x-gateway-cache"] == "HIT"
        # The API version is part of the key: v1 is a different call.
        status, headers, _ = await post(stack, gen(NB2, "v1"), snake)
        assert headers["x-gateway-cache"] == "MISS"


@pytest.mark.parametrize("alt", ["?alt=sse", ""])
async def test_stream_hit_replays_the_same_bytes(alt: str) -> None:
    async with gateway_stack() as stack:
        path = f"/v1beta/models/{MODEL}:streamGenerateContent{alt}"
        body = generate_body("stream me")
        first = await post(stack, path, body)
        second = await post(stack, path, body)
        assert second[1]["x-gateway-cache"] == "HIT"
        assert second[2] == first[2]
        if alt:
            assert second[2].count(b"\r\n\r\n") == stack.emulator.config.stream_events
            assert b"[DONE]" not in second[2]
        else:
            assert isinstance(json.loads(second[2]), list)
        other = f"/v1beta/models/{MODEL}:streamGenerateContent{'' if alt else '?alt=sse'}"
        assert (await post(stack, other, body))[1]["x-gateway-cache"] == "MISS"


async def test_fifty_concurrent_identical_calls_make_one_upstream_call() -> None:
    async with gateway_stack(EmulatorConfig(latency=0.2)) as stack:
        body = generate_body("popular prompt")
        results = await asyncio.gather(*(post(stack, gen(), body) for _ in range(50)))
        assert {r[0] for r in results} == {200}
        assert len({r[2] for r in results}) == 1
        kinds = sorted(r[1]["x-gateway-cache"] for r in results)
        assert kinds.count("MISS") == 1 and kinds.count("COALESCED") == 49
        assert upstream_calls(stack) == 1


async def test_a_failed_first_call_lets_the_next_one_go_upstream() -> None:
    async with gateway_stack(EmulatorConfig(latency=0.1)) as stack:
        body = generate_body("flaky")
        results = await asyncio.gather(
            post(stack, gen(), body, x_emulator_error="503"), post(stack, gen(), body)
        )
        assert sorted(r[0] for r in results) == [200, 503]
        assert upstream_calls(stack) == 2


async def test_other_keys_never_see_entries_and_invalid_keys_never_hit() -> None:
    config = EmulatorConfig(valid_keys=frozenset({"test-key", "other-key"}))
    async with gateway_stack(config) as stack:
        body = generate_body("scoped")
        await post(stack, gen(), body)
        status, headers, _ = await post(stack, gen(), body, x_goog_api_key="other-key")
        assert status == 200 and headers["x-gateway-cache"] == "MISS"
        status, headers, _ = await post(stack, gen(), body, x_goog_api_key="bad-key")
        assert status == 400 and headers["x-gateway-cache"] == "MISS"
        status, headers, _ = await post(stack, gen(), body, x_goog_api_key="bad-key")
        assert status == 400 and headers["x-gateway-cache"] == "MISS"


async def test_errors_and_broken_streams_are_never_cached() -> None:
    async with gateway_stack() as stack:
        body = generate_body("unlucky")
        assert (await post(stack, gen(), body, x_emulator_error="500"))[0] == 500
        assert (await post(stack, gen(), body))[1]["x-gateway-cache"] == "MISS"
        path = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
        with pytest.raises(aiohttp.ClientPayloadError):
            await post(stack, path, generate_body("cut"), x_emulator_break_stream="1")
        status, headers, data = await post(stack, path, generate_body("cut"))
        assert status == 200 and headers["x-gateway-cache"] == "MISS"
        assert data.count(b"\r\n\r\n") == stack.emulator.config.stream_events


async def test_cache_control_directives() -> None:
    async with gateway_stack() as stack:
        body = generate_body("controlled")
        assert (await post(stack, gen(), body, cache_control="no-store"))[1][
            "x-gateway-cache"
        ] == "BYPASS"
        assert (await post(stack, gen(), body))[1]["x-gateway-cache"] == "MISS"
        first = await post(stack, gen(), body)
        assert first[1]["x-gateway-cache"] == "HIT"
        refreshed = await post(stack, gen(), body, cache_control="no-cache")
        assert refreshed[1]["x-gateway-cache"] == "BYPASS" and refreshed[2] != first[2]
        after = await post(stack, gen(), body)
        assert after[1]["x-gateway-cache"] == "HIT" and after[2] == refreshed[2]
        await asyncio.sleep(1.1)
        assert (await post(stack, gen(), body, cache_control="max-age=0"))[1][
            "x-gateway-cache"
        ] == "MISS"
        assert (await post(stack, gen(), body, cache_control="max-age=60"))[1][
            "x-gateway-cache"
        ] == "HIT"
        status, _, data = await post(stack, gen(), body, cache_control="max-age=soon")
        assert status == 400 and b"max-age" in data


async def test_variants_hand_out_distinct_answers_in_turn() -> None:
    async with gateway_stack() as stack:
        body = generate_body("three different cats")
        answers = [await post(stack, gen(), body, x_gateway_cache_variants="3") for _ in range(6)]
        texts = [a[2] for a in answers]
        assert [a[1]["x-gateway-cache"] for a in answers] == ["MISS"] * 3 + ["HIT"] * 3
        assert len(set(texts[:3])) == 3 and texts[3:] == texts[:3]
        status, _, _ = await post(stack, gen(), body, x_gateway_cache_variants="0")
        assert status == 400


async def test_disk_cache_survives_a_restart(tmp_path: Path) -> None:
    disk = {"backend": "disk", "dir": str(tmp_path), "secret": ""}
    body = generate_body("persist me")
    async with gateway_stack(cache=disk) as stack:
        first = await post(stack, gen(), body)
    async with gateway_stack(cache=disk) as stack:
        second = await post(stack, gen(), body)
        assert second[1]["x-gateway-cache"] == "HIT" and second[2] == first[2]
        assert upstream_calls(stack) == 0
    secret = (tmp_path / "gateway-secret").read_bytes()
    assert b"test-key" not in secret
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"test-key" not in path.read_bytes()


async def test_corrupt_store_never_fails_a_request(tmp_path: Path) -> None:
    disk = {"backend": "disk", "dir": str(tmp_path), "memory_bytes": 0}
    body = generate_body("corrupt me")
    # An answer large enough for diskcache to keep it in a value file.
    async with gateway_stack(EmulatorConfig(answer_image_bytes=50_000), cache=disk) as stack:
        await post(stack, gen(), body)
        files = [p for p in tmp_path.rglob("*.val")]
        assert files
        for path in files:
            path.write_bytes(b"garbage" * 10)
        status, headers, _ = await post(stack, gen(), body)
        assert status == 200 and headers["x-gateway-cache"] == "MISS"
        assert stack.metric("gemini_gateway_cache_errors_total", op="corrupt") == 1
        assert (await post(stack, gen(), body))[1]["x-gateway-cache"] == "HIT"


async def test_unusable_cache_directory_runs_uncached(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    async with gateway_stack(cache={"backend": "disk", "dir": str(blocker / "cache")}) as stack:
        body = generate_body("no cache")
        assert (await post(stack, gen(), body))[0] == 200
        assert (await post(stack, gen(), body))[0] == 200
        assert upstream_calls(stack) == 2
        assert stack.metric("gemini_gateway_cache_errors_total", op="open") == 1


async def test_full_cache_evicts_and_keeps_serving(tmp_path: Path) -> None:
    disk = {"backend": "disk", "dir": str(tmp_path), "max_bytes": 400_000}
    async with gateway_stack(EmulatorConfig(answer_image_bytes=60_000), cache=disk) as stack:
        for i in range(20):
            assert (await post(stack, gen(), generate_body(f"fill {i}")))[0] == 200
        stats = await stack.services.store.stats()  # type: ignore[union-attr]
        assert stats.size_bytes <= 400_000 + 100_000 and 0 < stats.entries < 20
        latest = await post(stack, gen(), generate_body("fill 19"))
        assert latest[1]["x-gateway-cache"] == "HIT"


async def test_admin_cache_endpoints_need_the_token() -> None:
    async with gateway_stack(admin={"token": ADMIN}) as stack:
        await post(stack, gen(), generate_body("purge me"))
        await post(stack, gen(NB2), generate_body("keep me"))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{stack.url}/_gateway/cache") as resp:
                assert (await resp.json())["entries"] == 2
            async with session.post(f"{stack.url}/_gateway/cache/purge?all=true") as resp:
                assert resp.status == 401
                assert (await resp.json())["error"]["status"] == "UNAUTHENTICATED"
            auth = {"Authorization": f"Bearer {ADMIN}"}
            async with session.post(f"{stack.url}/_gateway/cache/purge", headers=auth) as resp:
                assert resp.status == 400
            async with session.post(
                f"{stack.url}/_gateway/cache/purge?model=gemini-2.5*", headers=auth
            ) as resp:
                assert (await resp.json())["removed"] == 1
        assert (await post(stack, gen(NB2), generate_body("keep me")))[1][
            "x-gateway-cache"
        ] == "HIT"


async def test_admin_writes_are_off_without_a_token() -> None:
    async with (
        gateway_stack() as stack,
        aiohttp.ClientSession() as session,
        session.post(f"{stack.url}/_gateway/cache/purge?all=true") as resp,
    ):
        assert resp.status == 403


async def test_cli_cache_stats_and_purge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    disk = {"backend": "disk", "dir": str(tmp_path)}
    async with gateway_stack(cache=disk) as stack:
        await post(stack, gen(), generate_body("one"))
        await post(stack, gen(), generate_body("two"))
    capsys.readouterr()
    config = tmp_path / "g.toml"
    config.write_text(f'[cache]\ndir = "{tmp_path}"\n')
    assert await asyncio.to_thread(cli_main, ["cache", "stats", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 2
    assert await asyncio.to_thread(cli_main, ["cache", "purge", "--config", str(config)]) == 2
    assert (
        await asyncio.to_thread(
            cli_main, ["cache", "purge", "--older-than", "1h", "--config", str(config)]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["removed"] == 0
    assert (
        await asyncio.to_thread(cli_main, ["cache", "purge", "--all", "--config", str(config)]) == 0
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["removed"] == 2


async def test_purge_refuses_silly_durations_and_accepts_any_bearer_case() -> None:
    async with gateway_stack(admin={"token": ADMIN}) as stack, aiohttp.ClientSession() as s:
        auth = {"Authorization": f"bearer {ADMIN}"}
        async with s.post(
            f"{stack.url}/_gateway/cache/purge?older_than={'9' * 400}", headers=auth
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["status"] == "INVALID_ARGUMENT"
        async with s.post(f"{stack.url}/_gateway/cache/purge?older_than=7d", headers=auth) as resp:
            assert resp.status == 200


async def test_query_and_field_mask_are_part_of_the_key() -> None:
    async with gateway_stack() as stack:
        body = generate_body("shaped")
        assert (await post(stack, gen(), body))[1]["x-gateway-cache"] == "MISS"
        assert (await post(stack, gen() + "?key=test-key", body, x_goog_api_key="test-key"))[1][
            "x-gateway-cache"
        ] == "HIT"
        assert (await post(stack, gen() + "?fields=candidates", body))[1][
            "x-gateway-cache"
        ] == "MISS"
        assert (await post(stack, gen(), body, x_goog_fieldmask="candidates"))[1][
            "x-gateway-cache"
        ] == "MISS"
