"""What the emulator saw: one Record per request, for tests to assert on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from multidict import CIMultiDict

GENERATE_ACTIONS = frozenset({"generateContent", "streamGenerateContent"})


@dataclass(eq=False)
class Record:
    """One request as received, filled in while it runs.

    For generate calls `started`/`ended` bracket exactly the simulated upstream work
    (latency plus streaming), so two records overlap iff the calls overlapped upstream.
    For every other request they bracket the whole handler.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes
    started: float
    #: "api" for the main host, "upload" for the resumable-upload host.
    host: str = "api"
    model: str | None = None
    action: str | None = None
    api_version: str | None = None
    ended: float | None = None
    #: sha256 hex of each decoded inline image, plus each fileData URI as sent.
    image_digests: frozenset[str] = frozenset()
    #: The character answered (see `defect.expected_character`), generate calls only.
    character: str | None = None
    #: True when the defect hit this call (it overlapped a Nano Banana 2 call sharing an image).
    conflicted: bool = False
    status: int | None = None
    #: Stream events written before the stream ended or was broken.
    events: int = 0
    #: Upload id, for upload chunk requests.
    upload_id: str | None = None

    @property
    def is_generate(self) -> bool:
        """True for generateContent and streamGenerateContent calls."""
        return self.action in GENERATE_ACTIONS

    def overlaps(self, other: Record) -> bool:
        """Whether the two requests' upstream windows intersect (unfinished = still open)."""
        inf = float("inf")
        return self.started < (other.ended or inf) and other.started < (self.ended or inf)


def generate_records(records: Iterable[Record]) -> list[Record]:
    """The generate calls among `records`, in arrival order."""
    return [r for r in records if r.is_generate]


def overlapping_pairs(records: Iterable[Record]) -> list[tuple[Record, Record]]:
    """Pairs of generate calls that share a reference image and overlapped in time."""
    calls = generate_records(records)
    return [
        (a, b)
        for i, a in enumerate(calls)
        for b in calls[i + 1 :]
        if a.image_digests & b.image_digests and a.overlaps(b)
    ]
