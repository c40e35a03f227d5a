"""State shared by the API host and the upload host of one emulator."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field

from aiohttp import web

from .config import EmulatorConfig
from .defect import OverlapTracker
from .records import Record
from .uploads import FileStore


@dataclass
class EmulatorState:
    """Everything the handlers mutate; one per emulator, shared by both sites."""

    config: EmulatorConfig
    records: list[Record] = field(default_factory=list)
    files: FileStore = field(default_factory=FileStore)
    tracker: OverlapTracker = field(default_factory=OverlapTracker)
    #: Base URL of the upload host ("http://127.0.0.1:PORT"); None serves uploads in-app.
    upload_base: str | None = None
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def response_id(self) -> str:
        """A fresh responseId, unique per answer like Google's."""
        return f"emu{next(self._ids):06d}{secrets.token_hex(4)}"

    def uploads(self) -> dict[str, bytes]:
        """Bytes received per finished file, by name ("files/abc")."""
        return {name: f.data for name, f in self.files.files.items()}


STATE = web.AppKey("emulator_state", EmulatorState)
RECORD = web.RequestKey("emulator_record", Record)
