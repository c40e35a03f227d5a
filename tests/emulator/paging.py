"""pageSize / pageToken handling shared by the list endpoints."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import TypeVar

from . import errors

_T = TypeVar("_T")
_MAX_PAGE_SIZE = 1000


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(token: str) -> int:
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
    except (binascii.Error, ValueError):
        kind, value = "", ""
    if kind != "offset" or not value.isdigit():
        raise errors.invalid_argument("Invalid page token.")
    return int(value)


def page(
    items: Sequence[_T], query: Mapping[str, str], default_size: int
) -> tuple[Sequence[_T], str | None]:
    """The page of `items` the query asks for, and the token of the next page (if any)."""
    raw = query.get("pageSize", "0")
    if not raw.isdigit():
        raise errors.invalid_argument(f"Invalid value for pageSize: {raw!r}.")
    size = min(int(raw), _MAX_PAGE_SIZE) or default_size
    token = query.get("pageToken")
    start = _offset(token) if token else 0
    end = start + size
    return items[start:end], (_token(end) if end < len(items) else None)
