"""Body parsing: fingerprints, canonical form (what may and may not be normalized), key."""

from __future__ import annotations

import base64
import json
import random
import re
import types
import typing
from typing import Any

import pytest

from gateway.fingerprint import file_fingerprint, image_fingerprint
from gateway.gemini import ParsedBody, cache_key, parse_body


def b64(seed: int, size: int = 3000) -> str:
    """Base64 of `size` random bytes; 3000 bytes is above the byte-scan threshold."""
    return base64.b64encode(random.Random(seed).randbytes(size)).decode()


def dumps(obj: object) -> bytes:
    return json.dumps(obj).encode()


def inline(data: str, *, snake: bool = False) -> dict[str, Any]:
    if snake:
        return {"inline_data": {"mime_type": "image/png", "data": data}}
    return {"inlineData": {"mimeType": "image/png", "data": data}}


def canonical(obj: object) -> bytes:
    parsed = parse_body(dumps(obj))
    assert parsed.canonical is not None
    return parsed.canonical


# -- fingerprints ----------------------------------------------------------------------


def test_images_anywhere_in_contents_and_any_role() -> None:
    body = {
        "systemInstruction": {"parts": [inline(b64(0))]},
        "contents": [
            {"role": "user", "parts": [{"text": "draw"}, inline(b64(1)), inline(b64(2))]},
            {"role": "model", "parts": [inline(b64(3), snake=True)]},
            {
                "role": "user",
                "parts": [
                    {"fileData": {"mimeType": "image/png", "fileUri": "files/a"}},
                    {"file_data": {"file_uri": "files/b"}},
                    {"functionResponse": {"name": "f", "response": {}, "parts": [inline(b64(4))]}},
                    inline(b64(1)),
                ],
            },
        ],
    }
    parsed = parse_body(dumps(body))
    expected = {image_fingerprint(b64(i)) for i in range(5)}
    expected |= {file_fingerprint("files/a"), file_fingerprint("files/b")}
    assert parsed.fingerprints == tuple(sorted(expected))
    assert parsed.image_bytes == pytest.approx(6 * 3000, rel=0.01)


def test_small_and_large_images_take_either_path_to_the_same_fingerprint() -> None:
    for size in (3, 100, 5000):
        data = b64(9, size)
        assert parse_body(dumps({"contents": [{"parts": [inline(data)]}]})).fingerprints == (
            image_fingerprint(data),
        )


def test_json_escaped_base64_matches_the_plain_body() -> None:
    data = b64(5, 20_000)
    plain = dumps({"contents": [{"parts": [inline(data)]}]})
    escaped = plain.replace(b"/", b"\\/").replace(b"=", b"\\u003d")  # PHP, Gson
    assert b"\\/" in escaped
    left, right = parse_body(escaped), parse_body(plain)
    assert (left.fingerprints, left.canonical) == (right.fingerprints, right.canonical)


def test_url_safe_unpadded_image_gets_the_same_key_as_standard() -> None:
    raw = random.Random(3).randbytes(4000)
    standard = {"contents": [{"parts": [inline(base64.b64encode(raw).decode())]}]}
    urlsafe = {
        "contents": [{"parts": [inline(base64.urlsafe_b64encode(raw).decode().rstrip("="))]}]
    }
    left, right = parse_body(dumps(standard)), parse_body(dumps(urlsafe))
    assert (left.fingerprints, left.canonical) == (right.fingerprints, right.canonical)


def test_canonical_replaces_image_data_by_its_fingerprint() -> None:
    data = b64(6)
    tree = json.loads(canonical({"contents": [{"parts": [inline(data)]}]}))
    assert tree["contents"][0]["parts"][0]["inlineData"]["data"] == image_fingerprint(data)


def test_data_inside_user_values_is_neither_fingerprinted_nor_changed() -> None:
    data = b64(8)
    call = {"functionCall": {"name": "f", "args": {"inlineData": {"data": data}}}}
    body = {"contents": [{"parts": [call]}]}
    parsed = parse_body(dumps(body))
    assert parsed.fingerprints == ()
    assert json.loads(parsed.canonical or b"") == body


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b'{"contents": [', b"[1, 2]", b'"s"', b"null", b"\xff\xfe\x00", b"{}"],
)
def test_bad_or_empty_bodies_are_not_errors(body: bytes) -> None:
    parsed = parse_body(body)
    assert parsed.fingerprints == ()
    assert (parsed.canonical is not None) == (body == b"{}")


