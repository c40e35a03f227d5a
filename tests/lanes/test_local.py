"""LocalLanes: per-key FIFO serialization, bounds, cancellation and clean state."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Sequence

import pytest

from gateway.lanes import Held, LaneLimits, LanesSnapshot, LaneView, LocalLanes, QueueRejected


class FakeClock:
    """A clock the test moves by hand, injected instead of patching time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def enter(lanes: LocalLanes, keys: Sequence[str], size: int = 0) -> None:
    """Hold and leave; the short timeout turns an unexpected wait into a quick failure."""
    async with asyncio.timeout(1), lanes.hold(keys, size=size):
        pass


async def settle(rounds: int = 5) -> None:
    """Let every ready task run until it blocks (tasks enqueue in creation order)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class Harness:
    """Starts named calls that record their entry and hold until `finish` opens their gate."""

    def __init__(self, lanes: LocalLanes) -> None:
        self.lanes = lanes
        self.entered: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.tasks: dict[str, asyncio.Task[Held]] = {}

    async def start(self, *calls: tuple[str, Sequence[str]], size: int = 0) -> None:
        for name, keys in calls:
            self.gates[name] = asyncio.Event()
            self.tasks[name] = asyncio.create_task(self._run(name, keys, size))
        await settle()

    async def _run(self, name: str, keys: Sequence[str], size: int) -> Held:
        async with self.lanes.hold(keys, size=size) as held:
            self.entered.append(name)
            await self.gates[name].wait()
        return held

    async def finish(self, *names: str) -> Held:
        for name in names:
            self.gates[name].set()
            held = await self.tasks[name]
            await settle()
        return held

    async def close(self) -> None:
        """Let everything still open finish, then check nothing was left behind."""
        for gate in self.gates.values():
            gate.set()
        async with asyncio.timeout(1):
            results = await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        assert all(isinstance(r, Held | asyncio.CancelledError) for r in results)
        assert self.lanes.idle


async def test_shared_key_serializes() -> None:
    h = Harness(LocalLanes())
    await h.start(("a", ["img"]), ("b", ["img"]))
    assert h.entered == ["a"]
    await h.finish("a")
    assert h.entered == ["a", "b"]
    await h.close()


async def test_distinct_keys_run_in_parallel() -> None:
    h = Harness(LocalLanes())
    await h.start(("a", ["x"]), ("b", ["y"]), ("c", ["x", "z"]), ("d", ["z"]))
    assert h.entered == ["a", "b"]  # both inside at once; c waits for x, d behind c on z
    await h.close()


async def test_empty_duplicate_and_string_keys() -> None:
    lanes = LocalLanes()
    async with lanes.hold([]) as held:
        assert held == Held(wait_seconds=0.0, keys=())
        assert lanes.idle  # no bookkeeping at all
    async with asyncio.timeout(1), lanes.hold(["k", "k", "j"]) as held:
        assert held.keys == ("k", "j")  # a duplicate does not wait for itself
    assert lanes.idle
    with pytest.raises(TypeError):
        lanes.hold("abc")


async def test_many_waiters_enter_in_arrival_order() -> None:
    h = Harness(LocalLanes())
    names = [f"c{i:02d}" for i in range(30)]
    await h.start(*[(name, ["k"]) for name in names])
    await h.finish(*names)
    assert h.entered == names
    await h.close()


async def test_concurrency_two_runs_two_at_a_time_in_order() -> None:
    h = Harness(LocalLanes(LaneLimits(per_lane_concurrency=2)))
    await h.start(*[(name, ["k"]) for name in "abcde"])
    assert h.entered == ["a", "b"]
    await h.finish("b")
    assert h.entered == ["a", "b", "c"]
    await h.finish("a", "c", "d")
    assert h.entered == list("abcde")
    await h.close()


async def test_later_call_does_not_overtake_an_earlier_waiter() -> None:
    h = Harness(LocalLanes())
    # lane A is free, but needs_ab arrived first and waits for B
    await h.start(("holds_b", ["B"]), ("needs_ab", ["A", "B"]), ("needs_a", ["A"]))
    assert h.entered == ["holds_b"]
    await h.finish("holds_b")
    assert h.entered == ["holds_b", "needs_ab"]
    await h.finish("needs_ab")
    assert h.entered[-1] == "needs_a"
    await h.close()


async def test_grant_lets_the_next_head_in_when_slots_remain() -> None:
    h = Harness(LocalLanes(LaneLimits(per_lane_concurrency=2)))
    await h.start(("b1", ["B"]), ("b2", ["B"]), ("needs_ab", ["A", "B"]), ("needs_a", ["A"]))
    assert h.entered == ["b1", "b2"]
    await h.finish("b1")
    assert h.entered == ["b1", "b2", "needs_ab", "needs_a"]  # A still had a slot
    await h.close()


async def test_cycle_of_multi_key_calls_completes() -> None:
    h = Harness(LocalLanes())
    await h.start(("ab", ["A", "B"]), ("bc", ["B", "C"]), ("ca", ["C", "A"]), ("x", list("ABC")))
    await h.close()
    assert h.entered == ["ab", "bc", "ca", "x"]


async def _stress(seed: int, concurrency: int) -> None:
    rng = random.Random(seed)
    lanes = LocalLanes(LaneLimits(per_lane_concurrency=concurrency))
    keys = [f"key{i:02d}" for i in range(20)]
    active: Counter[str] = Counter()
    entered: defaultdict[str, list[int]] = defaultdict(list)
    arrivals = itertools.count()

    async def call(my_keys: list[str], delay: int, work: int) -> None:
        for _ in range(delay):
            await asyncio.sleep(0)
        seq = next(arrivals)  # no await between this and hold(): arrival order
        async with lanes.hold(my_keys):
            for key in my_keys:
                active[key] += 1
                assert active[key] <= concurrency
                entered[key].append(seq)
            try:
                for _ in range(work):
                    await asyncio.sleep(0 if rng.random() < 0.9 else 0.0005)
            finally:
                for key in my_keys:
                    active[key] -= 1

    tasks = [
        asyncio.create_task(
            call(rng.sample(keys, rng.randint(1, 3)), rng.randint(0, 40), rng.randint(0, 4))
        )
        for _ in range(300)
    ]
    for task in rng.sample(tasks, 30):
        for _ in range(rng.randint(0, 30)):
            await asyncio.sleep(0)
        task.cancel()
    async with asyncio.timeout(4):
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results)
    if concurrency == 1:  # with 1 slot, entry order is grant order
        assert all(seqs == sorted(seqs) for seqs in entered.values())
    assert sum(map(len, entered.values())) > 0
    assert lanes.idle
    assert lanes.snapshot().lanes == ()


@pytest.mark.parametrize(("seed", "concurrency"), [(0, 1), (1, 1), (2, 1), (3, 1), (4, 2)])
async def test_random_stress_no_deadlock_fifo_and_clean(seed: int, concurrency: int) -> None:
    await _stress(seed, concurrency)


async def test_lane_full_rejects_before_queuing() -> None:
    h = Harness(LocalLanes(LaneLimits(max_waiting_per_lane=1)))
    key = "0123456789abcdef" * 4
    await h.start(("a", [key]), ("b", [key]))
    with pytest.raises(QueueRejected) as err:
        await enter(h.lanes, ["other", key])
    assert err.value.reason == "lane_full"
    assert err.value.retry_after >= 1.0
    assert "01234567" in str(err.value) and key[:9] not in str(err.value)
    snap = h.lanes.snapshot()
    assert snap.waiting == 1 and "other" not in {v.key_prefix for v in snap.lanes}
    await h.close()


async def test_queue_full_counts_waiting_calls_across_lanes() -> None:
    h = Harness(LocalLanes(LaneLimits(max_waiting_total=2)))
    await h.start(("a", ["x"]), ("b", ["y"]), ("a2", ["x"]), ("b2", ["y"]))
    await enter(h.lanes, ["z"])  # a free lane never waits, so never counts
    with pytest.raises(QueueRejected) as err:
        await enter(h.lanes, ["x"])
    assert err.value.reason == "queue_full"
    await h.close()


async def test_queued_bytes_limit() -> None:
    h = Harness(LocalLanes(LaneLimits(max_queued_bytes=100)))
    await h.start(("holder", ["k"]), size=500)  # running calls are not queued bytes
    await h.start(("waiter", ["k"]), size=60)
    assert h.lanes.snapshot().queued_bytes == 60
    for size in (50, 200):  # over the sum, and over the limit alone
        with pytest.raises(QueueRejected) as err:
            await enter(h.lanes, ["k"], size=size)
        assert err.value.reason == "bytes"
    await h.close()


async def test_wait_timeout_leaves_the_queue() -> None:
    h = Harness(LocalLanes(LaneLimits(max_wait_seconds=0.02)))
    await h.start(("holder", ["k"]))
    with pytest.raises(QueueRejected) as err:
        await enter(h.lanes, ["k"])
    assert err.value.reason == "timeout"
    assert err.value.retry_after >= 1.0
    assert h.lanes.snapshot().waiting == 0
    await h.close()


async def test_retry_after_follows_observed_hold_times() -> None:
    clock = FakeClock()
    h = Harness(LocalLanes(LaneLimits(max_waiting_per_lane=2), clock=clock))
    for _ in range(20):
        async with h.lanes.hold(["k"]):
            clock.now += 5.0
    await h.start(*[(name, ["k"]) for name in "abc"])
    with pytest.raises(QueueRejected) as err:
        await enter(h.lanes, ["k"])
    assert 9.0 <= err.value.retry_after <= 10.0  # two turns of ~5 s each
    await h.close()


async def test_cancel_while_waiting_frees_the_spot_at_once() -> None:
    h = Harness(LocalLanes(LaneLimits(max_waiting_per_lane=2)))
    await h.start(("holder", ["k"]), ("w1", ["k"]), ("w2", ["k"]))
    h.tasks["w1"].cancel()
    await asyncio.sleep(0)
    assert h.lanes.snapshot().waiting == 1
    await h.start(("w3", ["k"]))  # would be lane_full if w1 still counted
    await h.finish("holder", "w2")
    assert h.entered == ["holder", "w2", "w3"]
    await h.close()


async def test_cancelled_head_lets_the_calls_behind_it_move_up() -> None:
    h = Harness(LocalLanes())
    await h.start(("holds_b", ["B"]), ("needs_ab", ["A", "B"]), ("needs_a", ["A"]))
    h.tasks["needs_ab"].cancel()
    await settle()
    assert h.entered == ["holds_b", "needs_a"]  # lane A was free once needs_ab left
    await h.close()


async def test_cancel_racing_a_release_in_the_same_tick() -> None:
    h = Harness(LocalLanes())
    async with h.lanes.hold(["k"]):
        await h.start(("gone", ["k"]), ("granted", ["k"]), ("last", ["k"]))
        h.tasks["gone"].cancel()  # its cleanup has not run when the lane frees below
    h.tasks["granted"].cancel()  # granted on the exit above, but its task has not resumed
    await settle()
    assert h.entered == ["last"]
    await h.close()


async def test_error_or_cancel_inside_the_block_releases() -> None:
    h = Harness(LocalLanes())
    with pytest.raises(RuntimeError):
        async with h.lanes.hold(["k"]):
            raise RuntimeError("boom")
    assert h.lanes.idle
    await h.start(("inside", ["k"]), ("after", ["k"]))
    h.tasks["inside"].cancel()
    await settle()
    assert h.entered == ["inside", "after"]
    await h.close()


async def test_snapshot_reports_counts_waits_and_prefixes_only() -> None:
    clock = FakeClock()
    h = Harness(LocalLanes(clock=clock))
    key = "abcdefghijklmnop"
    await h.start(("holder", [key]))
    await h.start(("w1", [key]), size=10)
    clock.now += 3.0
    await h.start(("w2", [key, "zz"]), size=5)
    clock.now += 1.0
    snap = h.lanes.snapshot()
    assert (snap.busy_lanes, snap.waiting, snap.queued_bytes) == (1, 2, 15)
    assert snap.longest_wait_seconds == 4.0
    assert sorted(snap.lanes, key=lambda view: view.key_prefix) == [
        LaneView(key_prefix="abcdefgh", running=1, waiting=2, oldest_wait_seconds=4.0),
        LaneView(key_prefix="zz", running=0, waiting=1, oldest_wait_seconds=1.0),
    ]
    assert await h.finish("holder", "w1") == Held(wait_seconds=4.0, keys=(key,))
    await h.close()
    assert h.lanes.snapshot() == LanesSnapshot(0, 0, 0, 0.0, ())
