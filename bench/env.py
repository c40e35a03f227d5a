"""What a case runs against: durations for the mode, and processes started on first use.

Emulators run with latency 0, so what the gateway adds is all that separates the two
sides. Each gateway has its own configuration (cache off / memory / disk) and upstream;
a case that measures process memory gets a fresh gateway of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import API_KEY, Proc, Procs

ANSWER_IMAGE_BYTES = 1536 * 1024  # the "1.5 MB image answer"
SSE_EVENTS = 5
JSON_HEADERS = {"x-goog-api-key": API_KEY, "Content-Type": "application/json"}


@dataclass(frozen=True)
class Plan:
    """Durations and counts; `quick` ones keep the smoke test short."""

    quick: bool
    warmup_seconds: float
    rounds: int
    round_seconds: float
    sse_pairs: int
    big_pairs: int
    lane_calls: int
    lane_rounds: int
    fingerprint_runs: int

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(True, 1, 2, 1, 40, 3, 10, 1, 2)
        return cls(False, 1, 5, 2, 600, 20, 50, 3, 7)


@dataclass
class Env:
    procs: Procs
    plan: Plan
    _started: dict[str, Proc] = field(default_factory=dict)

    @property
    def work(self) -> Path:
        return self.procs.work

    def _emulator(self, name: str) -> Proc:
        if name not in self._started:
            size = ANSWER_IMAGE_BYTES if name == "emu-big" else 0
            self._started[name] = self.procs.emulator(
                name, answer_image_bytes=size, stream_events=SSE_EVENTS
            )
        return self._started[name]

    def small_emulator(self) -> Proc:
        """Default answers: a few hundred bytes of JSON (256-byte image for image models)."""
        return self._emulator("emu-small")

    def big_emulator(self) -> Proc:
        """Every answer carries a 1.5 MB image."""
        return self._emulator("emu-big")

    def gateway(self, name: str, upstream: Proc, cache: str = "off") -> Proc:
        if name not in self._started:
            self._started[name] = self.procs.gateway(name, upstream, cache=cache)
        return self._started[name]

    def fresh_gateway(self, name: str, upstream: Proc, cache: str = "off") -> Proc:
        """A gateway no other case has used (for memory baselines)."""
        return self.procs.gateway(name, upstream, cache=cache)

    def stop(self, proc: Proc) -> None:
        self.procs.stop(proc)
