"""The real google-genai SDK, pointed at the gateway, behaves as it does against Google.

Each call runs twice, straight at the emulator and through the gateway, and the results
must match. The synchronous client needs the servers on another thread (`threaded_stack`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from tests.emulator import character_of
from tests.emulator.bodies import reference_png
from tests.harness import Stack, threaded_stack

NB2 = "gemini-3.1-flash-image-preview"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with threaded_stack(cache={"backend": "off"}) as running:
        yield running


def clients(
    stack: Stack, api_version: str | None = None, key: str = "test-key"
) -> tuple[genai.Client, genai.Client]:
    def make(url: str) -> genai.Client:
        return genai.Client(
            api_key=key, http_options=types.HttpOptions(base_url=url, api_version=api_version)
        )

    return make(stack.emulator.url), make(stack.url)


def image_contents(seed: str = "hero") -> list[Any]:
    return [
        types.Part.from_bytes(data=reference_png(seed), mime_type="image/png"),
        "Draw the same character waving.",
    ]


def dump(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = response.model_dump(mode="json", exclude={"sdk_http_response"})
    data.pop("response_id", None)
    return data


@pytest.mark.parametrize("api_version", [None, "v1beta"])
def test_generate_with_reference_image_matches_direct(
    stack: Stack, api_version: str | None
) -> None:
    direct, via = clients(stack, api_version)
    a = direct.models.generate_content(model=NB2, contents=image_contents())
    b = via.models.generate_content(model=NB2, contents=image_contents())
    assert dump(a) == dump(b)
    assert character_of(a.model_dump()) is not None
    assert b.candidates and b.candidates[0].content and b.candidates[0].content.parts
    assert any(p.inline_data for p in b.candidates[0].content.parts)
    seen = [r for r in stack.emulator.records if r.is_generate][-1]
    assert seen.api_version == (api_version or "v1")


def test_stream_matches_direct(stack: Stack) -> None:
    direct, via = clients(stack)
    a = [
        dump(c) for c in direct.models.generate_content_stream(model=NB2, contents=image_contents())
    ]
    b = [dump(c) for c in via.models.generate_content_stream(model=NB2, contents=image_contents())]
    assert len(a) == len(b) == stack.emulator.config.stream_events
    assert a == b


async def test_async_generate_and_stream(stack: Stack) -> None:
    direct, via = clients(stack)
    a = await direct.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
    b = await via.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert dump(a) == dump(b)
    chunks = [
        dump(c)
        async for c in await via.aio.models.generate_content_stream(
            model=NB2, contents=image_contents("async")
        )
    ]
    direct_chunks = [
        dump(c)
        async for c in await direct.aio.models.generate_content_stream(
            model=NB2, contents=image_contents("async")
        )
    ]
    assert chunks == direct_chunks


def test_count_tokens_and_models(stack: Stack) -> None:
    direct, via = clients(stack)
    assert (
        via.models.count_tokens(model="gemini-2.5-flash", contents="one two three").total_tokens
        == direct.models.count_tokens(
            model="gemini-2.5-flash", contents="one two three"
        ).total_tokens
    )
    names = [m.name for m in via.models.list()]
    assert names == [m.name for m in direct.models.list()]
    assert f"models/{NB2}" in names
    assert via.models.get(model=NB2).name == f"models/{NB2}"


def test_files_upload_flows_through_the_gateway(stack: Stack) -> None:
    _, via = clients(stack)
    data = reference_png("upload", size=512) * 20
    before = len(stack.emulator.records)
    uploaded = via.files.upload(
        file=io.BytesIO(data), config=types.UploadFileConfig(mime_type="image/png")
    )
    assert uploaded.name and uploaded.size_bytes == len(data)
    assert stack.emulator.uploads[uploaded.name] == data
    upload_hits = [r for r in stack.emulator.records[before:] if r.host == "upload"]
    assert upload_hits, "the byte transfer must reach the upload host through the gateway"
    assert all(
        r.headers.get("Host", "").split(":")[-1] != stack.url.rsplit(":", 1)[-1]
        for r in upload_hits
    )
    assert via.files.get(name=uploaded.name).size_bytes == len(data)


@pytest.mark.parametrize(
    ("code", "cls"),
    [(429, errors.ClientError), (500, errors.ServerError), (503, errors.ServerError)],
)
def test_upstream_errors_surface_as_api_errors(stack: Stack, code: int, cls: type) -> None:
    direct, via = clients(stack)
    config = types.GenerateContentConfig(
        http_options=types.HttpOptions(headers={"x-emulator-error": str(code)})
    )
    with pytest.raises(cls) as through:
        via.models.generate_content(model="gemini-2.5-flash", contents="x", config=config)
    with pytest.raises(cls) as straight:
        direct.models.generate_content(model="gemini-2.5-flash", contents="x", config=config)
    assert through.value.code == straight.value.code == code
    assert through.value.status == straight.value.status
    assert through.value.message == straight.value.message


def test_invalid_key_is_rejected_like_google_does(stack: Stack) -> None:
    _, via = clients(stack, key="wrong-key")
    with pytest.raises(errors.ClientError) as info:
        via.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert info.value.code == 400
    assert "API key not valid" in (info.value.message or "")
