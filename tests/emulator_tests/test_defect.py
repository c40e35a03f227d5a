"""The emulated Nano Banana 2 defect: parallel calls sharing a reference drift, others don't."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from google import genai
from google.genai import types

from tests.emulator import Emulator, character_of, expected_character, overlapping_pairs
from tests.emulator.bodies import KEY_HEADERS, generate_body, image_digest, reference_png
from tests.emulator.defect import HAIR, wrong_character

NB2 = "gemini-3.1-flash-image"
NB2_PREVIEW = "gemini-3.1-flash-image-preview"
PRO = "gemini-3-pro-image-preview"
LATENCY = 0.2

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class:DeprecationWarning")


def test_expected_character_depends_on_references_only() -> None:
    a, b = image_digest(b"a"), image_digest(b"b")
    assert expected_character([a, b], "one") == expected_character([b, a], "two")
    assert expected_character([], "one") == expected_character((), "one")
    characters = {expected_character([image_digest(bytes([i]))], "") for i in range(40)}
    assert len(characters) > 5  # the palette is actually used


def test_wrong_character_always_differs_in_hair() -> None:
    expected = expected_character([image_digest(b"x")], "")
    wrong = {wrong_character(expected, n) for n in range(len(HAIR) - 1)}
    assert expected not in wrong and len(wrong) == len(HAIR) - 1
    assert {w.split(" ")[1] for w in wrong} == {expected.split(" ")[1]}


def test_character_of_shapes() -> None:
    chunk = {"candidates": [{"content": {"parts": [{"text": "character: hair=red skin=tan\n"}]}}]}
    assert character_of(chunk) == "hair=red skin=tan"
    assert character_of([{"candidates": []}, chunk]) == "hair=red skin=tan"
    assert character_of({"candidates": [{"content": {"parts": [{"text": "hi"}]}}]}) is None


async def _generate(
    session: aiohttp.ClientSession, emu: Emulator, model: str, body: bytes, stream: bool = False
) -> str | None:
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    url = f"{emu.url}/v1beta/models/{model}:{action}"
    async with session.post(url, data=body, headers=KEY_HEADERS) as resp:
        assert resp.status == 200
        if not stream:
            return character_of(await resp.json())
        first = await resp.content.readuntil(b"\r\n\r\n")
        await resp.read()
        return character_of(json.loads(first.removeprefix(b"data: ")))


async def _parallel(emu: Emulator, calls: list[tuple[str, bytes]], stream: bool = False) -> Any:
    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(_generate(session, emu, m, b, stream) for m, b in calls))


@pytest.mark.parametrize("model", [NB2, NB2_PREVIEW])
@pytest.mark.parametrize("stream", [False, True])
async def test_parallel_nb2_calls_sharing_a_reference_drift(
    emu: Emulator, model: str, stream: bool
) -> None:
    emu.config.latency = LATENCY
    ref = reference_png("shared")
    calls = [(model, generate_body(f"pose {i}", ref)) for i in range(4)]
    characters = await _parallel(emu, calls, stream)
    expected = expected_character({image_digest(ref)}, "")
    assert expected not in characters and len(set(characters)) == 4
    assert all(r.conflicted for r in emu.records) and overlapping_pairs(emu.records)


async def test_sequential_nb2_calls_stay_consistent(emu: Emulator) -> None:
    emu.config.latency = 0.02
    ref = reference_png("shared")
    async with aiohttp.ClientSession() as session:
        characters = [
            await _generate(session, emu, NB2, generate_body(f"pose {i}", ref)) for i in range(4)
        ]
    assert characters == [expected_character({image_digest(ref)}, "")] * 4
    assert not overlapping_pairs(emu.records) and not any(r.conflicted for r in emu.records)


async def test_pro_and_unshared_calls_are_unaffected(emu: Emulator) -> None:
    emu.config.latency = LATENCY
    shared, other = reference_png("shared"), reference_png("other")
    calls = [(PRO, generate_body(f"pro {i}", shared)) for i in range(3)]
    calls += [(NB2, generate_body("own image", other)), (NB2, generate_body("shared", shared))]
    characters = await _parallel(emu, calls)
    assert characters[:3] == [expected_character({image_digest(shared)}, "")] * 3
    assert characters[3] == expected_character({image_digest(other)}, "")
    # NB2 sharing an image with in-flight Pro calls: only NB2 calls conflict each other.
    assert characters[4] == characters[0]
    assert not any(r.conflicted for r in emu.records)


async def test_shared_file_reference_counts(emu: Emulator) -> None:
    emu.config.latency = LATENCY
    uri = f"{emu.url}/v1beta/files/abc"
    calls = [(NB2, generate_body(f"p{i}", file_uris=(uri,))) for i in range(2)]
    characters = await _parallel(emu, calls)
    assert expected_character({uri}, "") not in characters


async def test_sdk_parallel_drifts_sequential_does_not(emu: Emulator) -> None:
    emu.config.latency = LATENCY
    client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=emu.url))
    ref = reference_png("sdk")
    part = types.Part.from_bytes(data=ref, mime_type="image/png")
    expected = expected_character({image_digest(ref)}, "")

    async def one(i: int) -> str | None:
        response = await client.aio.models.generate_content(model=NB2, contents=[part, f"p{i}"])
        return character_of(response.model_dump())

    parallel = await asyncio.gather(*(one(i) for i in range(3)))
    assert expected not in parallel and len(set(parallel)) == 3
    emu.config.latency = 0.02
    sequential = [await one(i) for i in range(3)]
    assert sequential == [expected] * 3
    await client.aio.aclose()
