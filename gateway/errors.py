"""Errors the gateway makes itself, rendered in Google's error JSON.

Every SDK parses `{"error": {"code", "message", "status"}}` into its normal API error, so a
gateway refusal reads like any other Gemini error, with a message a person can act on.
An `ErrorInfo` detail with domain `gemini-gateway` tells the two apart when it matters.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from aiohttp import web

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
DOMAIN = "gemini-gateway"


class GatewayError(Exception):
    """An answer the gateway gives instead of the upstream's; `reason` is a short CONSTANT."""

    def __init__(
        self, code: int, reason: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def status(self) -> str:
        return _STATUS_NAMES.get(self.code, "UNKNOWN")

    def body(self) -> dict[str, Any]:
        details: list[dict[str, Any]] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": self.reason,
                "domain": DOMAIN,
            }
        ]
        if self.retry_after is not None:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{self._retry_seconds()}s",
                }
            )
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "status": self.status,
                "details": details,
            }
        }

    def _retry_seconds(self) -> int:
        return max(1, math.ceil(self.retry_after or 0))

    def response(self) -> web.Response:
        headers = (
            {"Retry-After": str(self._retry_seconds())} if self.retry_after is not None else {}
        )
        return web.Response(
            status=self.code,
            body=json.dumps(self.body()).encode(),
            content_type="application/json",
            headers=headers,
        )


def bad_request(message: str, reason: str = "BAD_REQUEST") -> GatewayError:
    return GatewayError(400, reason, message)


def body_too_large(limit: int) -> GatewayError:
    return GatewayError(
        413,
        "BODY_TOO_LARGE",
        f"Request body exceeds the gateway limit of {limit} bytes "
        "(server.max_body_bytes). Send fewer or smaller inline images, "
        "or upload them with the Files API.",
    )


FailureKind = Literal["connect", "timeout", "reset"]

# kind -> (HTTP code, reason, message template, Retry-After)
_UPSTREAM_FAILURES: dict[str, tuple[int, str, str, float | None]] = {
    "connect": (
        502,
        "UPSTREAM_UNREACHABLE",
        "The gateway could not reach the Gemini API upstream: {}.",
        1.0,
    ),
    "reset": (
        502,
        "UPSTREAM_RESET",
        "The Gemini API upstream closed the connection early: {}.",
        1.0,
    ),
    "timeout": (
        504,
        "UPSTREAM_TIMEOUT",
        "The Gemini API upstream did not answer within {} (upstream.read_timeout_seconds).",
        None,
    ),
}


class UpstreamFailure(GatewayError):
    """The upstream could not be reached, timed out or broke the connection; `kind` is
    the metrics label."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        code, reason, template, retry_after = _UPSTREAM_FAILURES[kind]
        super().__init__(code, reason, template.format(detail), retry_after)
        self.kind: FailureKind = kind


def internal(detail: str = "unexpected gateway error") -> GatewayError:
    return GatewayError(
        500,
        "GATEWAY_INTERNAL",
        f"The gateway failed to handle this request ({detail}); "
        "see the gateway log for the request id.",
    )
