"""The aiohttp applications: the API host and the resumable-upload host."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDict

from . import catalogue, errors, files, generate
from .config import EmulatorConfig
from .records import Record
from .state import RECORD, STATE, EmulatorState

_VER = "{ver:v1|v1beta|v1beta1|v1alpha}"
_VERTEX = f"/{_VER}/projects/{{project}}/locations/{{location}}/publishers/google/models"
_EXPRESS = f"/{_VER}/publishers/google/models"
_MAX_BODY = 128 * 1024 * 1024

_ACTIONS = {
    "generateContent": generate.generate_content,
    "streamGenerateContent": generate.stream_generate_content,
    "countTokens": generate.count_tokens,
}


def authenticate(request: web.Request, config: EmulatorConfig) -> None:
    """API key (header or `?key=`) or OAuth bearer token; Google's error otherwise."""
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if key is not None:
        if key not in config.valid_keys:
            raise errors.api_key_invalid()
        return
    authorization = request.headers.get("Authorization", "")
    if authorization[:7].lower() == "bearer ":
        if authorization[7:].strip() not in config.valid_bearer_tokens:
            raise errors.unauthenticated()
        return
    raise errors.unauthenticated() if "project" in request.match_info else errors.api_key_invalid()


def _recording(host: str, *, auth: bool) -> Middleware:
    """Record every request, check credentials, and render GoogleError as Google's JSON."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        state = request.app[STATE]
        record = Record(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=CIMultiDict(request.headers),
            body=await request.read(),
            started=time.monotonic(),
            host=host,
        )
        request[RECORD] = record
        if state.config.keep_records:
            state.records.append(record)
        try:
            if auth and request.match_info.http_exception is None:
                authenticate(request, state.config)
            response = await handler(request)
        except errors.GoogleError as exc:
            response = exc.response()
        except web.HTTPException as exc:
            record.status = exc.status
            raise
        finally:
            if record.ended is None:
                record.ended = time.monotonic()
        record.status = response.status
        return response

    return middleware


async def model_action(request: web.Request) -> web.StreamResponse:
    """`POST .../models/{model}:{action}` on every path form, dispatched by action."""
    record = request[RECORD]
    model, _, action = request.match_info["target"].partition(":")
    record.model, record.action = model, action
    record.api_version = request.match_info["ver"]
    handler = _ACTIONS.get(action)
    if handler is None:
        raise errors.not_found(f"Method {action or '(none)'} is not supported for models/{model}.")
    return await handler(request)


def create_emulator(config: EmulatorConfig, state: EmulatorState | None = None) -> web.Application:
    """The API host. Without an upload host (see `create_upload_app`) it takes chunks too."""
    app = web.Application(middlewares=[_recording("api", auth=True)], client_max_size=_MAX_BODY)
    app[STATE] = state or EmulatorState(config)
    app.router.add_get(f"/{_VER}/models", catalogue.list_models)
    app.router.add_get(f"/{_VER}/models/{{target}}", catalogue.get_model)
    app.router.add_post(f"/{_VER}/models/{{target}}", model_action)
    for base in (_EXPRESS, _VERTEX):
        app.router.add_get(base, catalogue.list_models)
        app.router.add_get(f"{base}/{{target}}", catalogue.get_model)
        app.router.add_post(f"{base}/{{target}}", model_action)
    app.router.add_post(f"/upload/{_VER}/files", files.upload)
    app.router.add_get(f"/{_VER}/files", files.list_files)
    app.router.add_get(f"/{_VER}/files/{{file_id}}", files.get_file)
    app.router.add_delete(f"/{_VER}/files/{{file_id}}", files.delete_file)
    return app


def create_upload_app(state: EmulatorState) -> web.Application:
    """The upload host: only chunk commands, no API key (the upload_id is the credential)."""
    app = web.Application(middlewares=[_recording("upload", auth=False)], client_max_size=_MAX_BODY)
    app[STATE] = state
    app.router.add_post(f"/upload/{_VER}/files", files.upload_chunk)
    return app
