"""Credentials: which caller a request belongs to, and the gateway's own secret.

Cache entries are scoped to a keyed hash of the caller's credential, so another key never
sees them and nothing stored reveals the credential. The secret is generated on first
start and kept beside the cache (or given in settings).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from aiohttp import web
from multidict import CIMultiDict

from gateway.config import CacheSettings

SECRET_FILE = "gateway-secret"
MIN_SECRET_BYTES = 16


def credential(request: web.BaseRequest) -> str:
    """The caller's API key or bearer token, or "" when the request carries none."""
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if key:
        return key.strip()
    authz = request.headers.get("Authorization", "")
    scheme, _, token = authz.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def scope(secret: bytes, cred: str) -> str:
    """A keyed hash naming whose cache an entry is; never reversible to the credential."""
    if not cred:
        return "anonymous"
    return hmac.new(secret, cred.encode(), hashlib.sha256).hexdigest()[:32]


def inject_api_key(headers: CIMultiDict[str], api_key: str, has_credential: bool) -> None:
    """Add the deployment's upstream key for callers that send none."""
    if api_key and not has_credential:
        headers["x-goog-api-key"] = api_key


def load_or_create_secret(settings: CacheSettings) -> bytes:
    """The configured secret, else one kept beside the disk cache, else a per-process one."""
    if settings.secret:
        return settings.secret.encode()
    if settings.backend != "disk":
        return secrets.token_bytes(32)
    path = Path(settings.dir) / SECRET_FILE
    try:
        kept = bytes.fromhex(path.read_text().strip())
        if len(kept) >= MIN_SECRET_BYTES:  # an empty or short file would make tokens forgeable
            return kept
    except (FileNotFoundError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_bytes(32)
    # Written whole under a temporary name, then renamed: a crash never leaves it empty.
    temp = path.with_name(f".{SECRET_FILE}.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value.hex())
    os.replace(temp, path)
    return value
