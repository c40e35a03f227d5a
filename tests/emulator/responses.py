"""Response bodies in the Gemini Developer API wire format (camelCase JSON)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import zlib
from functools import lru_cache
from typing import Any

from .config import EmulatorConfig
from .content import IMAGE_OUTPUT_TOKENS, CallInput, text_tokens

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


@lru_cache(maxsize=16)
def answer_png(size: int, seed: str) -> bytes:
    """A valid 1x1 PNG of exactly `size` bytes (when size allows), unique per `seed`.

    The bulk is a private ancillary chunk of pseudo-random (incompressible) bytes, like a
    real image; cached because benchmarks ask for the same ~1.5 MB answer again and again.
    """
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    idat = _chunk(b"IDAT", zlib.compress(b"\x00" + hashlib.sha256(seed.encode()).digest()[:3]))
    iend = _chunk(b"IEND", b"")
    base = len(_PNG_SIGNATURE) + len(ihdr) + len(idat) + len(iend)
    filler = b""
    if size >= base + 12:
        filler = _chunk(b"emUd", hashlib.shake_256(seed.encode()).digest(size - base - 12))
    return _PNG_SIGNATURE + ihdr + idat + filler + iend


@lru_cache(maxsize=16)
def _png_json_string(size: int, seed: str) -> bytes:
    return b'"' + base64.b64encode(answer_png(size, seed)) + b'"'


# Image data is spliced in after serialization: json.dumps would otherwise rescan
# megabytes of base64 on every answer.
_SLOT = re.compile(rb'"@@image:(\d+):([^@"\\]*)@@"')


def render(
    doc: Any, *, indent: int | None = None, prefix: bytes = b"", suffix: bytes = b""
) -> bytes:
    """`prefix + json + suffix` (compact, or indented like Google), image slots spliced in."""
    separators = (",", ":") if indent is None else None
    text = json.dumps(doc, indent=indent, separators=separators).encode()
    pieces = [prefix]
    pos = 0
    for slot in _SLOT.finditer(text):
        pieces += [text[pos : slot.start()], _png_json_string(int(slot[1]), slot[2].decode())]
        pos = slot.end()
    pieces += [text[pos:], suffix]
    return b"".join(pieces)


def usage(call: CallInput, answer_text: str, has_image: bool) -> dict[str, int]:
    """usageMetadata for an answer."""
    out = text_tokens(answer_text) + (IMAGE_OUTPUT_TOKENS if has_image else 0)
    return {
        "promptTokenCount": call.prompt_tokens,
        "candidatesTokenCount": out,
        "totalTokenCount": call.prompt_tokens + out,
    }


def image_part(size: int, seed: str) -> dict[str, Any]:
    """An inlineData part carrying the generated image (a slot that `render` fills)."""
    return {"inlineData": {"mimeType": "image/png", "data": f"@@image:{size}:{seed}@@"}}


def candidate(parts: list[dict[str, Any]], *, final: bool) -> dict[str, Any]:
    """One candidate; only the final chunk of an answer carries finishReason."""
    cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if final:
        cand["finishReason"] = "STOP"
    cand["index"] = 0
    return cand


def generate_response(
    model: str, response_id: str, parts: list[dict[str, Any]], usage_metadata: dict[str, int]
) -> dict[str, Any]:
    """A complete GenerateContentResponse."""
    return {
        "candidates": [candidate(parts, final=True)],
        "usageMetadata": usage_metadata,
        "modelVersion": model,
        "responseId": response_id,
    }


def stream_chunks(
    model: str,
    response_id: str,
    texts: list[str],
    image: dict[str, Any] | None,
    usage_metadata: dict[str, int],
) -> list[dict[str, Any]]:
    """The answer split into len(texts) chunks; the image and finish go in the last one."""
    chunks: list[dict[str, Any]] = []
    for i, text in enumerate(texts):
        final = i == len(texts) - 1
        parts: list[dict[str, Any]] = [{"text": text}]
        if final and image is not None:
            parts.append(image)
        chunk: dict[str, Any] = {"candidates": [candidate(parts, final=final)]}
        if final:
            chunk["usageMetadata"] = usage_metadata
        chunk["modelVersion"] = model
        chunk["responseId"] = response_id
        chunks.append(chunk)
    return chunks


def sse_event(chunk: dict[str, Any]) -> bytes:
    """One SSE event framed as Google frames it: compact JSON, CRLF CRLF."""
    return render(chunk, prefix=b"data: ", suffix=b"\r\n\r\n")


def json_array_piece(chunk: dict[str, Any], first: bool) -> bytes:
    """One element of a non-SSE stream: `[{..}\\n` first, then `,\\r\\n{..}\\n`; `]` ends it."""
    return render(chunk, indent=2, prefix=b"[" if first else b",\r\n", suffix=b"\n")


def pretty_json(doc: Any) -> bytes:
    """A non-streamed JSON body the way Google prints it (2-space indent, newline)."""
    return render(doc, indent=2, suffix=b"\n")


def model_resource(config: EmulatorConfig, model: str, prefix: str = "models/") -> dict[str, Any]:
    """A Model resource as models.get / models.list return it."""
    display, input_limit, output_limit = config.model_info(model)
    return {
        "name": f"{prefix}{model}",
        "version": "001",
        "displayName": display,
        "description": f"Emulated {display}.",
        "inputTokenLimit": input_limit,
        "outputTokenLimit": output_limit,
        "supportedGenerationMethods": ["generateContent", "countTokens", "batchGenerateContent"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
    }
