import structlog
from structlog.testing import capture_logs

from gateway.logs import redact, redact_text

KEY = "AIza" + "x" * 35


def test_redact_text_removes_keys_tokens_and_payloads() -> None:
    text = (
        f"x-goog-api-key: {KEY} url=/v1/models?key={KEY}&alt=sse "
        f"Authorization: Bearer ya29.secret-token data={'QUJD' * 100}"
    )
    out = redact_text(text)
    assert KEY not in out
    assert "ya29.secret-token" not in out
    assert "QUJD" * 10 not in out
    assert "alt=sse" in out


def test_processor_scrubs_nested_values() -> None:
    with capture_logs(processors=[redact]) as logs:
        structlog.get_logger().info("boom", error=f"failed for {KEY}", extra={"k": [KEY]})
    assert KEY not in repr(logs)


def test_stdlib_records_are_redacted_json(capsys) -> None:  # type: ignore[no-untyped-def]
    import json
    import logging

    from gateway.logs import configure

    configure("json", "info")
    try:
        try:
            raise ValueError(f"bad line /v1beta/models?key={KEY}")
        except ValueError:
            logging.getLogger("aiohttp.server").exception("Error handling request")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    err = capsys.readouterr().err
    assert KEY not in err
    line = json.loads(err.strip().splitlines()[-1])
    assert line["event"] == "Error handling request" and line["level"] == "error"
    assert "ValueError" in line["exception"]