def test_body_without_images_has_no_fingerprints() -> None:
    parsed = parse_body(dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
    assert parsed == ParsedBody((), parsed.canonical, 0)
    assert parsed.canonical == b'{"contents":[{"parts":[{"text":"hi"}],"role":"user"}]}'


def test_invalid_json_around_a_large_image_is_still_invalid() -> None:
    good = dumps({"contents": [{"parts": [inline(b64(1))]}]})
    assert parse_body(good).canonical is not None
    for bad in (good[:-1], good.replace(b'"data": ', b'"data" ', 1), good + b"x"):
        assert parse_body(bad) == ParsedBody()


def test_body_with_its_own_nan_falls_back_to_a_full_parse() -> None:
    data = b64(2)
    body = b'{"a": NaN, "contents": [{"parts": [' + dumps(inline(data)) + b"]}]}"
    parsed = parse_body(body)
    assert parsed.fingerprints == (image_fingerprint(data),)
    assert parsed.canonical is not None and b'"a":NaN' in parsed.canonical


def test_data_key_look_alike_inside_a_string_is_kept_exactly() -> None:
    value = b64(4)
    tricky = {"labels": {'x"data': value}, "contents": [{"parts": [{"text": 'say "data'}]}]}
    parsed = parse_body(dumps(tricky))
    assert parsed.fingerprints == ()
    assert json.loads(parsed.canonical or b"") == tricky


def test_escapes_in_a_cut_string_are_decoded_where_it_is_written_back() -> None:
    value = "A" * 2000 + 'quote " backslash \\ newline \n unicode \u00e9 end\\'
    body = {"contents": [{"parts": [{"functionCall": {"name": "f", "args": {"data": value}}}]}]}
    parsed = parse_body(dumps(body))
    assert json.loads(parsed.canonical or b"") == body


def test_bad_escape_or_utf8_in_a_cut_string_makes_the_body_invalid() -> None:
    good = dumps({"contents": [{"parts": [inline(b64(1))]}]})
    assert parse_body(good.replace(b'"}}]}]}', b'\\x"}}]}]}')) == ParsedBody()
    args = dumps({"contents": [{"parts": [{"functionCall": {"args": {"data": b64(1)}}}]}]})
    assert parse_body(args.replace(b'"}}}]}]}', b'\xff"}}}]}]}')) == ParsedBody()


def test_invalid_utf8_and_deep_nesting_do_not_raise() -> None:
    assert parse_body(b'{"a": "\xff\xfe"}').canonical is None
    assert parse_body(b"[" * 100_000 + b"]" * 100_000) == ParsedBody()
    assert parse_body(b'{"a":' * 400 + b"1" + b"}" * 400).fingerprints == ()


def test_utf16_bodies_parse_like_utf8() -> None:
    body = {"contents": [{"parts": [inline(b64(1))]}]}
    assert parse_body(json.dumps(body).encode("utf-16")) == parse_body(dumps(body))


# -- canonical form --------------------------------------------------------------------

SCHEMA_CAMEL = {
    "type": "OBJECT",
    "propertyOrdering": ["user_name", "tags"],
    "properties": {
        "user_name": {"type": "STRING", "maxLength": 20},
        "tags": {"type": "ARRAY", "minItems": 1, "items": {"type": "STRING"}},
    },
}
SCHEMA_SNAKE = {
    "type": "OBJECT",
    "property_ordering": ["user_name", "tags"],
    "properties": {
        "user_name": {"type": "STRING", "max_length": 20},
        "tags": {"type": "ARRAY", "min_items": 1, "items": {"type": "STRING"}},
    },
}


def request(*, snake: bool, schema: dict[str, Any]) -> dict[str, Any]:
    """The same request as the JS SDK (camelCase) or the Python SDK (snake_case) sends it."""

    def name(camel: str, snake_name: str) -> str:
        return snake_name if snake else camel

    return {
        "contents": [{"role": "user", "parts": [{"text": "hi"}, inline(b64(1), snake=snake)]}],
        name("systemInstruction", "system_instruction"): {"parts": [{"text": "be nice"}]},
        name("generationConfig", "generation_config"): {
            name("responseModalities", "response_modalities"): ["TEXT", "IMAGE"],
            name("imageConfig", "image_config"): {name("aspectRatio", "aspect_ratio"): "16:9"},
            name("responseMimeType", "response_mime_type"): "application/json",
            name("responseSchema", "response_schema"): schema,
            name("thinkingConfig", "thinking_config"): {
                name("thinkingBudget", "thinking_budget"): 0
            },
        },
        name("safetySettings", "safety_settings"): [
            {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}
        ],
        name("toolConfig", "tool_config"): {
            name("functionCallingConfig", "function_calling_config"): {
                "mode": "ANY",
                name("allowedFunctionNames", "allowed_function_names"): ["get_user"],
            }
        },
        "tools": [
            {
                name("functionDeclarations", "function_declarations"): [
                    {"name": "get_user", "parameters": schema, "response": schema}
                ]
            }
        ],
    }


def test_snake_and_camel_spellings_share_one_canonical_form() -> None:
    camel = canonical(request(snake=False, schema=SCHEMA_CAMEL))
    assert canonical(request(snake=True, schema=SCHEMA_SNAKE)) == camel
    keys = re.findall(rb'"([^"]*)":', camel)
    assert {key for key in keys if b"_" in key} == {b"user_name"}  # the user's property


def test_python_sdk_and_js_sdk_bodies_share_one_canonical_form() -> None:
    """google-genai for Python sends URL-safe base64 and mixes key styles (seen on the
    wire); a JS client sends standard base64 in camelCase."""
    raw = random.Random(12).randbytes(5000) + b"\xfb\xff"
    python_sdk = {
        "contents": [
            {
                "parts": [
                    {
                        "inlineData": {
                            "data": base64.urlsafe_b64encode(raw).decode(),
                            "mime_type": "image/png",
                        }
                    },
                    {"text": "hi"},
                ],
                "role": "user",
            }
        ],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "thinkingConfig": {"thinking_budget": 0},
            "imageConfig": {"aspectRatio": "16:9"},
        },
    }
    js_sdk = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {
                        "inlineData": {
                            "mimeType": "image/png",
                            "data": base64.b64encode(raw).decode(),
                        }
                    },
                    {"text": "hi"},
                ],
            }
        ],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "thinkingConfig": {"thinkingBudget": 0},
            "imageConfig": {"aspectRatio": "16:9"},
        },
    }
    left, right = parse_body(dumps(python_sdk)), parse_body(dumps(js_sdk))
    assert (left.fingerprints, left.canonical) == (right.fingerprints, right.canonical)


