"""The real JavaScript SDK (`@google/genai`, pinned in tests/js) works through the gateway.

`tests/js/sdk_check.mjs` runs generate (an inline reference image), stream, countTokens,
models.list, a Files API upload and two API errors with
`new GoogleGenAI({apiKey, httpOptions: {baseUrl}})`, and prints one JSON object. It runs
straight at the emulator and through the gateway; the results must be equal.

Needs `node` and `npm ci --prefix tests/js`. Without them the tests skip, except under CI
(`CI=true`), where that is a failure.

The JS SDK sends upload chunks to the host of its `baseUrl`, whatever host the
`X-Goog-Upload-URL` names (it keeps only the path and query). Google issues that URL on
the API host, so this is harmless there; the emulator issues it on a separate upload host
and refuses chunks on the API host. The direct run therefore switches the emulator to
Google's single-host behaviour (`upload_base = None`); the gateway run keeps the separate
host, so the bytes must really travel gateway -> upload host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.emulator import character_of, expected_character
from tests.emulator.bodies import image_digest, reference_png
from tests.harness import Stack, threaded_stack

JS_DIR = Path(__file__).resolve().parent / "js"
SCRIPT = JS_DIR / "sdk_check.mjs"
SDK_DIR = JS_DIR / "node_modules" / "@google" / "genai"
PINNED = json.loads((JS_DIR / "package.json").read_text())["dependencies"]["@google/genai"]
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
NB2 = "gemini-3.1-flash-image-preview"
PROMPT = "Draw the same character waving."  # as in sdk_check.mjs
KEY = "test-key"
#: The API version @google/genai uses for the Gemini API when none is configured.
JS_DEFAULT_API_VERSION = "v1"


def _unavailable(message: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{message}; CI must prove the JavaScript SDK")
    pytest.skip(message)


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        _unavailable("`node` is not on PATH")
    if not (SDK_DIR / "package.json").is_file():
        _unavailable("@google/genai is not installed (npm ci --prefix tests/js)")
    return path


@pytest.fixture(scope="module")
def stack(node: str) -> Iterator[Stack]:
    with threaded_stack(cache={"backend": "off"}) as running:
        yield running


@contextmanager
def single_upload_host(stack: Stack) -> Iterator[None]:
    """Let the emulator issue upload URLs on its API host and take chunks there, as Google."""
    state = stack.emulator.state
    saved, state.upload_base = state.upload_base, None
    try:
        yield
    finally:
        state.upload_base = saved


def run_check(
    node: str, base_url: str, image_file: Path, api_version: str | None
) -> dict[str, Any]:
    args = [node, str(SCRIPT), base_url, "--api-key", KEY, "--image", str(image_file)]
    if api_version:
        args += ["--api-version", api_version]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GEMINI_"))}
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=60, env=env, cwd=JS_DIR, check=False
    )
    assert done.returncode == 0, f"sdk_check.mjs failed ({done.returncode}):\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def error_of(step: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] | None = step.get("error")
    assert error is not None, f"expected an API error, got {step}"
    return error


@pytest.mark.parametrize("api_version", [None, "v1beta"])
def test_js_sdk_through_gateway_matches_direct(
    node: str, stack: Stack, tmp_path: Path, api_version: str | None
) -> None:
    image = reference_png(f"js-sdk-{api_version}")
    image_file = tmp_path / "reference.png"
    image_file.write_bytes(image)

    with single_upload_host(stack):
        direct = run_check(node, stack.emulator.url, image_file, api_version)
    before = len(stack.emulator.records)
    via = run_check(node, stack.url, image_file, api_version)
    seen = stack.emulator.records[before:]

    assert via["sdk"]["version"] == direct["sdk"]["version"] == PINNED
    assert via["results"] == direct["results"]
    results = via["results"]

    # Successful steps really succeeded, with the content the emulator derives from the call.
    for name in ("generate", "stream", "countTokens", "models", "upload"):
        assert "error" not in results[name], f"{name}: {results[name]}"
    expected = expected_character({image_digest(image)}, PROMPT)
    assert character_of(results["generate"]["response"]) == expected
    assert results["generate"]["imageParts"] == 1
    assert len(results["stream"]["chunks"]) == stack.emulator.config.stream_events
    assert character_of(results["stream"]["chunks"]) == expected
    assert results["countTokens"]["totalTokens"] > 0
    assert f"models/{NB2}" in results["models"]["firstPage"]

    # The SDK's own error class, with Google's status and body.
    missing = error_of(results["unknownModel"])
    assert missing["isApiError"] and missing["status"] == 404
    assert missing["body"]["error"]["status"] == "NOT_FOUND"
    quota = error_of(results["scripted429"])  # per-request header via config.httpOptions
    assert quota["isApiError"] and quota["status"] == 429
    assert quota["body"]["error"]["status"] == "RESOURCE_EXHAUSTED"

    # The upload: start on the API host, bytes through the gateway to the upload host.
    upload = results["upload"]
    assert upload["file"]["sizeBytes"] == str(len(image)) and upload["sameName"]
    name = via["upload_name"]
    assert name and stack.emulator.uploads[name] == image
    chunks = [r for r in seen if r.host == "upload"]
    assert [r.body for r in chunks] == [image]
    assert chunks[0].headers.get("X-Goog-Upload-Command") == "upload, finalize"
    starts = [r for r in seen if r.host == "api" and r.action == "upload"]
    assert len(starts) == 1 and starts[0].headers.get("X-Goog-Upload-Command") == "start"

    # Every call the gateway relayed used the API version the SDK chose.
    version = api_version or JS_DEFAULT_API_VERSION
    assert {r.api_version for r in seen} == {version}
    assert all(r.path.startswith((f"/{version}/", f"/upload/{version}/")) for r in seen)
    generate = [r for r in seen if r.is_generate and r.status == 200]
    assert [r.action for r in generate] == ["generateContent", "streamGenerateContent"]
    assert all(r.image_digests == {image_digest(image)} for r in generate)
