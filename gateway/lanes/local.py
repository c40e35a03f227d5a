"""In-process lanes on asyncio: one ticket per call, queued in all its lanes at arrival.

Why tickets: a call enqueues itself in every lane it needs in one synchronous step, so
arrival order is a single global order shared by all lanes. A call runs only when it is
at the head of each of its lanes and each has a free slot. The earliest waiting call is
then never behind anyone, so it waits only for running calls, which always finish: no
deadlock, and by induction on arrival order, no starvation.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Literal

from gateway.lanes.base import (
    Held,
    LaneLimits,
    LanesSnapshot,
    LaneView,
    QueueRejected,
    key_prefix,
)

_State = Literal["waiting", "running", "done"]

_HOLD_SMOOTHING = 0.2  # weight of the newest hold time in the running average


class _Ticket:
    """One call's place in its lanes; hashed by identity so queues can drop it in O(1)."""

    __slots__ = ("arrived", "future", "granted_at", "keys", "lanes", "size", "state")

    def __init__(self, keys: tuple[str, ...], size: int, arrived: float) -> None:
        self.keys = keys
        self.size = size
        self.arrived = arrived
        self.granted_at = arrived
        self.lanes: list[_Lane] = []
        self.state: _State = "waiting"
        self.future: asyncio.Future[None] | None = None


class _Lane:
    """Running count plus an ordered queue with O(1) head, append and removal."""

    __slots__ = ("key", "running", "waiting")

    def __init__(self, key: str) -> None:
        self.key = key
        self.running = 0
        self.waiting: OrderedDict[_Ticket, None] = OrderedDict()

    def head(self) -> _Ticket | None:
        return next(iter(self.waiting), None)

    @property
    def empty(self) -> bool:
        return self.running == 0 and not self.waiting


