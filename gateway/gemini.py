"""Generate-call bodies: reference-image fingerprints, canonical form and cache key.

Pure functions over bytes. The expensive part of a body is its inline images (up to
~100 MB of base64), so they are never turned into Python strings on the usual path: a
byte scan finds every large `"data": "..."` string, hashes it in place (or decodes it
when it holds JSON escapes) and hands `json` a small skeleton in which each such string
is a `NaN` placeholder. The parse, the walk and the canonical dump then only see the
small rest of the body.

Canonical form: every protobuf field name is spelled in camelCase (the API accepts
`mime_type` and `mimeType` alike, and the SDKs send both), object keys are sorted,
separators are compact, and each inline image's `data` becomes its fingerprint.
Everything a user names is kept exactly as sent: keys of `Struct` / free-form fields
(`functionCall.args`, `functionResponse.response`, `partMetadata`, `labels`, the JSON
Schema fields ...), keys of Schema `properties` / `defs` maps, and every string value.
A false "same" would serve one caller another's answer; a false "different" only costs a
cache miss, so whatever is unsure is kept verbatim.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.fingerprint import (
    Buffer,
    file_fingerprint,
    image_fingerprint,
    image_fingerprint_buffer,
    plain_image_fingerprint,
)

__all__ = ["ParsedBody", "cache_key", "parse_body"]

_KEY_VERSION = b"gemini-gateway/cache-key/v1"
_DATA_KEY = b'"data"'
_MIN_CUT = 1024  # smaller strings are cheaper to let `json` parse
_JSON_WS = b" \t\n\r"
_UTF8 = ("utf-8", "utf-8-sig")
_SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")

# Message fields whose value is free-form (Struct / Value / map<string, string>).
_VERBATIM_FIELDS = frozenset(
    {
        "args",  # FunctionCall, ToolCall
        "partMetadata",
        "labels",
        "customConfigs",
        "headers",
        "responseJsonSchema",
        "_responseJsonSchema",
        "parametersJsonSchema",
        "jsonSchema",
    }
)
_SCHEMA_FIELDS = frozenset({"responseSchema", "parameters"})
_SCHEMA_MAPS = frozenset({"properties", "defs", "$defs"})
_SUBSCHEMAS = frozenset({"items", "anyOf"})


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """What the pipeline needs from a generate body.

    `fingerprints`: unique, sorted fingerprints of inline and file parts (the lane keys).
    `canonical`: the body in canonical form for the cache key; None if not a JSON object.
    `image_bytes`: approximate decoded size of all inline data, for queue byte budgets.
    """

    fingerprints: tuple[str, ...] = ()
    canonical: bytes | None = None
    image_bytes: int = 0


def parse_body(body: Buffer) -> ParsedBody:
    """Fingerprints and canonical form of a generate body; never raises on bad input."""
    tree = _load(body)
    if not isinstance(tree, dict):
        return ParsedBody()
    walker = _Walker()
    try:
        canon = walker.value(tree, _Kind.MESSAGE, "")
        text = json.dumps(canon, sort_keys=True, separators=(",", ":"), default=_restore)
    except (ValueError, RecursionError):  # too deep, or a cut string was not valid JSON
        return ParsedBody()
    fingerprints = tuple(sorted(walker.fingerprints))
    return ParsedBody(fingerprints, text.encode("ascii"), walker.image_bytes)


def cache_key(*, operation: str, api_version: str, model: str, scope: str, canonical: bytes) -> str:
    """Hex SHA-256 over length-prefixed parts, so no two part lists share an encoding."""
    digest = hashlib.sha256()
    parts = (operation, api_version, model, scope)
    for part in (_KEY_VERSION, *(p.encode("utf-8", "surrogatepass") for p in parts), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


# -- loading ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Blob:
    """A JSON string left in the body bytes: fingerprinted in place or decoded on demand."""

    body: Buffer
    start: int  # just past the opening quote
    end: int  # at the closing quote

    def fingerprint(self) -> str:
        plain = plain_image_fingerprint(self.body, self.start, self.end)
        if plain is not None:
            return plain
        if self.body.find(b"\\", self.start, self.end) == -1:
            return image_fingerprint_buffer(self.body, self.start, self.end)
        return image_fingerprint(self.text())  # JSON escapes, e.g. PHP's `\/`

    def text(self) -> str:
        """The string's value; raises ValueError when it is not valid JSON text."""
        raw = self.body[self.start - 1 : self.end + 1].decode("utf-8")
        if raw.find("\\") == -1:
            return raw[1:-1]
        value = json.loads(raw)
        if not isinstance(value, str):
            raise ValueError("not a JSON string")
        return value


class _StrayConstant(Exception):
    """The body has its own NaN/Infinity, so placeholders cannot be told apart."""


@dataclass(slots=True)
class _Feeder:
    """`parse_constant` hook: the n-th constant `json` meets is the n-th cut string."""

    blobs: list[_Blob]
    used: int = 0

    def __call__(self, name: str) -> _Blob:
        if name != "NaN" or self.used >= len(self.blobs):
            raise _StrayConstant(name)
        self.used += 1
        return self.blobs[self.used - 1]


def _load(body: Buffer) -> object:
    """`json.loads` of the body with large inline data cut out; None if not JSON."""
    try:
        encoding = json.detect_encoding(body)
        blobs = _find_blobs(body) if encoding in _UTF8 else []
        if blobs:
            try:
                return _loads(_skeleton(body, blobs), encoding, _Feeder(blobs))
            except _StrayConstant:
                pass
        return _loads(body, encoding, None)
    except (ValueError, RecursionError):
        return None


