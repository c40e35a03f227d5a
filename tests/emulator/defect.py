"""The Nano Banana 2 defect: parallel calls sharing a reference image drift in character.

Every generate call has a deterministic character, `expected_character(digests, prompt)`:
derived from the reference images alone when there are any (so every call with the same
references should draw the same person), from the prompt otherwise. A call to a defect
model (Nano Banana 2) that is in flight at the same time as another defect-model call
sharing at least one reference digest is *conflicted*, and so is that other call. A
conflicted call answers with a different hair colour, rotated by a global counter, so
overlapping calls come back inconsistent both with the expected character and with each
other. Calls to other models (Nano Banana Pro included) are never conflicted and never
conflict anyone: the defect lives in Nano Banana 2 serving, and the gateway only
serializes the models whose policy says so.

"In flight" spans the whole simulated upstream work: latency, then every stream event.
Calls answered with an error (scripted, unknown model, bad body) never count.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

HAIR: tuple[str, ...] = (
    "auburn", "black", "blonde", "brown", "copper", "grey", "platinum", "red", "silver", "teal",
)  # fmt: skip
SKIN: tuple[str, ...] = ("fair", "light", "medium", "olive", "tan", "brown", "dark", "deep")

_CHARACTER_RE = re.compile(r"character: (hair=\S+ skin=\S+)")


def _format(hair: str, skin: str) -> str:
    return f"hair={hair} skin={skin}"


def expected_character(image_digests: Iterable[str], prompt: str) -> str:
    """The character a call should get, e.g. ``"hair=auburn skin=olive"``."""
    digests = sorted(image_digests)
    seed_text = "\n".join(digests) if digests else f"prompt:{prompt}"
    seed = hashlib.sha256(seed_text.encode()).digest()
    return _format(HAIR[seed[0] % len(HAIR)], SKIN[seed[1] % len(SKIN)])


def wrong_character(expected: str, nth: int) -> str:
    """A character that differs from `expected` in hair colour, varying with `nth`."""
    hair, skin = (kv.split("=", 1)[1] for kv in expected.split(" "))
    shift = 1 + nth % (len(HAIR) - 1)
    return _format(HAIR[(HAIR.index(hair) + shift) % len(HAIR)], skin)


def character_text(character: str) -> str:
    """How the character appears in the answer's text part."""
    return f"character: {character}"


def character_of(response: Any) -> str | None:
    """The character in a GenerateContentResponse dict, or a list of stream chunks.

    Accepts the JSON as parsed (camelCase) or an SDK response's `model_dump()`.
    """
    chunks = response if isinstance(response, list) else [response]
    for chunk in chunks:
        for candidate in (chunk or {}).get("candidates") or []:
            for part in ((candidate or {}).get("content") or {}).get("parts") or []:
                match = _CHARACTER_RE.search((part or {}).get("text") or "")
                if match:
                    return match.group(1)
    return None


@dataclass(eq=False)
class Flight:
    """One generate call while it is in flight upstream."""

    model: str
    digests: frozenset[str]
    affected: bool
    conflicted: bool = False


@dataclass
class OverlapTracker:
    """Marks defect-model calls that overlap another one sharing a reference image."""

    _by_digest: dict[str, set[Flight]] = field(default_factory=dict)
    _wrong: itertools.count[int] = field(default_factory=itertools.count)

    def start(self, model: str, digests: frozenset[str], *, affected: bool) -> Flight:
        """Register a call entering upstream work; mark it and its overlaps conflicted.

        `affected`: whether `model` has the defect (the caller asks the live config).
        """
        flight = Flight(model, digests, affected=affected)
        if not flight.affected:
            return flight
        for digest in digests:
            others = self._by_digest.setdefault(digest, set())
            for other in others:
                other.conflicted = flight.conflicted = True
            others.add(flight)
        return flight

    def finish(self, flight: Flight) -> None:
        """Unregister a call whose upstream work is over (idempotent)."""
        if not flight.affected:
            return
        for digest in flight.digests:
            others = self._by_digest.get(digest)
            if others is not None:
                others.discard(flight)
                if not others:
                    del self._by_digest[digest]

    def in_flight(self) -> int:
        """How many defect-model calls with references are in flight now."""
        return len({f for flights in self._by_digest.values() for f in flights})

    def character_for(self, flight: Flight, expected: str) -> str:
        """The character to answer with: `expected`, unless the call is conflicted."""
        return wrong_character(expected, next(self._wrong)) if flight.conflicted else expected