class LocalLanes:
    """`Lanes` for a single process. Wait times use `clock`; the wait limit uses loop time."""

    def __init__(
        self,
        limits: LaneLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = limits or LaneLimits()
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}
        self._waiting: OrderedDict[_Ticket, None] = OrderedDict()
        self._queued_bytes = 0
        self._avg_hold = 0.0

    @property
    def idle(self) -> bool:
        """True when nothing runs or waits and no lane bookkeeping is left behind."""
        return not self._lanes and not self._waiting and self._queued_bytes == 0

    def hold(self, keys: Sequence[str], *, size: int = 0) -> AbstractAsyncContextManager[Held]:
        if isinstance(keys, str):
            raise TypeError("keys must be a sequence of keys, not a single string")
        if size < 0:
            raise ValueError("size must not be negative")
        return self._hold(tuple(dict.fromkeys(keys)), size)

    @asynccontextmanager
    async def _hold(self, keys: tuple[str, ...], size: int) -> AsyncIterator[Held]:
        if not keys:
            yield Held(wait_seconds=0.0, keys=())
            return
        ticket = await self._acquire(keys, size)
        try:
            yield Held(wait_seconds=ticket.granted_at - ticket.arrived, keys=keys)
        finally:
            self._release(ticket)

    async def _acquire(self, keys: tuple[str, ...], size: int) -> _Ticket:
        ticket = _Ticket(keys, size, self._clock())
        if self._can_enter_now(keys):
            self._enqueue(ticket)
            self._grant(ticket)
            return ticket
        self._check_bounds(keys, size)
        self._enqueue(ticket)
        future = ticket.future = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self._limits.max_wait_seconds):
                await future
        except TimeoutError:
            if ticket.state == "running":  # granted in the same tick the timer fired
                return ticket
            self._leave(ticket)
            raise self._timed_out() from None
        except BaseException:
            self._leave(ticket)
            raise
        return ticket

    def _can_enter_now(self, keys: tuple[str, ...]) -> bool:
        limit = self._limits.per_lane_concurrency
        for key in keys:
            lane = self._lanes.get(key)
            if lane is not None and (lane.waiting or lane.running >= limit):
                return False
        return True

    def _check_bounds(self, keys: tuple[str, ...], size: int) -> None:
        """Refuse before queuing, so a refused call leaves no trace."""
        limits = self._limits
        for key in keys:
            lane = self._lanes.get(key)
            depth = len(lane.waiting) if lane is not None else 0
            if depth >= limits.max_waiting_per_lane:
                raise QueueRejected(
                    "lane_full",
                    f"lane {key_prefix(key)} already has {depth} calls waiting"
                    f" (limit {limits.max_waiting_per_lane})",
                    self._retry_after(depth / limits.per_lane_concurrency),
                )
        if len(self._waiting) >= limits.max_waiting_total:
            raise QueueRejected(
                "queue_full",
                f"{len(self._waiting)} calls are already waiting"
                f" (limit {limits.max_waiting_total})",
                self._retry_after(1),
            )
        if self._queued_bytes + size > limits.max_queued_bytes:
            raise QueueRejected(
                "bytes",
                f"waiting requests would hold {self._queued_bytes + size} bytes"
                f" (limit {limits.max_queued_bytes})",
                self._retry_after(1),
            )

    def _retry_after(self, turns: float) -> float:
        """Estimate from recent hold times, floored at 1s and capped at the wait limit."""
        estimate = self._avg_hold * max(turns, 1)
        return max(1.0, min(estimate, self._limits.max_wait_seconds))

    def _timed_out(self) -> QueueRejected:
        limit = self._limits.max_wait_seconds
        return QueueRejected("timeout", f"waited over {limit:g}s for a lane", self._retry_after(1))

    def _enqueue(self, ticket: _Ticket) -> None:
        """Take a place in every lane at once: this is what makes arrival order global."""
        for key in ticket.keys:
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = _Lane(key)
            lane.waiting[ticket] = None
            ticket.lanes.append(lane)
        self._waiting[ticket] = None
        self._queued_bytes += ticket.size

    def _grant(self, ticket: _Ticket) -> None:
        for lane in ticket.lanes:
            del lane.waiting[ticket]
            lane.running += 1
        del self._waiting[ticket]
        self._queued_bytes -= ticket.size
        ticket.state = "running"
        ticket.granted_at = self._clock()
        if ticket.future is not None:
            ticket.future.set_result(None)

    def _leave(self, ticket: _Ticket) -> None:
        """Drop a waiting ticket (cancelled or timed out), or release one granted meanwhile."""
        if ticket.state == "running":
            self._release(ticket)
            return
        if ticket.state == "waiting":
            self._unqueue(ticket)
            self._pump(ticket.lanes)

    def _unqueue(self, ticket: _Ticket) -> None:
        ticket.state = "done"
        for lane in ticket.lanes:
            del lane.waiting[ticket]
        del self._waiting[ticket]
        self._queued_bytes -= ticket.size

    def _release(self, ticket: _Ticket) -> None:
        if ticket.state != "running":
            return
        ticket.state = "done"
        held = self._clock() - ticket.granted_at
        self._avg_hold += _HOLD_SMOOTHING * (held - self._avg_hold)
        for lane in ticket.lanes:
            lane.running -= 1
        self._pump(ticket.lanes)

    def _pump(self, changed: Iterable[_Lane]) -> None:
        """Admit heads that became ready and drop lanes that became empty.

        A ticket's readiness changes only through events on its own lanes, and every
        event lands here with those lanes, so only lane heads ever need a look.
        """
        todo = list(changed)
        while todo:
            lane = todo.pop()
            head = lane.head()
            if head is None:
                if lane.empty and self._lanes.get(lane.key) is lane:
                    del self._lanes[lane.key]
            elif head.future is not None and head.future.cancelled():
                self._unqueue(head)  # its task has not run its cleanup yet; do it now
                todo.extend(head.lanes)
            elif self._ready(head):
                self._grant(head)
                todo.extend(head.lanes)

    def _ready(self, ticket: _Ticket) -> bool:
        limit = self._limits.per_lane_concurrency
        return all(lane.head() is ticket and lane.running < limit for lane in ticket.lanes)

    def snapshot(self) -> LanesSnapshot:
        now = self._clock()
        oldest = next(iter(self._waiting), None)
        return LanesSnapshot(
            busy_lanes=sum(1 for lane in self._lanes.values() if lane.running),
            waiting=len(self._waiting),
            queued_bytes=self._queued_bytes,
            longest_wait_seconds=now - oldest.arrived if oldest is not None else 0.0,
            lanes=tuple(self._view(lane, now) for lane in self._lanes.values()),
        )

    @staticmethod
    def _view(lane: _Lane, now: float) -> LaneView:
        head = lane.head()
        return LaneView(
            key_prefix=key_prefix(lane.key),
            running=lane.running,
            waiting=len(lane.waiting),
            oldest_wait_seconds=now - head.arrived if head is not None else 0.0,
        )
