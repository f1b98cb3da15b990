"""
================================================================
FILE: order_status.py
PATH: /services/lkms102-orders/app/services/order_status.py
DESCRIPTION: Order statuses and the explicit state machine that governs changing them
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================

    draft ──► confirmed ──► fulfilled
      │           │
      └───────────┴──────► cancelled

fulfilled and cancelled are final. Only a draft may be edited (lines, notes) or deleted.
"""

# === IMPORTS ===
from enum import StrEnum

from lkern_common.errors import ConflictError


# === STATUSES ===
class OrderStatus(StrEnum):
    """The status of an order."""

    DRAFT = "draft"
    CONFIRMED = "confirmed"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"


# === STATE MACHINE ===
ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.DRAFT: frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.FULFILLED, OrderStatus.CANCELLED}),
    OrderStatus.FULFILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}
_ORDER = list(OrderStatus)


def allowed_next(current: OrderStatus) -> list[OrderStatus]:
    """The statuses an order in ``current`` may change to, in workflow order."""
    return sorted(ALLOWED_TRANSITIONS[current], key=_ORDER.index)


def can_transition(current: OrderStatus, target: OrderStatus) -> bool:
    """True when the state machine allows ``current → target``."""
    return target in ALLOWED_TRANSITIONS[current]


# === ERRORS ===
class IllegalTransitionError(ConflictError):
    """The order's current status does not allow the requested status (409)."""

    def __init__(self, number: str, current: OrderStatus, target: OrderStatus) -> None:
        options = allowed_next(current)
        allowed = (
            f"allowed from {current.value}: {', '.join(s.value for s in options)}"
            if options
            else f"{current.value} is a final status"
        )
        super().__init__(
            f"Order {number} is {current.value}: it cannot change to {target.value} ({allowed})"
        )
        self.current = current
        self.target = target


class OrderNotEditableError(ConflictError):
    """Only a draft may be edited or deleted (409)."""

    def __init__(self, number: str, current: OrderStatus, action: str) -> None:
        super().__init__(f"Order {number} is {current.value}: only draft orders can be {action}")
        self.current = current


def check_transition(number: str, current: OrderStatus, target: OrderStatus) -> None:
    """Raise IllegalTransitionError unless the state machine allows ``current → target``."""
    if not can_transition(current, target):
        raise IllegalTransitionError(number, current, target)
