"""structlog setup: one JSON (or console) line per event, with secrets scrubbed last.

The access log only ever receives fields we choose, but a redaction processor still runs
over every string so that an API key, bearer token or base64 payload that slips into a
message (an exception text, say) never reaches the output.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

_SECRETS = [
    (re.compile(r"AIza[0-9A-Za-z_\-]{20,}"), "AIza***"),
    (re.compile(r"(?i)(bearer\s+)[^\s\"',]+"), r"\1***"),
    (re.compile(r"(?i)([?&](?:key|access_token)=)[^&\s\"']+"), r"\1***"),
    (re.compile(r"(?i)(x-goog-api-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',]+"), r"\1***"),
    (re.compile(r"[A-Za-z0-9+/_\-]{200,}={0,2}"), "<base64 elided>"),
]


# Every pattern above needs one of these words or a 200-character run, so the usual
# access-log values (ids, model names, operations) skip the regexes entirely.
_MARKERS = ("aiza", "bearer", "key", "token")
_LONG_RUN = 200


def redact_text(text: str) -> str:
    if len(text) < _LONG_RUN:
        lowered = text.lower()
        if not any(marker in lowered for marker in _MARKERS):
            return text
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: _redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(item) for item in value)
    return value


def redact(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """structlog processor: scrub secrets and payloads from every value."""
    return {key: _redact(value) for key, value in event.items()}


def configure(log_format: str = "json", level: str = "info") -> None:
    """Configure structlog once for the process, and route the standard library's
    loggers (aiohttp's among them) through the same redaction and renderer."""
    shared: list[Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *shared,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)


def get_logger() -> Any:
    return structlog.get_logger("gemini_gateway")
