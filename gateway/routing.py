"""Which Gemini or Vertex AI operation a method + path is. Pure: no I/O, no state.

The gateway only needs to tell four things apart: generate calls (serialized and cached),
streaming generate calls, resumable uploads (whose upload URL must be rewritten) and
everything else, which passes through untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["generate", "stream_generate", "upload", "passthrough"]
Api = Literal["gemini", "vertex"]

_VERSION = r"(?P<version>v\d+(?:(?:alpha|beta)\d*)?)"
_MODEL = r"(?P<model>[^/:]+)"
_ACTION = r"(?P<action>[A-Za-z]+)"
_GEMINI_MODEL = re.compile(rf"^/{_VERSION}/(?P<coll>models|tunedModels)/{_MODEL}:{_ACTION}$")
_VERTEX_MODEL = re.compile(
    rf"^/{_VERSION}/(?:projects/[^/]+/locations/[^/]+/)?publishers/[^/]+/models/{_MODEL}:{_ACTION}$"
)
_VERTEX_ANY = re.compile(rf"^/{_VERSION}/(?:projects|publishers)/")
_UPLOAD = re.compile(rf"^/upload/{_VERSION}/")
_ANY_VERSION = re.compile(rf"^/{_VERSION}/")

_ACTION_KINDS: dict[str, Kind] = {
    "generateContent": "generate",
    "streamGenerateContent": "stream_generate",
}


@dataclass(frozen=True, slots=True)
class Route:
    kind: Kind
    api: Api
    version: str = ""
    model: str = ""
    action: str = ""

    @property
    def operation(self) -> str:
        """A small, fixed label for logs and metrics (never the path)."""
        return self.kind if self.kind != "passthrough" else (self.action or "other")

    @property
    def is_generate(self) -> bool:
        return self.kind in ("generate", "stream_generate")


def classify(method: str, path: str) -> Route:
    """Map a request to its operation; unknown paths are passthrough to the Gemini API."""
    if method == "POST":
        match = _GEMINI_MODEL.match(path)
        api: Api = "gemini"
        if match is None:
            match = _VERTEX_MODEL.match(path)
            api = "vertex"
        if match is not None:
            action = match["action"]
            model = match["model"]
            if match.groupdict().get("coll") == "tunedModels":
                model = f"tunedModels/{model}"
            kind = _ACTION_KINDS.get(action, "passthrough")
            return Route(
                kind, api, match["version"], model, action if kind == "passthrough" else ""
            )
    upload = _UPLOAD.match(path)
    if upload is not None:
        return Route("upload", "gemini", upload["version"])
    vertex = _VERTEX_ANY.match(path)
    if vertex is not None:
        return Route("passthrough", "vertex", vertex["version"])
    version = _ANY_VERSION.match(path)
    return Route("passthrough", "gemini", version["version"] if version else "")
