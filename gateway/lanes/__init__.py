"""Per-key lanes: calls sharing a key run in arrival order, the rest run in parallel."""

from gateway.lanes.base import (
    Held,
    LaneLimits,
    Lanes,
    LanesSnapshot,
    LaneView,
    QueueRejected,
    RejectReason,
)
from gateway.lanes.local import LocalLanes

__all__ = [
    "Held",
    "LaneLimits",
    "LaneView",
    "Lanes",
    "LanesSnapshot",
    "LocalLanes",
    "QueueRejected",
    "RejectReason",
]