def _loads(data: Buffer, encoding: str, hook: _Feeder | None) -> object:
    """Decode strictly first: `json.loads(bytes)` uses a much slower error handler."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        text = data.decode(encoding, "surrogatepass")
    return json.loads(text, parse_constant=hook)


def _find_blobs(body: Buffer) -> list[_Blob]:
    """Every large `"data": "..."` string value, in document order.

    In valid JSON a match is always a real key and its value string: the quote after
    `data` cannot be escaped, so it closes the key, and `:` then `"` open the value,
    which ends at the next unescaped quote. Swapping that string token for another value
    token keeps a valid body valid and an invalid one invalid (bar the string's own
    content, which `_Blob.text` checks when it is needed).
    """
    blobs: list[_Blob] = []
    pos = 0
    while (hit := body.find(_DATA_KEY, pos)) != -1:
        pos = hit + 1
        start = _value_string_start(body, hit + len(_DATA_KEY))
        if start < 0:
            continue
        end = _string_end(body, start)
        if end < 0:
            break
        if end - start >= _MIN_CUT:
            blobs.append(_Blob(body, start, end))
        pos = end + 1
    return blobs


def _string_end(body: Buffer, pos: int) -> int:
    """Offset of the quote closing the JSON string whose content starts at pos, or -1."""
    end = body.find(b'"', pos)
    while end > 0:
        run = end
        while run > pos and body[run - 1] == 0x5C:  # backslash
            run -= 1
        if (end - run) % 2 == 0:
            return end
        end = body.find(b'"', end + 1)
    return end


def _value_string_start(body: Buffer, pos: int) -> int:
    """Offset just past the `"` of a `: "` at pos (JSON whitespace allowed), else -1."""
    pos = _skip_ws(body, pos)
    if body[pos : pos + 1] != b":":
        return -1
    pos = _skip_ws(body, pos + 1)
    return pos + 1 if body[pos : pos + 1] == b'"' else -1


def _skip_ws(body: Buffer, pos: int) -> int:
    while pos < len(body) and body[pos] in _JSON_WS:
        pos += 1
    return pos


def _skeleton(body: Buffer, blobs: list[_Blob]) -> bytes:
    """The body with each blob's string token (quotes included) replaced by NaN."""
    pieces: list[Buffer] = []
    prev = 0
    for blob in blobs:
        pieces += (body[prev : blob.start - 1], b"NaN")
        prev = blob.end + 1
    pieces.append(body[prev:])
    return b"".join(pieces)


# -- canonical form --------------------------------------------------------------------


class _Kind(enum.Enum):
    MESSAGE = "message"  # protobuf message: normalize keys
    SCHEMA = "schema"  # Schema message: normalize keys, but its maps hold user names
    SCHEMA_MAP = "schema_map"  # map<string, Schema>: keys verbatim, values schemas
    VERBATIM = "verbatim"  # Struct / Value / map<string, string>: as sent


@dataclass(slots=True)
class _Walker:
    """Builds the canonical tree; collects image fingerprints on the way."""

    fingerprints: set[str] = field(default_factory=set)
    image_bytes: int = 0

    def value(self, value: object, kind: _Kind, name: str) -> object:
        if kind is _Kind.VERBATIM:
            return value
        if isinstance(value, list):
            return [self.value(item, kind, name) for item in value]
        if not isinstance(value, dict):
            return value
        if kind is _Kind.SCHEMA_MAP:
            return {key: self.value(item, _Kind.SCHEMA, key) for key, item in value.items()}
        if kind is _Kind.SCHEMA:
            return self._object(value, _schema_child)
        out = self._object(value, functools.partial(_message_child, name))
        if name == "inlineData":
            self._inline(out)
        elif name == "fileData" and isinstance(uri := out.get("fileUri"), str):
            self.fingerprints.add(file_fingerprint(uri))
        return out

    def _object(self, obj: dict[str, object], kind_of: Callable[[str], _Kind]) -> dict[str, object]:
        """Walk a message's fields under camelCase names (as sent if two collide)."""
        names = [_camel(key) for key in obj]
        keys = names if len(set(names)) == len(names) else list(obj)
        return {
            key: self.value(item, kind_of(name), name)
            for key, name, item in zip(keys, names, obj.values(), strict=True)
        }

    def _inline(self, blob: dict[str, object]) -> None:
        data = blob.get("data")
        if isinstance(data, _Blob):
            fingerprint, size = data.fingerprint(), data.end - data.start
        elif isinstance(data, str):
            fingerprint, size = image_fingerprint(data), len(data)
        else:
            return
        blob["data"] = fingerprint
        self.fingerprints.add(fingerprint)
        self.image_bytes += size * 3 // 4


def _message_child(parent: str, name: str) -> _Kind:
    """Kind of field `name` of a message reached through field `parent`."""
    if name in _VERBATIM_FIELDS:
        return _Kind.VERBATIM
    if name == "response":  # a Schema in a FunctionDeclaration, a Struct elsewhere
        return _Kind.SCHEMA if parent == "functionDeclarations" else _Kind.VERBATIM
    if name in _SCHEMA_FIELDS:
        return _Kind.SCHEMA
    return _Kind.MESSAGE


def _schema_child(name: str) -> _Kind:
    """Kind of field `name` of a Schema; unknown ones (example, default, ...) verbatim."""
    if name in _SCHEMA_MAPS:
        return _Kind.SCHEMA_MAP
    if name in _SUBSCHEMAS:
        return _Kind.SCHEMA
    return _Kind.VERBATIM


@functools.lru_cache(maxsize=4096)
def _camel(key: str) -> str:
    """protobuf's JSON name for a snake_case field name; anything else unchanged."""
    if "_" not in key or not _SNAKE.fullmatch(key):
        return key
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _restore(obj: object) -> str:
    """`json.dumps` hook: a cut string outside an image position is written back."""
    if isinstance(obj, _Blob):
        return obj.text()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