def test_canonical_form_is_sorted_compact_json() -> None:
    out = canonical({"b": 1, "a": {"d": [1, 2], "c": "x"}})
    assert out == b'{"a":{"c":"x","d":[1,2]},"b":1}'


def with_schema_names(*names: str) -> dict[str, Any]:
    props = {name: {"type": "STRING"} for name in names}
    return {"type": "OBJECT", "properties": props}


@pytest.mark.parametrize(
    ("left", "right"),
    [
        # responseSchema.properties and nested schemas in items / anyOf / properties
        (
            {"generationConfig": {"responseSchema": with_schema_names("user_name")}},
            {"generationConfig": {"responseSchema": with_schema_names("userName")}},
        ),
        (
            {"generationConfig": {"responseSchema": {"items": with_schema_names("a_b")}}},
            {"generationConfig": {"responseSchema": {"items": with_schema_names("aB")}}},
        ),
        (
            {"generation_config": {"response_schema": {"any_of": [with_schema_names("a_b")]}}},
            {"generation_config": {"response_schema": {"any_of": [with_schema_names("aB")]}}},
        ),
        (
            {"generationConfig": {"responseSchema": with_schema_names("x_y", "z")}},
            {"generationConfig": {"responseSchema": with_schema_names("xY", "z")}},
        ),
        # free-form JSON Schema subtrees
        (
            {"generationConfig": {"responseJsonSchema": {"properties": {"a_b": {}}}}},
            {"generationConfig": {"responseJsonSchema": {"properties": {"aB": {}}}}},
        ),
        (
            {"generationConfig": {"responseJsonSchema": {"min_items": 1}}},
            {"generationConfig": {"responseJsonSchema": {"minItems": 1}}},
        ),
        (
            {"tools": [{"functionDeclarations": [{"parametersJsonSchema": {"a_b": 1}}]}]},
            {"tools": [{"functionDeclarations": [{"parametersJsonSchema": {"aB": 1}}]}]},
        ),
        # Structs in contents
        (
            {"contents": [{"parts": [{"functionCall": {"name": "f", "args": {"a_b": 1}}}]}]},
            {"contents": [{"parts": [{"functionCall": {"name": "f", "args": {"aB": 1}}}]}]},
        ),
        (
            {"contents": [{"parts": [{"function_response": {"response": {"a_b": {"c_d": 1}}}}]}]},
            {"contents": [{"parts": [{"function_response": {"response": {"a_b": {"cD": 1}}}}]}]},
        ),
        (
            {"contents": [{"parts": [{"partMetadata": {"a_b": 1}}]}]},
            {"contents": [{"parts": [{"partMetadata": {"aB": 1}}]}]},
        ),
        # maps and schemas in tools
        ({"labels": {"team_name": "x"}}, {"labels": {"teamName": "x"}}),
        (
            {"tools": [{"functionDeclarations": [{"parameters": with_schema_names("a_b")}]}]},
            {"tools": [{"functionDeclarations": [{"parameters": with_schema_names("aB")}]}]},
        ),
        (
            {"tools": [{"function_declarations": [{"response": with_schema_names("a_b")}]}]},
            {"tools": [{"function_declarations": [{"response": with_schema_names("aB")}]}]},
        ),
        # schema values that are JSON values, and plain string values
        (
            {"generationConfig": {"responseSchema": {"example": {"a_b": 1}}}},
            {"generationConfig": {"responseSchema": {"example": {"aB": 1}}}},
        ),
        (
            {"generationConfig": {"responseModalities": ["IMAGE"]}},
            {"generationConfig": {"responseModalities": ["image"]}},
        ),
        (
            {"contents": [{"parts": [{"text": "user_name"}]}]},
            {"contents": [{"parts": [{"text": "userName"}]}]},
        ),
    ],
)
def test_user_defined_names_and_values_are_kept_as_sent(left: object, right: object) -> None:
    assert canonical(left) != canonical(right)
    for body in (left, right):
        assert canonical(body) == canonical(json.loads(canonical(body)))  # stable


