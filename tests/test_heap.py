import asyncio

from gateway import heap


def test_tune_applies_on_glibc() -> None:
    assert heap.tune() is (heap._glibc() is not None)


async def test_trims_once_per_idle_period_after_traffic() -> None:
    state = {"in_flight": 1, "served": 0}
    trims: list[int] = []
    task = asyncio.create_task(
        heap.trim_when_idle(
            lambda: state["in_flight"],
            lambda: state["served"],
            interval=0.01,
            trim=lambda: trims.append(state["served"]),
        )
    )
    await asyncio.sleep(0.05)
    assert trims == [], "nothing served yet"
    state["served"] = 3
    await asyncio.sleep(0.05)
    assert trims == [], "a call is still in flight"
    state["in_flight"] = 0
    await asyncio.sleep(0.05)
    assert trims == [3], "one trim once idle, not one per tick"
    task.cancel()
