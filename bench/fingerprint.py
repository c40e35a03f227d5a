"""Cost of `parse_body` against one SHA-256 pass over the same body.

The gateway parses every generate body on the request path, and bodies carry several
multi-megabyte base64 images, so parsing must stay within a small multiple of merely
hashing the bytes. Run as `python -m bench.fingerprint`; `run()` returns the rows.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from gateway import fingerprint
from gateway.gemini import parse_body

TARGET = 2.5
IMAGES = 4
IMAGE_BYTES = 5 * 1024 * 1024


def build_body(
    *,
    snake: bool,
    encode: Callable[[bytes], bytes] = base64.b64encode,
    keys: tuple[str, str] | None = None,
) -> bytes:
    """A generate body with IMAGES random images plus some text and config."""
    rng = random.Random(42)
    images = [encode(rng.randbytes(IMAGE_BYTES)).decode() for _ in range(IMAGES)]
    inline, mime = keys or (("inline_data", "mime_type") if snake else ("inlineData", "mimeType"))
    parts: list[dict[str, Any]] = [{"text": "Keep the character consistent. " * 50}]
    parts += [{inline: {mime: "image/png", "data": data}} for data in images]
    config = "generation_config" if snake else "generationConfig"
    modalities = "response_modalities" if snake else "responseModalities"
    body = {
        "contents": [{"role": "user", "parts": parts}],
        config: {modalities: ["TEXT", "IMAGE"], "temperature": 0.4},
    }
    return json.dumps(body).encode()


def _python_sdk() -> bytes:
    """What google-genai for Python sends: URL-safe padded base64, mixed key styles."""
    keys = ("inlineData", "mime_type")
    return build_body(snake=False, encode=base64.urlsafe_b64encode, keys=keys)


def _escaped_slashes(snake: bool) -> bytes:
    return build_body(snake=snake).replace(b"/", b"\\/")  # PHP's json_encode default


def _urlsafe_unpadded(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


CASES: dict[str, tuple[Callable[[], bytes], bool]] = {
    # name: (body factory, whether the 2.5x target applies)
    "camelCase, standard base64": (lambda: build_body(snake=False), True),
    "snake_case, standard base64": (lambda: build_body(snake=True), True),
    "Python SDK form, url-safe base64": (_python_sdk, True),
    "camelCase, url-safe unpadded": (
        lambda: build_body(snake=False, encode=_urlsafe_unpadded),
        False,
    ),
    "snake_case, JSON-escaped slashes": (lambda: _escaped_slashes(True), False),
}


def _sha256(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


def _times(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm up
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def run(runs: int = 7) -> list[dict[str, Any]]:
    """One row per case: best and median milliseconds, ratio of the bests, pass/fail."""
    rows = []
    for case, (factory, gated) in CASES.items():
        body = factory()
        sha = _times(functools.partial(_sha256, body), runs)
        parse = _times(functools.partial(parse_body, body), runs)
        ratio = min(parse) / min(sha)
        rows.append(
            {
                "case": case,
                "body_mb": round(len(body) / 1e6, 1),
                "sha256_ms": round(min(sha), 2),
                "sha256_median_ms": round(statistics.median(sha), 2),
                "parse_ms": round(min(parse), 2),
                "parse_median_ms": round(statistics.median(parse), 2),
                "ratio": round(ratio, 2),
                "target": TARGET if gated else None,
                "pass": ratio <= TARGET if gated else None,
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of `run()` rows; ungated cases are shown as info."""
    lines = [
        "| case | MB | sha256 ms best/median | parse ms best/median | ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        target = row["target"] if row["target"] is not None else "-"
        result = "info" if row["pass"] is None else ("pass" if row["pass"] else "FAIL")
        lines.append(
            f"| {row['case']} | {row['body_mb']} "
            f"| {row['sha256_ms']} / {row['sha256_median_ms']} "
            f"| {row['parse_ms']} / {row['parse_median_ms']} "
            f"| {row['ratio']} | {target} | {result} |"
        )
    return "\n".join(lines)


def backend() -> str:
    """Which base64 helper is in use for URL-safe text."""
    return "pybase64 (SIMD)" if fingerprint._simd is not None else "stdlib"


def main() -> None:
    print(f"URL-safe translation: {backend()}\n")
    print(table(run()))


if __name__ == "__main__":
    main()