def test_function_declaration_response_schema_is_normalized() -> None:
    def body(key: str) -> dict[str, Any]:
        return {"tools": [{"functionDeclarations": [{"response": {key: 1}}]}]}

    assert canonical(body("min_items")) == canonical(body("minItems"))


def test_colliding_spellings_in_one_object_are_kept_apart() -> None:
    both = {"generationConfig": {"top_k": 1, "topK": 2}}
    assert canonical(both) == b'{"generationConfig":{"topK":2,"top_k":1}}'


def test_only_proper_snake_case_is_rewritten() -> None:
    body = {"_private": 1, "Upper_Case": 2, "trailing_": 3, "lat_lng": 4, "x_2d": 5}
    assert json.loads(canonical(body)) == {
        "_private": 1,
        "Upper_Case": 2,
        "trailing_": 3,
        "latLng": 4,
        "x2d": 5,
    }


# -- the SDK's free-form fields stay verbatim ------------------------------------------


def free_form_paths() -> list[tuple[tuple[str, ...], bool]]:
    """Paths (camelCase, "[]" for list items, "{}" for map values) of every field the
    google-genai SDK types as a dict or Any, below the parts of a generate request, each
    with whether it maps names to messages (e.g. Schema `properties`)."""
    from google.genai import types as genai
    from pydantic import BaseModel
    from pydantic.alias_generators import to_camel

    roots: dict[tuple[str, ...], Any] = {
        ("contents", "[]"): genai.Content,
        ("systemInstruction",): genai.Content,
        ("tools", "[]"): genai.Tool,
        ("toolConfig",): genai.ToolConfig,
        ("safetySettings", "[]"): genai.SafetySetting,
        ("generationConfig",): genai.GenerationConfig,
    }
    found: list[tuple[tuple[str, ...], bool]] = [(("labels",), False)]
    seen: set[type] = set()

    def visit(cls: Any, path: tuple[str, ...]) -> None:
        if cls in seen:
            return
        seen.add(cls)
        for name, info in cls.model_fields.items():
            annotation(info.annotation, (*path, to_camel(name)))

    def annotation(ann: Any, path: tuple[str, ...]) -> None:
        origin, args = typing.get_origin(ann), typing.get_args(ann)
        if origin in (typing.Union, types.UnionType):
            for arg in args:
                annotation(arg, path)
        elif ann is Any or origin is dict:
            value = args[1] if origin is dict else None
            of_messages = isinstance(value, type) and issubclass(value, BaseModel)
            found.append((path, of_messages))
            if of_messages:
                visit(value, (*path, "{}"))
        elif origin is list:
            annotation(args[0], (*path, "[]"))
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            visit(ann, path)

    for path, cls in roots.items():
        visit(cls, path)
    return found


