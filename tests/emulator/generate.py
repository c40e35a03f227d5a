"""generateContent, streamGenerateContent and countTokens: the simulated upstream work."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from aiohttp import web

from . import errors
from .config import EmulatorConfig
from .content import CallInput, parse_json_object, read_call
from .defect import character_text, expected_character
from .records import Record
from .responses import (
    generate_response,
    image_part,
    json_array_piece,
    pretty_json,
    sse_event,
    stream_chunks,
    usage,
)
from .state import RECORD, STATE

_SCRIPTED_MODEL_PREFIX = "emulator-error-"


def _header_number(request: web.Request, name: str) -> float | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise errors.invalid_argument(f"Header {name} must be a number, got {raw!r}.") from None


def latency_for(request: web.Request, config: EmulatorConfig) -> float:
    """Seconds of simulated upstream work: header override, else range, else fixed."""
    override = _header_number(request, "x-emulator-latency")
    if override is not None:
        return max(0.0, override)
    if config.latency_range is not None:
        return random.uniform(*config.latency_range)
    return config.latency


async def _pause(seconds: float) -> None:
    # Latency 0 must cost nothing: no sleep, not even a zero-length one.
    if seconds > 0:
        await asyncio.sleep(seconds)


def _scripted_code(request: web.Request, model: str) -> int | None:
    raw = request.headers.get("x-emulator-error")
    if raw is None and model.startswith(_SCRIPTED_MODEL_PREFIX):
        raw = model.removeprefix(_SCRIPTED_MODEL_PREFIX)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.invalid_argument(f"Unknown scripted error {raw!r}.") from None


async def _admit(request: web.Request, record: Record, action: str) -> CallInput:
    """Scripted errors, unknown models and bad bodies, in that order; else the parsed call."""
    config = request.app[STATE].config
    model = record.model or ""
    code = _scripted_code(request, model)
    if code is not None:
        await _pause(latency_for(request, config))
        raise errors.scripted(code)
    if not config.knows(model):
        raise errors.model_not_found(model, record.api_version or "v1beta", action)
    doc = parse_json_object(await request.read())
    if action == "countTokens" and isinstance(doc.get("generateContentRequest"), dict):
        doc = doc["generateContentRequest"]
    call = read_call(doc)
    record.image_digests = call.image_digests
    return call


def _image(config: EmulatorConfig, model: str, character: str) -> dict[str, Any] | None:
    size = config.answer_image_size(model)
    return image_part(size, f"{model}|{character}") if size > 0 else None


async def count_tokens(request: web.Request) -> web.Response:
    """`{"totalTokens": N}`, N from the text length plus a flat cost per image."""
    call = await _admit(request, request[RECORD], "countTokens")
    tokens = call.prompt_tokens
    doc = {
        "totalTokens": tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
    }
    return web.Response(body=pretty_json(doc), content_type="application/json", charset="UTF-8")


async def generate_content(request: web.Request) -> web.Response:
    """One complete answer after the simulated latency."""
    state = request.app[STATE]
    record = request[RECORD]
    call = await _admit(request, record, "generateContent")
    model = record.model or ""
    expected = expected_character(call.image_digests, call.prompt)
    delay = latency_for(request, state.config)
    record.started = time.monotonic()
    affected = model in state.config.defect_models
    flight = state.tracker.start(model, call.image_digests, affected=affected)
    try:
        await _pause(delay)
        character = state.tracker.character_for(flight, expected)
    finally:
        state.tracker.finish(flight)
        record.ended = time.monotonic()
    record.character, record.conflicted = character, flight.conflicted
    text = f"{character_text(character)}\nEmulated answer from {model}."
    image = _image(state.config, model, character)
    parts: list[dict[str, Any]] = [{"text": text}, *([image] if image else [])]
    doc = generate_response(model, state.response_id(), parts, usage(call, text, image is not None))
    return web.Response(body=pretty_json(doc), content_type="application/json", charset="UTF-8")


async def stream_generate_content(request: web.Request) -> web.StreamResponse:
    """SSE (`alt=sse`) or a streamed JSON array, written event by event.

    The character goes in the first event; the image, finishReason and usageMetadata in
    the last. `x-emulator-break-stream: N` drops the connection after N events.
    """
    state = request.app[STATE]
    record = request[RECORD]
    call = await _admit(request, record, "streamGenerateContent")
    model = record.model or ""
    sse = request.query.get("alt") == "sse"
    breaking = _header_number(request, "x-emulator-break-stream")
    expected = expected_character(call.image_digests, call.prompt)
    delay = latency_for(request, state.config)
    count = max(1, state.config.stream_events)
    content_type = "text/event-stream" if sse else "application/json; charset=UTF-8"
    response = web.StreamResponse(
        headers={"Content-Type": content_type, "Vary": "Origin, X-Origin, Referer"}
    )
    record.started = time.monotonic()
    affected = model in state.config.defect_models
    flight = state.tracker.start(model, call.image_digests, affected=affected)
    try:
        await _pause(delay)
        character = state.tracker.character_for(flight, expected)
        record.character = character
        texts = [character_text(character) + "\n"]
        texts += [f"Emulated answer from {model}, part {i + 1}.\n" for i in range(1, count)]
        image = _image(state.config, model, character)
        chunks = stream_chunks(
            model, state.response_id(), texts, image, usage(call, "".join(texts), bool(image))
        )
        await response.prepare(request)
        for i, chunk in enumerate(chunks):
            if breaking is not None and i >= breaking:
                break
            if i > 0:
                await _pause(state.config.stream_event_delay)
            await response.write(sse_event(chunk) if sse else json_array_piece(chunk, i == 0))
            record.events += 1
        else:
            if not sse:
                await response.write(b"]")
            breaking = None
    finally:
        state.tracker.finish(flight)
        record.ended = time.monotonic()
        record.conflicted = flight.conflicted
    if breaking is not None and request.transport is not None:
        # Closing without the final chunk makes the client see a truncated body.
        request.transport.close()
    return response
