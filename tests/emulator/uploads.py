"""Resumable-upload sessions and stored files (the Files API's data, no HTTP here)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import GoogleError, invalid_argument, not_found


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class StoredFile:
    """A file created through the upload protocol."""

    name: str
    mime_type: str
    data: bytes
    api_base: str
    api_version: str
    display_name: str | None = None
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    def resource(self) -> dict[str, Any]:
        """The File resource as Google returns it (sizeBytes is a string, as in proto3 JSON)."""
        doc: dict[str, Any] = {"name": self.name}
        if self.display_name:
            doc["displayName"] = self.display_name
        digest = hashlib.sha256(self.data).hexdigest().encode()
        doc.update(
            {
                "mimeType": self.mime_type,
                "sizeBytes": str(len(self.data)),
                "createTime": _timestamp(self.created),
                "updateTime": _timestamp(self.created),
                "expirationTime": _timestamp(self.created + timedelta(hours=48)),
                # Google sends base64 of the hex digest, oddly; keep it byte-compatible.
                "sha256Hash": base64.b64encode(digest).decode(),
                "uri": f"{self.api_base}/{self.api_version}/{self.name}",
                "state": "ACTIVE",
                "source": "UPLOADED",
            }
        )
        return doc


@dataclass
class UploadSession:
    """An upload started with `X-Goog-Upload-Command: start`, not yet finalized."""

    upload_id: str
    name: str
    mime_type: str
    declared_size: int | None
    api_base: str
    api_version: str
    display_name: str | None
    received: bytearray = field(default_factory=bytearray)


@dataclass
class FileStore:
    """Upload sessions by id and finished files by name ("files/abc")."""

    sessions: dict[str, UploadSession] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)

    def start(
        self,
        meta: dict[str, Any],
        *,
        mime_type: str | None,
        declared_size: int | None,
        api_base: str,
        api_version: str,
    ) -> UploadSession:
        """Open a session for the `{"file": {...}}` metadata of a start request."""
        name = meta.get("name") or f"files/{secrets.token_hex(6)}"
        if not name.startswith("files/"):
            name = f"files/{name}"
        if name in self.files:
            raise GoogleError(409, "ALREADY_EXISTS", f"File {name} already exists.")
        mime = meta.get("mimeType") or meta.get("mime_type") or mime_type
        session = UploadSession(
            upload_id=secrets.token_urlsafe(24),
            name=name,
            mime_type=mime or "application/octet-stream",
            declared_size=declared_size,
            api_base=api_base,
            api_version=api_version,
            display_name=meta.get("displayName") or meta.get("display_name"),
        )
        self.sessions[session.upload_id] = session
        return session

    def session(self, upload_id: str) -> UploadSession:
        """The open session `upload_id`, or Google's 404."""
        found = self.sessions.get(upload_id)
        if found is None:
            raise not_found(f"Upload session {upload_id!r} does not exist or has finished.")
        return found

    def append(self, session: UploadSession, offset: int, chunk: bytes) -> None:
        """Add a chunk at `offset`; a gap or overlap cancels the session, as Google does."""
        if offset != len(session.received):
            del self.sessions[session.upload_id]
            raise invalid_argument(
                f"Invalid upload offset {offset}: {len(session.received)} bytes were received "
                "so far. The upload session has been cancelled."
            )
        session.received += chunk

    def finalize(self, session: UploadSession) -> StoredFile:
        """Close the session and store the file; the size must match the declared one."""
        del self.sessions[session.upload_id]
        size = len(session.received)
        if session.declared_size is not None and size != session.declared_size:
            raise invalid_argument(
                f"Upload size {size} does not match the declared size {session.declared_size}."
            )
        stored = StoredFile(
            name=session.name,
            mime_type=session.mime_type,
            data=bytes(session.received),
            api_base=session.api_base,
            api_version=session.api_version,
            display_name=session.display_name,
        )
        self.files[stored.name] = stored
        return stored
