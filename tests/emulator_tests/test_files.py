"""The Files API and its resumable upload, spoken by hand over aiohttp."""

from __future__ import annotations

from typing import Any

import aiohttp
from yarl import URL

from tests.emulator import Emulator

KEY = {"x-goog-api-key": "test-key"}


async def _start(session: aiohttp.ClientSession, emu: Emulator, size: int) -> str:
    headers = {
        **KEY,
        "X-Goog-Upload-Protocol": "resumable",
        "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(size),
        "X-Goog-Upload-Header-Content-Type": "image/png",
    }
    body = {"file": {"displayName": "ref.png"}}
    async with session.post(f"{emu.url}/upload/v1beta/files", json=body, headers=headers) as resp:
        assert resp.status == 200 and resp.headers["X-Goog-Upload-Status"] == "active"
        return resp.headers["X-Goog-Upload-URL"]


async def _chunk(
    session: aiohttp.ClientSession, url: str, command: str, offset: int, data: bytes
) -> tuple[aiohttp.ClientResponse, Any]:
    headers = {"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset)}
    async with session.post(url, data=data, headers=headers) as resp:
        text = await resp.text()
        return resp, (await resp.json() if text else None)


async def test_resumable_upload_on_separate_host(emu: Emulator) -> None:
    data = bytes(range(256)) * 40
    async with aiohttp.ClientSession() as session:
        upload_url = await _start(session, emu, len(data))
        assert URL(upload_url).origin() == URL(emu.upload_url).origin() != URL(emu.url).origin()
        assert URL(upload_url).path == "/upload/v1beta/files"
        assert URL(upload_url).query["upload_protocol"] == "resumable"
        resp, _ = await _chunk(session, upload_url, "upload", 0, data[:4000])
        assert resp.status == 200 and resp.headers["X-Goog-Upload-Status"] == "active"
        resp, doc = await _chunk(session, upload_url, "upload, finalize", 4000, data[4000:])
        assert resp.status == 200 and resp.headers["X-Goog-Upload-Status"] == "final"
        file = doc["file"]
        name = file["name"]
        assert name.startswith("files/") and file["sizeBytes"] == str(len(data))
        assert file["uri"] == f"{emu.url}/v1beta/{name}" and file["state"] == "ACTIVE"
        assert file["mimeType"] == "image/png" and file["displayName"] == "ref.png"
        assert emu.uploads == {name: data}
        assert [r.host for r in emu.records] == ["api", "upload", "upload"]

        async with session.get(f"{emu.url}/v1beta/{name}", headers=KEY) as resp:
            assert (await resp.json()) == file
        async with session.get(f"{emu.url}/v1/files", headers=KEY) as resp:
            assert [f["name"] for f in (await resp.json())["files"]] == [name]
        async with session.delete(f"{emu.url}/v1beta/{name}", headers=KEY) as resp:
            assert resp.status == 200 and await resp.json() == {}
        async with session.get(f"{emu.url}/v1beta/{name}", headers=KEY) as resp:
            assert resp.status == 403
            assert (await resp.json())["error"]["status"] == "PERMISSION_DENIED"
        async with session.get(f"{emu.url}/v1beta/files", headers=KEY) as resp:
            assert await resp.json() == {}


async def test_bad_offset_is_a_google_400_and_closes_the_session(emu: Emulator) -> None:
    async with aiohttp.ClientSession() as session:
        upload_url = await _start(session, emu, 10)
        resp, doc = await _chunk(session, upload_url, "upload", 3, b"abc")
        assert resp.status == 400 and resp.headers["X-Goog-Upload-Status"] == "final"
        assert doc["error"]["status"] == "INVALID_ARGUMENT"
        resp, doc = await _chunk(session, upload_url, "upload", 0, b"abc")
        assert resp.status == 404 and doc["error"]["status"] == "NOT_FOUND"


async def test_query_and_size_mismatch(emu: Emulator) -> None:
    async with aiohttp.ClientSession() as session:
        upload_url = await _start(session, emu, 10)
        await _chunk(session, upload_url, "upload", 0, b"abcd")
        async with session.post(upload_url, headers={"X-Goog-Upload-Command": "query"}) as resp:
            assert resp.headers["X-Goog-Upload-Size-Received"] == "4"
        resp, doc = await _chunk(session, upload_url, "upload, finalize", 4, b"ef")
        assert resp.status == 400 and "declared size" in doc["error"]["message"]
    assert emu.uploads == {}


async def test_chunks_are_refused_on_the_api_host(emu: Emulator) -> None:
    async with aiohttp.ClientSession() as session:
        upload_url = await _start(session, emu, 3)
        wrong_host = str(URL(upload_url).with_port(URL(emu.url).port))
        headers = {**KEY, "X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"}
        async with session.post(wrong_host, data=b"abc", headers=headers) as resp:
            assert resp.status == 404
        resp, _ = await _chunk(session, upload_url, "upload, finalize", 0, b"abc")
        assert resp.status == 200


async def test_upload_start_needs_a_key(emu: Emulator) -> None:
    headers = {"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{emu.url}/upload/v1beta/files", json={}, headers=headers) as resp,
    ):
        assert resp.status == 400
        assert (await resp.json())["error"]["details"][0]["reason"] == "API_KEY_INVALID"