def place(path: tuple[str, ...], leaf: object) -> object:
    if not path:
        return leaf
    head, rest = path[0], path[1:]
    if head == "[]":
        return [place(rest, leaf)]
    if head == "{}":
        return {"some_name": place(rest, leaf)}
    return {head: place(rest, leaf)}


def to_snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m[0].lower(), name)


FREE_FORM = {"user_key": {"nested_key": [{"deep_key": 1}]}, "otherKey": 2}


def test_every_sdk_free_form_field_keeps_its_keys() -> None:
    paths = free_form_paths()
    assert len(paths) > 10  # the walk found the SDK's fields
    for path, of_messages in paths:
        leaf = {"user_key": {}, "otherKey": {}} if of_messages else FREE_FORM
        body = place(path, leaf)
        assert json.loads(canonical(body)) == body, path
        snake = place(tuple(to_snake(step) for step in path), leaf)
        assert canonical(snake) == canonical(body), path


# -- cache key -------------------------------------------------------------------------

BASE = {
    "operation": "generateContent",
    "api_version": "v1beta",
    "model": "gemini-3.1-flash-image",
    "scope": "team-a",
}


def test_cache_key_is_hex_sha256_and_stable() -> None:
    key = cache_key(**BASE, canonical=b"{}")
    assert key == cache_key(**BASE, canonical=b"{}")
    assert len(key) == 64 and int(key, 16) >= 0


@pytest.mark.parametrize("part", sorted(BASE))
def test_cache_key_changes_with_each_part(part: str) -> None:
    changed = {**BASE, part: BASE[part] + "x"}
    assert cache_key(**changed, canonical=b"{}") != cache_key(**BASE, canonical=b"{}")


def test_cache_key_changes_with_the_body_and_is_unambiguous() -> None:
    assert cache_key(**BASE, canonical=b"{}") != cache_key(**BASE, canonical=b'{"a":1}')
    shifted = {**BASE, "model": "gemini-3.1-flash-image" + "team-a", "scope": ""}
    assert cache_key(**shifted, canonical=b"{}") != cache_key(**BASE, canonical=b"{}")


def test_equivalent_bodies_share_a_key_and_different_ones_do_not() -> None:
    def key(body: object) -> str:
        return cache_key(**BASE, canonical=canonical(body))

    assert key(request(snake=True, schema=SCHEMA_SNAKE)) == key(
        request(snake=False, schema=SCHEMA_CAMEL)
    )
    other = request(snake=False, schema=SCHEMA_CAMEL)
    other["contents"][0]["parts"][1] = inline(b64(2))
    assert key(other) != key(request(snake=False, schema=SCHEMA_CAMEL))


def test_a_preallocated_bytearray_body_parses_like_bytes() -> None:
    """The pipeline reads large bodies into one bytearray; parsing must not care."""
    import base64 as b64
    import json as js

    image = b64.urlsafe_b64encode(bytes(range(256)) * 5000).decode()
    body = js.dumps(
        {"contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": image}}]}]}
    ).encode()
    assert parse_body(bytearray(body)) == parse_body(body)
    assert parse_body(bytearray(body)).fingerprints
