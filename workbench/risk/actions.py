"""What a runner does with the guard's actions, decided once for the backtester and the live engine alike.

A runner turns each :class:`~workbench.risk.guard.GuardAction` into steps on symbols: cancel the symbol's resting
orders, and for a FLATTEN then send a reducing market order (``source="guard"``, tag ``"guard"``) of
:func:`flatten_lots`. How an order is cancelled or sent is the runner's (a simulated order book, or the venue).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from workbench.risk.guard import ActionKind, GuardAction

__all__ = ["GUARD_TAG", "action_steps", "flatten_lots"]

GUARD_TAG = "guard"  # the tag of the guard's own orders: never cancelled by its cancels, netted by its flattens


def action_steps(actions: Iterable[GuardAction], symbols: Iterable[str]) -> Iterator[tuple[GuardAction, str, bool]]:
    """``(action, symbol, flatten)`` for each symbol each action touches (``symbol`` None: all of ``symbols``), in
    order; ``flatten``: after the cancels, trade the position to zero. DISABLE_KEY touches no symbol."""
    symbols = tuple(symbols)
    for a in actions:
        if a.kind not in (ActionKind.CANCEL_ALL, ActionKind.FLATTEN):
            continue
        for s in ((a.symbol,) if a.symbol is not None else symbols):
            yield a, s, a.kind == ActionKind.FLATTEN


def flatten_lots(pos_lots: int, open_orders: Iterable) -> int:
    """Signed lots a market order must trade to bring ``pos_lots`` to zero, net of the guard's orders still open
    (``open_orders``: the symbol's :class:`~workbench.strategy.orders.OwnOrder` s; 0: nothing to send)."""
    in_flight = sum(o.side * o.open_lots for o in open_orders if o.tag == GUARD_TAG)
    return -(pos_lots + in_flight)
