"""Reading a GenerateContentRequest: prompt text and reference-image digests.

Both spellings occur on the wire: google-genai 3.x sends `inlineData` with a snake_case
`mime_type` inside, older SDKs and JS send camelCase throughout, and hand-written
clients send snake_case throughout. Base64 may be standard, unpadded or URL-safe.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .errors import invalid_argument, invalid_json

#: Tokens Gemini bills per input image, and per generated image.
IMAGE_INPUT_TOKENS = 258
IMAGE_OUTPUT_TOKENS = 1290


@dataclass(frozen=True)
class CallInput:
    """What the emulator needs from a request body."""

    prompt: str
    image_digests: frozenset[str]
    image_count: int

    @property
    def prompt_tokens(self) -> int:
        """A stable token estimate: ~4 characters per token plus a flat cost per image."""
        return text_tokens(self.prompt) + IMAGE_INPUT_TOKENS * self.image_count


def text_tokens(text: str) -> int:
    """Gemini-like token estimate for `text` (at least 1 for a non-empty text)."""
    return math.ceil(len(text) / 4)


def decode_base64(data: str) -> bytes | None:
    """Decode standard, unpadded or URL-safe base64; None when it is not base64 at all.

    The common spellings take one C-level pass (bodies carry megabytes of it); only odd
    input (embedded whitespace, mixed alphabets) pays for a cleanup.
    """
    padded = data + "=" * (-len(data) % 4)
    try:
        if "-" in data or "_" in data:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        pass
    cleaned = "".join(data.split()).replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


@lru_cache(maxsize=16)
def inline_digest(data: str) -> str:
    """sha256 hex of the decoded bytes (of the text itself, if it is not base64).

    Cached on the text: benchmarks resend the same megabyte-sized references, and
    hashing a str is several times cheaper than decoding it again.
    """
    raw = decode_base64(data)
    return hashlib.sha256(raw if raw is not None else data.encode()).hexdigest()


def _field(obj: dict[str, Any], camel: str, snake: str) -> Any:
    return obj.get(camel, obj.get(snake))


def _is_image(mime: Any) -> bool:
    # A fileData part may omit its mime type; it can still be a reference image.
    return mime is None or (isinstance(mime, str) and mime.startswith("image/"))


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or Google's 400 for anything else."""
    try:
        doc = json.loads(body) if body else None
    except (ValueError, RecursionError):
        raise invalid_json() from None
    if not isinstance(doc, dict):
        raise invalid_json()
    return doc


def _contents(doc: dict[str, Any]) -> list[dict[str, Any]]:
    contents = doc.get("contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list):
        contents = []
    system = _field(doc, "systemInstruction", "system_instruction")
    if isinstance(system, dict):
        contents = [*contents, system]
    return [c for c in contents if isinstance(c, dict)]


def read_call(doc: dict[str, Any], *, require_contents: bool = True) -> CallInput:
    """Prompt text and image digests of a generate/countTokens body.

    A reference image is an inline blob or a file reference whose mime type is image/*
    (or absent, for file references). Inline images count by the sha256 of their decoded
    bytes, file references by their URI, so the same bytes sent twice share a digest.
    """
    contents = _contents(doc)
    if require_contents and not doc.get("contents"):
        raise invalid_argument("* GenerateContentRequest.contents: contents is not specified\n")
    texts: list[str] = []
    digests: set[str] = set()
    images = 0
    for content in contents:
        parts = content.get("parts")
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            inline = _field(part, "inlineData", "inline_data")
            if isinstance(inline, dict) and _is_image(_field(inline, "mimeType", "mime_type")):
                data = inline.get("data")
                if isinstance(data, str):
                    digests.add(inline_digest(data))
                    images += 1
            ref = _field(part, "fileData", "file_data")
            if isinstance(ref, dict) and _is_image(_field(ref, "mimeType", "mime_type")):
                uri = _field(ref, "fileUri", "file_uri")
                if isinstance(uri, str):
                    digests.add(uri)
                    images += 1
    return CallInput(prompt="\n".join(texts), image_digests=frozenset(digests), image_count=images)
