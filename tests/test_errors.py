import json

from gateway.errors import GatewayError, UpstreamFailure, body_too_large


def test_google_error_shape_with_retry() -> None:
    err = GatewayError(429, "QUEUE_LANE_FULL", "lane full", retry_after=2.2)
    resp = err.response()
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "3"
    assert resp.body is not None
    body = json.loads(bytes(resp.body))  # type: ignore[arg-type]
    assert body["error"]["code"] == 429
    assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert body["error"]["message"] == "lane full"
    types = [d["@type"] for d in body["error"]["details"]]
    assert "type.googleapis.com/google.rpc.RetryInfo" in types


def test_messages_say_what_to_do() -> None:
    assert "server.max_body_bytes" in body_too_large(10).message
    assert body_too_large(10).code == 413
    timeout = UpstreamFailure("timeout", "30 s")
    assert timeout.code == 504 and timeout.status == "DEADLINE_EXCEEDED"
    assert "Retry-After" not in timeout.response().headers
