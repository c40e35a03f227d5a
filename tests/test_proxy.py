"""Upload URL rewriting: the token opens exactly the URL the gateway was given."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway.errors import GatewayError
from gateway.proxy import UPLOAD_PREFIX, _verify, rewrite_upload_url

SECRET = b"s" * 32
ORIGINAL = "https://upload.example:8443/upload/v1beta/files?upload_id=abc&upload_protocol=resumable"


def split(rewritten: str) -> tuple[str, str]:
    token, slash, tail = rewritten.split(UPLOAD_PREFIX, 1)[1].partition("/")
    return token, slash + tail


def test_rewrite_points_back_at_the_gateway_and_verifies() -> None:
    request = make_mocked_request("POST", "/upload/v1beta/files", headers={"Host": "gw:8080"})
    rewritten = rewrite_upload_url(ORIGINAL, request, SECRET)
    assert rewritten.startswith("http://gw:8080/_gateway/upload/")
    token, tail = split(rewritten)
    assert tail == "/upload/v1beta/files?upload_id=abc&upload_protocol=resumable"
    assert _verify(token, tail, SECRET) == ORIGINAL


def test_forwarded_proto_is_honoured() -> None:
    request = make_mocked_request(
        "POST", "/x", headers={"Host": "gw.example", "X-Forwarded-Proto": "https"}
    )
    assert rewrite_upload_url(ORIGINAL, request, SECRET).startswith("https://gw.example/")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda token, tail: (token, tail.replace("abc", "abd")),
        lambda token, tail: (token, "/v1beta/files"),
        lambda token, tail: ("aHR0cDovLzE2OS4yNTQuMTY5LjI1NA." + token.split(".")[1], tail),
        lambda token, tail: ("garbage", tail),
        lambda token, tail: ("", tail),
    ],
)
def test_tampered_tokens_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    request = make_mocked_request("POST", "/x", headers={"Host": "gw"})
    token, tail = mutate(*split(rewrite_upload_url(ORIGINAL, request, SECRET)))
    with pytest.raises(GatewayError) as info:
        _verify(token, tail, SECRET)
    assert info.value.code == 403


def test_another_secret_cannot_verify() -> None:
    request = make_mocked_request("POST", "/x", headers={"Host": "gw"})
    token, tail = split(rewrite_upload_url(ORIGINAL, request, SECRET))
    with pytest.raises(GatewayError):
        _verify(token, tail, b"t" * 32)
