"""The real google-genai SDK against the emulator: sync (in a thread) and async."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types

from tests.emulator import Emulator, character_of, expected_character
from tests.emulator.bodies import image_digest, reference_png

NB2 = "gemini-3.1-flash-image-preview"
FLASH = "gemini-2.5-flash"

# google-genai subclasses aiohttp.ClientSession, which aiohttp frowns upon; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class:DeprecationWarning")


def _client(emu: Emulator, version: str | None = None, key: str = "test-key") -> genai.Client:
    options = types.HttpOptions(base_url=emu.url, api_version=version)
    return genai.Client(api_key=key, http_options=options)


@pytest.fixture(params=[None, "v1beta"], ids=["default-v1", "v1beta"])
async def client(request: pytest.FixtureRequest, emu: Emulator) -> AsyncIterator[genai.Client]:
    sdk = _client(emu, request.param)
    yield sdk
    await sdk.aio.aclose()
    sdk.close()


def _reference_part(seed: str) -> tuple[types.Part, str]:
    data = reference_png(seed)
    return types.Part.from_bytes(data=data, mime_type="image/png"), image_digest(data)


async def test_generate_content_with_reference(client: genai.Client, emu: Emulator) -> None:
    part, digest = _reference_part("sdk")
    response = await asyncio.to_thread(
        client.models.generate_content, model=NB2, contents=[part, "draw her"]
    )
    assert character_of(response.model_dump()) == expected_character({digest}, "draw her")
    parts = response.candidates[0].content.parts  # type: ignore[index, union-attr]
    assert parts[1].inline_data.data.startswith(b"\x89PNG")  # type: ignore[index, union-attr]
    assert emu.records[-1].image_digests == {digest}
    assert emu.records[-1].path.startswith(f"/{client._api_client._http_options.api_version}/")


async def test_generate_content_stream(client: genai.Client) -> None:
    part, digest = _reference_part("stream")
    chunks = await asyncio.to_thread(
        lambda: list(client.models.generate_content_stream(model=NB2, contents=[part, "x"]))
    )
    assert len(chunks) == 3
    assert character_of([c.model_dump() for c in chunks]) == expected_character({digest}, "")
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]


async def test_async_generate_and_stream(client: genai.Client) -> None:
    response = await client.aio.models.generate_content(model=FLASH, contents="hello")
    assert response.text is not None and response.text.startswith("character: ")
    stream = await client.aio.models.generate_content_stream(model=FLASH, contents="hello")
    texts = [chunk.text async for chunk in stream]
    assert len(texts) == 3 and texts[0] == f"character: {expected_character((), 'hello')}\n"


async def test_count_tokens_and_list_models(client: genai.Client) -> None:
    counted = await client.aio.models.count_tokens(model=FLASH, contents="hello world!")
    assert counted.total_tokens == 3
    synced = await asyncio.to_thread(client.models.count_tokens, model=FLASH, contents="abcd")
    assert synced.total_tokens == 1
    names = [m.name async for m in await client.aio.models.list(config={"page_size": 2})]
    assert "models/gemini-3-pro-image-preview" in names and len(names) == len(set(names)) > 2
    listed = await asyncio.to_thread(lambda: [m.name for m in client.models.list()])
    assert listed == names


async def test_files_upload(client: genai.Client, emu: Emulator, tmp_path: Path) -> None:
    data = reference_png("upload", size=5000)
    path = tmp_path / "ref.png"
    path.write_bytes(data)
    from_path = await asyncio.to_thread(client.files.upload, file=path)
    from_io = await client.aio.files.upload(
        file=io.BytesIO(data), config={"mime_type": "image/png", "display_name": "io"}
    )
    for file in (from_path, from_io):
        assert file.state == types.FileState.ACTIVE and file.size_bytes == len(data)
        assert emu.uploads[file.name or ""] == data
    fetched = await client.aio.files.get(name=from_io.name or "")
    assert fetched.display_name == "io" and fetched.uri == from_io.uri
    await client.aio.files.delete(name=from_io.name or "")
    assert [f.name async for f in await client.aio.files.list()] == [from_path.name]


async def test_scripted_error_raises_api_error(emu: Emulator) -> None:
    options = types.HttpOptions(base_url=emu.url, headers={"x-emulator-error": "503"})
    sdk = genai.Client(api_key="test-key", http_options=options)
    with pytest.raises(errors.ServerError) as caught:
        await sdk.aio.models.generate_content(model=FLASH, contents="x")
    assert (caught.value.code, caught.value.status) == (503, "UNAVAILABLE")
    await sdk.aio.aclose()
    plain = _client(emu)
    with pytest.raises(errors.APIError) as limited:
        await plain.aio.models.generate_content(model="emulator-error-429", contents="x")
    assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")
    await plain.aio.aclose()


async def test_invalid_key_is_client_error_400(emu: Emulator) -> None:
    sdk = _client(emu, key="wrong-key")
    with pytest.raises(errors.ClientError) as caught:
        await asyncio.to_thread(sdk.models.generate_content, model=FLASH, contents="x")
    assert caught.value.code == 400
    assert caught.value.message == "API key not valid. Please pass a valid API key."
    sdk.close()


async def test_vertex_express_mode(emu: Emulator) -> None:
    options = types.HttpOptions(base_url=emu.url)
    sdk = genai.Client(vertexai=True, api_key="test-key", http_options=options)
    response = await sdk.aio.models.generate_content(model=NB2, contents="vertex")
    assert character_of(response.model_dump()) == expected_character((), "vertex")
    assert emu.records[-1].path == f"/v1beta1/publishers/google/models/{NB2}:generateContent"
    await sdk.aio.aclose()
