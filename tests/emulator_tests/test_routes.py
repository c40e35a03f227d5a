"""Each route of the emulator, through a plain aiohttp client."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from tests.emulator import Emulator, EmulatorConfig, character_of, create_emulator
from tests.emulator.bodies import KEY_HEADERS, generate_body, image_digest, reference_png
from tests.emulator.defect import expected_character
from tests.emulator.state import STATE

FLASH = "gemini-2.5-flash"
NB2 = "gemini-3.1-flash-image"


async def _client(aiohttp_client: AiohttpClient, **config: Any) -> TestClient[Any, Any]:
    return await aiohttp_client(create_emulator(EmulatorConfig(**config)))


async def _post(client: TestClient[Any, Any], path: str, body: bytes, **headers: str) -> Any:
    async with client.post(path, data=body, headers={**KEY_HEADERS, **headers}) as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.mark.parametrize("version", ["v1", "v1beta"])
async def test_generate_content_shape(aiohttp_client: AiohttpClient, version: str) -> None:
    client = await _client(aiohttp_client)
    ref = reference_png("a")
    path = f"/{version}/models/{FLASH}:generateContent"
    async with client.post(path, data=generate_body("draw", ref), headers=KEY_HEADERS) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json; charset=UTF-8"
        doc = await resp.json()
    (cand,) = doc["candidates"]
    assert cand["content"]["role"] == "model"
    assert cand["finishReason"] == "STOP" and cand["index"] == 0
    assert len(cand["content"]["parts"]) == 1  # no image for a text model by default
    assert character_of(doc) == expected_character({image_digest(ref)}, "draw")
    usage = doc["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert doc["modelVersion"] == FLASH and doc["responseId"]


async def test_image_model_answers_png(aiohttp_client: AiohttpClient) -> None:
    client = await _client(aiohttp_client)
    status, doc = await _post(client, f"/v1beta/models/{NB2}:generateContent", generate_body("x"))
    assert status == 200
    image = doc["candidates"][0]["content"]["parts"][1]["inlineData"]
    assert image["mimeType"] == "image/png"
    data = base64.b64decode(image["data"])
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) == 256


async def test_answer_image_bytes_sets_size(aiohttp_client: AiohttpClient) -> None:
    client = await _client(aiohttp_client, answer_image_bytes=1_500_000)
    status, doc = await _post(client, f"/v1/models/{FLASH}:generateContent", generate_body("x"))
    assert status == 200
    data = doc["candidates"][0]["content"]["parts"][1]["inlineData"]["data"]
    assert len(base64.b64decode(data)) == 1_500_000


async def test_sse_stream_framing(aiohttp_client: AiohttpClient) -> None:
    client = await _client(aiohttp_client, stream_events=4)
    ref = reference_png("s")
    path = f"/v1beta/models/{NB2}:streamGenerateContent?alt=sse"
    async with client.post(path, data=generate_body("go", ref), headers=KEY_HEADERS) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        raw = await resp.read()
    frames = raw.split(b"\r\n\r\n")
    assert frames[-1] == b"" and len(frames) == 5
    events = [json.loads(f.removeprefix(b"data: ")) for f in frames[:-1]]
    assert all(f.startswith(b"data: {") for f in frames[:-1])
    assert character_of(events[0]) == expected_character({image_digest(ref)}, "go")
    finals = [e for e in events if e["candidates"][0].get("finishReason") == "STOP"]
    assert finals == [events[-1]] and [e for e in events if "usageMetadata" in e] == finals
    assert "inlineData" in events[-1]["candidates"][0]["content"]["parts"][-1]


async def test_json_array_stream(aiohttp_client: AiohttpClient) -> None:
    client = await _client(aiohttp_client)
    path = f"/v1/models/{FLASH}:streamGenerateContent"
    async with client.post(path, data=generate_body("go"), headers=KEY_HEADERS) as resp:
        assert resp.headers["Content-Type"] == "application/json; charset=UTF-8"
        raw = await resp.read()
    assert raw.startswith(b"[{") and raw.endswith(b"}\n]") and raw.count(b"\n,\r\n{") == 2
    chunks = json.loads(raw)
    assert len(chunks) == 3 and character_of(chunks) is not None


async def test_stream_arrives_event_by_event(aiohttp_client: AiohttpClient) -> None:
    client = await _client(aiohttp_client, stream_event_delay=0.1)
    path = f"/v1beta/models/{FLASH}:streamGenerateContent?alt=sse"
    async with client.post(path, data=generate_body("go"), headers=KEY_HEADERS) as resp:
        first = await resp.content.readuntil(b"\r\n\r\n")
        got_first = time.monotonic()
        rest = await resp.read()
        done = time.monotonic()
    assert character_of(json.loads(first.removeprefix(b"data: "))) is not None
    assert rest.count(b"data: ") == 2 and done - got_first >= 0.15


async def test_break_stream_drops_connection(emu: Emulator) -> None:
    path = f"{emu.url}/v1beta/models/{FLASH}:streamGenerateContent?alt=sse"
    headers = {**KEY_HEADERS, "x-emulator-break-stream": "1"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(path, data=generate_body("go"), headers=headers) as resp,
    ):
        assert resp.status == 200
        first = await resp.content.readuntil(b"\r\n\r\n")
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert first.startswith(b"data: ")
    assert emu.records[-1].events == 1


async def test_count_tokens(aiohttp_client: AiohttpClient) -> None:
    client = await _client(aiohttp_client)
    path = f"/v1beta/models/{FLASH}:countTokens"
    assert await _post(client, path, generate_body("hello world!")) == (
        200,
        {"totalTokens": 3, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 3}]},
    )
    _, doc = await _post(client, path, generate_body("hello world!", reference_png("c")))
    assert doc["totalTokens"] == 3 + 258


async def test_list_models_pages(aiohttp_client: AiohttpClient) -> None:
    client = await _client(aiohttp_client)
    names: list[str] = []
    token = ""
    while True:
        query = {"pageSize": "3", **({"pageToken": token} if token else {})}
        async with client.get("/v1beta/models", params=query, headers=KEY_HEADERS) as resp:
            doc = await resp.json()
        assert len(doc["models"]) <= 3
        names += [m["name"] for m in doc["models"]]
        token = doc.get("nextPageToken", "")
        if not token:
            break
    for model in (NB2, "gemini-3.1-flash-image-preview", "gemini-3-pro-image-preview", FLASH):
        assert f"models/{model}" in names
    async with client.get("/v1/models?pageToken=bogus", headers=KEY_HEADERS) as resp:
        assert resp.status == 400


async def test_get_model(aiohttp_client: AiohttpClient) -> None:
    client = await _client(aiohttp_client)
    async with client.get(f"/v1/models/{NB2}", headers=KEY_HEADERS) as resp:
        assert resp.status == 200
        assert (await resp.json())["name"] == f"models/{NB2}"
    async with client.get("/v1/models/gemini-0-nope", headers=KEY_HEADERS) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["status"] == "NOT_FOUND"


async def test_vertex_paths(aiohttp_client: AiohttpClient) -> None:
    client = await _client(aiohttp_client)
    body = generate_body("v")
    project = f"/v1beta1/projects/p/locations/us-central1/publishers/google/models/{NB2}"
    bearer = {"Authorization": "Bearer test-token", "Content-Type": "application/json"}
    async with client.post(f"{project}:generateContent", data=body, headers=bearer) as resp:
        assert resp.status == 200 and character_of(await resp.json())
    bad = {**bearer, "Authorization": "Bearer wrong"}
    async with client.post(f"{project}:generateContent", data=body, headers=bad) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["status"] == "UNAUTHENTICATED"
    express = f"/v1/publishers/google/models/{FLASH}:streamGenerateContent?alt=sse"
    async with client.post(express, data=body, headers=KEY_HEADERS) as resp:
        assert resp.status == 200 and (await resp.read()).count(b"data: ") == 3
    async with client.get("/v1beta1/publishers/google/models", headers=KEY_HEADERS) as resp:
        assert (await resp.json())["publisherModels"][0]["name"].startswith("publishers/google/")


API_KEY_INVALID = {
    "error": {
        "code": 400,
        "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ],
    }
}


async def test_api_key_checks(aiohttp_client: AiohttpClient) -> None:
    client = await _client(aiohttp_client)
    path = f"/v1beta/models/{FLASH}:generateContent"
    for headers in ({}, {"x-goog-api-key": "nope"}):
        async with client.post(path, data=generate_body("x"), headers=headers) as resp:
            assert (resp.status, await resp.json()) == (400, API_KEY_INVALID)
    async with client.post(f"{path}?key=test-key", data=generate_body("x")) as resp:
        assert resp.status == 200


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (400, "INVALID_ARGUMENT"),
    ],
)
async def test_scripted_errors(aiohttp_client: AiohttpClient, code: int, status: str) -> None:
    client = await _client(aiohttp_client)
    path = f"/v1beta/models/{FLASH}:generateContent"
    got, doc = await _post(client, path, generate_body("x"), **{"x-emulator-error": str(code)})
    assert (got, doc["error"]["code"], doc["error"]["status"]) == (code, code, status)
    if code == 429:
        retry = [d for d in doc["error"]["details"] if d["@type"].endswith("RetryInfo")]
        assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]
    path = f"/v1/models/emulator-error-{code}:streamGenerateContent?alt=sse"
    assert (await _post(client, path, generate_body("x")))[0] == code


async def test_unknown_model_and_bad_json(aiohttp_client: AiohttpClient) -> None:
    client = await _client(aiohttp_client)
    status, doc = await _post(client, "/v1beta/models/gemini-0:generateContent", b"{}")
    assert (status, doc["error"]["status"]) == (404, "NOT_FOUND")
    status, doc = await _post(client, f"/v1beta/models/{FLASH}:generateContent", b"{nope")
    assert (status, doc["error"]["status"]) == (400, "INVALID_ARGUMENT")


async def test_latency_config_and_override(aiohttp_client: AiohttpClient) -> None:
    client = await _client(aiohttp_client, latency=0.15)
    app = client.server.app
    assert app is not None
    records = app[STATE].records
    path = f"/v1beta/models/{FLASH}:generateContent"
    await _post(client, path, generate_body("slow"))
    await _post(client, path, generate_body("fast"), **{"x-emulator-latency": "0"})
    slow, fast = records
    assert slow.ended is not None and slow.ended - slow.started >= 0.15
    assert fast.ended is not None and fast.ended - fast.started < 0.1
    app[STATE].config.latency_range = (0.05, 0.06)
    await _post(client, path, generate_body("ranged"))
    ranged = records[-1]
    assert ranged.ended is not None and 0.05 <= ranged.ended - ranged.started < 0.12


async def test_record_fields(emu: Emulator) -> None:
    ref = reference_png("r")
    body = generate_body("portrait", ref, file_uris=("https://x/v1beta/files/abc",))
    url = f"{emu.url}/v1beta/models/{NB2}:generateContent?trace=1"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=KEY_HEADERS) as resp,
    ):
        assert resp.status == 200
    (record,) = emu.records
    assert (record.method, record.path, record.query) == (
        "POST",
        f"/v1beta/models/{NB2}:generateContent",
        {"trace": "1"},
    )
    assert record.headers["X-GOOG-API-KEY"] == "test-key" and record.body == body
    assert (record.model, record.action, record.api_version) == (NB2, "generateContent", "v1beta")
    assert record.image_digests == {image_digest(ref), "https://x/v1beta/files/abc"}
    assert record.character == expected_character(record.image_digests, "portrait")
    assert record.status == 200 and not record.conflicted
    assert record.ended is not None and record.ended >= record.started


@pytest.mark.parametrize(("style", "urlsafe"), [("snake", False), ("sdk", True), ("camel", True)])
async def test_body_spellings_share_digests(
    aiohttp_client: AiohttpClient, style: Any, urlsafe: bool
) -> None:
    client = await _client(aiohttp_client)
    ref = reference_png("spelling", size=301)  # not a multiple of 3: base64 needs padding
    body = generate_body("p", ref, style=style, urlsafe=urlsafe)
    _, doc = await _post(client, f"/v1/models/{NB2}:generateContent", body)
    assert character_of(doc) == expected_character({image_digest(ref)}, "other prompt")


async def test_cli_serves_until_terminated() -> None:
    root = Path(__file__).resolve().parents[2]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.emulator", "--port", "0", "--latency", "0",
        cwd=root, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        url = line.split()[3]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/v1beta/models", headers=KEY_HEADERS) as resp,
        ):
            assert resp.status == 200
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
