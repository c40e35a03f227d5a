"""Files API: resumable upload (start on the API host, chunks on the upload host) and CRUD.

The chunk requests carry no API key, as with Google: the SDK sends them with only the
upload headers, and the unguessable upload_id is the credential. Every chunk answer,
errors included, carries `X-Goog-Upload-Status`, because the SDK retries a chunk whose
answer lacks it; an error closes the session (`final`), so the SDK raises the API error.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import errors
from .catalogue import json_response
from .content import parse_json_object
from .paging import page
from .state import RECORD, STATE

_GRANULARITY = str(8 * 1024 * 1024)


def _int_header(request: web.Request, name: str) -> int | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise errors.invalid_argument(f"Header {name} must be a non-negative integer.")
    return int(raw)


async def upload(request: web.Request) -> web.Response:
    """`POST /upload/{ver}/files` on the API host: start a session (or take chunks, if alone)."""
    state = request.app[STATE]
    record = request[RECORD]
    record.api_version = version = request.match_info["ver"]
    record.action = "upload"
    if "upload_id" in request.query:
        if state.upload_base is not None:
            raise errors.not_found("Upload commands must be sent to the X-Goog-Upload-URL.")
        return await upload_chunk(request)
    protocol = request.headers.get("X-Goog-Upload-Protocol", "").lower()
    command = request.headers.get("X-Goog-Upload-Command", "").lower()
    if protocol != "resumable" or command != "start":
        raise errors.invalid_argument(
            "Only X-Goog-Upload-Protocol: resumable with start is emulated."
        )
    body = await request.read()
    doc = parse_json_object(body) if body.strip() else {}
    meta = doc.get("file")
    if not isinstance(meta, dict):
        meta = {}
    api_base = f"{request.scheme}://{request.host}"
    session = state.files.start(
        meta,
        mime_type=request.headers.get("X-Goog-Upload-Header-Content-Type"),
        declared_size=_int_header(request, "X-Goog-Upload-Header-Content-Length"),
        api_base=api_base,
        api_version=version,
    )
    record.upload_id = session.upload_id
    url = (
        f"{state.upload_base or api_base}/upload/{version}/files"
        f"?upload_id={session.upload_id}&upload_protocol=resumable"
    )
    return web.Response(
        headers={
            "X-Goog-Upload-Status": "active",
            "X-Goog-Upload-URL": url,
            "X-Goog-Upload-Control-URL": url,
            "X-Goog-Upload-Chunk-Granularity": _GRANULARITY,
        }
    )


async def upload_chunk(request: web.Request) -> web.Response:
    """`upload`, `finalize`, `query` and `cancel` commands for one session."""
    try:
        return await _upload_chunk(request)
    except errors.GoogleError as exc:
        exc.headers.setdefault("X-Goog-Upload-Status", "final")
        raise


async def _upload_chunk(request: web.Request) -> web.Response:
    state = request.app[STATE]
    record = request[RECORD]
    record.api_version = request.match_info["ver"]
    record.action = "upload"
    record.upload_id = upload_id = request.query.get("upload_id", "")
    session = state.files.session(upload_id)
    commands = {
        c.strip() for c in request.headers.get("X-Goog-Upload-Command", "").lower().split(",")
    }
    if "cancel" in commands:
        del state.files.sessions[upload_id]
        return web.Response(headers={"X-Goog-Upload-Status": "cancelled"})
    if "query" in commands:
        return web.Response(
            headers={
                "X-Goog-Upload-Status": "active",
                "X-Goog-Upload-Size-Received": str(len(session.received)),
            }
        )
    if not commands & {"upload", "finalize"}:
        raise errors.invalid_argument(
            "X-Goog-Upload-Command must be upload, finalize, query or cancel."
        )
    if "upload" in commands:
        offset = _int_header(request, "X-Goog-Upload-Offset")
        if offset is None:
            raise errors.invalid_argument("X-Goog-Upload-Offset is required with upload.")
        state.files.append(session, offset, await request.read())
    if "finalize" not in commands:
        return web.Response(
            headers={
                "X-Goog-Upload-Status": "active",
                "X-Goog-Upload-Size-Received": str(len(session.received)),
            }
        )
    stored = state.files.finalize(session)
    response = json_response({"file": stored.resource()})
    response.headers["X-Goog-Upload-Status"] = "final"
    return response


def _file_name(request: web.Request) -> str:
    request[RECORD].api_version = request.match_info["ver"]
    return f"files/{request.match_info['file_id']}"


def _missing(name: str) -> errors.GoogleError:
    file_id = name.removeprefix("files/")
    return errors.permission_denied(
        f"You do not have permission to access the File {file_id} or it may not exist."
    )


async def get_file(request: web.Request) -> web.Response:
    """`GET /{ver}/files/{id}`: the File resource."""
    name = _file_name(request)
    stored = request.app[STATE].files.files.get(name)
    if stored is None:
        raise _missing(name)
    return json_response(stored.resource())


async def delete_file(request: web.Request) -> web.Response:
    """`DELETE /{ver}/files/{id}`: `{}` like Google."""
    name = _file_name(request)
    if request.app[STATE].files.files.pop(name, None) is None:
        raise _missing(name)
    return json_response({})


async def list_files(request: web.Request) -> web.Response:
    """`GET /{ver}/files`: a page of files, no `files` key at all when there are none."""
    request[RECORD].api_version = request.match_info["ver"]
    stored = list(request.app[STATE].files.files.values())
    items, next_token = page(stored, request.query, default_size=10)
    doc: dict[str, Any] = {}
    if items:
        doc["files"] = [f.resource() for f in items]
    if next_token:
        doc["nextPageToken"] = next_token
    return json_response(doc)
