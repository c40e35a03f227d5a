import pytest

from gateway.routing import Route, classify


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        (
            "POST",
            "/v1beta/models/gemini-3.1-flash-image-preview:generateContent",
            Route("generate", "gemini", "v1beta", "gemini-3.1-flash-image-preview"),
        ),
        (
            "POST",
            "/v1/models/gemini-2.5-flash:streamGenerateContent",
            Route("stream_generate", "gemini", "v1", "gemini-2.5-flash"),
        ),
        (
            "POST",
            "/v1beta/tunedModels/my-model:generateContent",
            Route("generate", "gemini", "v1beta", "tunedModels/my-model"),
        ),
        (
            "POST",
            "/v1beta/models/gemini-2.5-flash:countTokens",
            Route("passthrough", "gemini", "v1beta", "gemini-2.5-flash", "countTokens"),
        ),
        (
            "POST",
            "/v1/projects/p/locations/us-central1/publishers/google/models/m:generateContent",
            Route("generate", "vertex", "v1", "m"),
        ),
        (
            "POST",
            "/v1beta1/publishers/google/models/m:streamGenerateContent",
            Route("stream_generate", "vertex", "v1beta1", "m"),
        ),
        (
            "GET",
            "/v1beta1/projects/p/locations/l/endpoints",
            Route("passthrough", "vertex", "v1beta1"),
        ),
        ("POST", "/upload/v1beta/files", Route("upload", "gemini", "v1beta")),
        ("GET", "/v1beta/models", Route("passthrough", "gemini", "v1beta")),
        (
            "GET",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            Route("passthrough", "gemini", "v1beta"),
        ),
        ("GET", "/", Route("passthrough", "gemini", "")),
    ],
)
def test_classify(method: str, path: str, expected: Route) -> None:
    assert classify(method, path) == expected


def test_operation_labels_are_small_and_fixed() -> None:
    assert classify("POST", "/v1/models/m:generateContent").operation == "generate"
    assert classify("GET", "/v1/files/abc").operation == "other"
    assert classify("POST", "/v1/models/m:countTokens").operation == "countTokens"
