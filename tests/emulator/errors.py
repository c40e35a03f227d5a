"""Google's error JSON, byte-compatible with what generativelanguage.googleapis.com sends."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"


class GoogleError(Exception):
    """An error answered in Google's `{"error": {code, message, status, details}}` shape."""

    def __init__(
        self,
        code: int,
        status: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code} {status}: {message}")
        self.code = code
        self.status = status
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def payload(self) -> dict[str, Any]:
        """The JSON body Google sends for this error."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def response(self) -> web.Response:
        """Render as Google does: pretty-printed JSON, charset in the content type."""
        return web.Response(
            status=self.code,
            body=(json.dumps(self.payload(), indent=2) + "\n").encode(),
            content_type="application/json",
            charset="UTF-8",
            headers=self.headers,
        )


def api_key_invalid() -> GoogleError:
    """Missing or wrong API key (Google answers 400, not 401, for this)."""
    return GoogleError(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [
            {
                "@type": _ERROR_INFO,
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ],
    )


def unauthenticated() -> GoogleError:
    """Missing or wrong OAuth bearer token on a Vertex AI route."""
    return GoogleError(
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential. "
        "See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        [
            {
                "@type": _ERROR_INFO,
                "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
                "metadata": {"service": "aiplatform.googleapis.com"},
            }
        ],
    )


def model_not_found(model: str, version: str, action: str) -> GoogleError:
    """Google's wording for an unknown model."""
    return GoogleError(
        404,
        "NOT_FOUND",
        f"models/{model} is not found for API version {version}, or is not supported for "
        f"{action}. Call ListModels to see the list of available models and their supported "
        "methods.",
    )


def invalid_argument(message: str) -> GoogleError:
    """A 400 INVALID_ARGUMENT with `message`."""
    return GoogleError(400, "INVALID_ARGUMENT", message)


def invalid_json() -> GoogleError:
    """What Google answers for a body that is not JSON."""
    return invalid_argument(
        "Invalid JSON payload received. Unexpected token.\nRequest body is not valid JSON.\n^"
    )


def not_found(message: str) -> GoogleError:
    """A 404 NOT_FOUND with `message`."""
    return GoogleError(404, "NOT_FOUND", message)


def permission_denied(message: str) -> GoogleError:
    """A 403 PERMISSION_DENIED (Google's answer for a file that does not exist)."""
    return GoogleError(403, "PERMISSION_DENIED", message)


def scripted(code: int, retry_delay_s: int = 7) -> GoogleError:
    """The error a test asked for with `x-emulator-error` or an `emulator-error-N` model."""
    if code == 429:
        return GoogleError(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, head to: "
            "https://ai.google.dev/gemini-api/docs/rate-limits.",
            [
                {
                    "@type": _QUOTA_FAILURE,
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/"
                            "generate_content_free_tier_requests",
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        }
                    ],
                },
                {"@type": _RETRY_INFO, "retryDelay": f"{retry_delay_s}s"},
            ],
        )
    if code == 500:
        return GoogleError(
            500,
            "INTERNAL",
            "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting",
        )
    if code == 503:
        return GoogleError(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
    if code == 400:
        return invalid_argument("Request contains an invalid argument.")
    if code == 403:
        return permission_denied("The caller does not have permission")
    if code == 404:
        return not_found("Requested entity was not found.")
    return GoogleError(code, "UNKNOWN", f"Scripted error {code}.")
