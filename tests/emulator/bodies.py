"""Request-body builders for tests: the spellings real clients put on the wire."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Literal

from .responses import answer_png

API_KEY = "test-key"
KEY_HEADERS = {"x-goog-api-key": API_KEY, "Content-Type": "application/json"}

#: camel: v1beta / JS; snake: hand-written; sdk: google-genai 3.x (camel outside, snake inside).
Style = Literal["camel", "snake", "sdk"]


def reference_png(seed: str, size: int = 128) -> bytes:
    """A small valid PNG, distinct per `seed`, to use as a reference image."""
    return answer_png(size, f"reference|{seed}")


def image_digest(data: bytes) -> str:
    """The digest the emulator records for an inline image with these bytes."""
    return hashlib.sha256(data).hexdigest()


def _b64(data: bytes, urlsafe: bool) -> str:
    if urlsafe:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")
    return base64.b64encode(data).decode()


def _inline(data: bytes, style: Style, urlsafe: bool) -> dict[str, Any]:
    blob = {"data": _b64(data, urlsafe)}
    if style == "camel":
        return {"inlineData": {"mimeType": "image/png", **blob}}
    if style == "snake":
        return {"inline_data": {"mime_type": "image/png", **blob}}
    return {"inlineData": {"mime_type": "image/png", **blob}}


def generate_body(
    prompt: str,
    *images: bytes,
    file_uris: tuple[str, ...] = (),
    style: Style = "camel",
    urlsafe: bool = False,
) -> bytes:
    """A GenerateContentRequest: reference images first, then file references, then text."""
    parts: list[dict[str, Any]] = [_inline(image, style, urlsafe) for image in images]
    key, uri_key = ("file_data", "file_uri") if style == "snake" else ("fileData", "fileUri")
    parts += [{key: {uri_key: uri, "mimeType": "image/png"}} for uri in file_uris]
    parts.append({"text": prompt})
    return json.dumps({"contents": [{"role": "user", "parts": parts}]}).encode()
