"""models.list and models.get, for the Developer API and Vertex AI publisher paths."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import errors
from .paging import page
from .responses import model_resource, pretty_json
from .state import RECORD, STATE


def json_response(doc: Any) -> web.Response:
    """A 200 JSON body printed the way Google prints it."""
    return web.Response(body=pretty_json(doc), content_type="application/json", charset="UTF-8")


def _prefix(request: web.Request) -> str:
    vertex = "publishers" in request.path.split("/")
    return "publishers/google/models/" if vertex else "models/"


async def list_models(request: web.Request) -> web.Response:
    """A page of models (Vertex calls the list `publisherModels`)."""
    config = request.app[STATE].config
    request[RECORD].api_version = request.match_info["ver"]
    names, next_token = page(config.models, request.query, default_size=50)
    prefix = _prefix(request)
    key = "models" if prefix == "models/" else "publisherModels"
    doc: dict[str, Any] = {key: [model_resource(config, n, prefix) for n in names]}
    if next_token:
        doc["nextPageToken"] = next_token
    return json_response(doc)


async def get_model(request: web.Request) -> web.Response:
    """One model, or Google's 404 for an unknown name."""
    config = request.app[STATE].config
    record = request[RECORD]
    model = request.match_info["target"]
    record.model = model
    record.api_version = version = request.match_info["ver"]
    if not config.knows(model):
        raise errors.not_found(f"Model is not found: models/{model} for api version {version}")
    return json_response(model_resource(config, model, _prefix(request)))
